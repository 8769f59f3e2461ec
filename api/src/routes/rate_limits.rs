//! `/api/v1/rate-limits` (platform administrators): the rate limits in
//! force, and changing them at run time. A change is an override kept in
//! Redis, which every worker reads again each second; deleting it goes
//! back to what `deploy/queues.json` says.

use axum::extract::State;
use axum::http::StatusCode;
use ferro_tasks::JobKind;
use ferro_tasks::limits::{self, Limits, NO_LIMIT, RateLimit, Scope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Guard, TenantsManage};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_limits))
        .routes(routes!(set_limit, clear_override))
}

/// A limit in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitEntry {
    /// `queue` (every job of the queue), `kind` (every job of the kind) or
    /// `tenant` (each tenant's jobs of the queue, separately).
    #[schema(example = "queue")]
    scope: &'static str,
    /// The queue, or the kind.
    #[schema(example = "snmp")]
    name: String,
    #[schema(value_type = String, example = "100/s")]
    rate_limit: RateLimit,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitList {
    items: Vec<LimitEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimit {
    /// `N/s`, `N/m` or `N/h` (N from 1 to 1000000); `null`: no limit, even
    /// where the file sets one.
    #[schema(example = "20/m", pattern = "^[0-9]{1,7}/[smh]$")]
    rate_limit: Option<String>,
}

async fn in_force(state: &AppState) -> Result<Limits, ApiError> {
    let overrides =
        ferro_redis::limits::overrides(&state.redis, &state.config.redis.key_prefix).await?;
    Ok(state.config.queues.limits().with_overrides(&overrides))
}

fn entries(limits: &Limits) -> Vec<LimitEntry> {
    limits
        .list()
        .map(|(scope, name, rate_limit)| LimitEntry {
            scope: scope.as_str(),
            name: name.to_owned(),
            rate_limit,
        })
        .collect()
}

/// The scope and name of a path, checked: a configured queue, or a kind.
fn target(state: &AppState, scope: &str, name: &str) -> Result<Scope, ApiError> {
    let scope = Scope::parse(scope)
        .ok_or_else(|| ApiError::field("scope", "must be queue, kind or tenant"))?;
    let known = match scope {
        Scope::Kind => JobKind::parse(name).is_some(),
        Scope::Queue | Scope::Tenant => state.config.queues.contains(name),
    };
    if !known {
        return Err(ApiError::field(
            "name",
            match scope {
                Scope::Kind => "not a job kind",
                _ => "not a configured queue",
            },
        ));
    }
    Ok(scope)
}

/// The rate limits in force: the file's, with the run-time changes.
#[utoipa::path(get, path = "/api/v1/rate-limits", tag = "jobs", security(("bearer" = ["tenants:manage"])),
    responses((status = 200, description = "The limits in force", body = LimitList)))]
async fn list_limits(
    State(state): State<AppState>,
    _guard: Guard<TenantsManage>,
) -> Result<axum::Json<LimitList>, ApiError> {
    Ok(axum::Json(LimitList {
        items: entries(&in_force(&state).await?),
    }))
}

/// Sets a limit at run time; every worker holds to it within a second.
#[utoipa::path(put, path = "/api/v1/rate-limits/{scope}/{name}", tag = "jobs", security(("bearer" = ["tenants:manage"])),
    params(("scope" = String, Path, description = "`queue`, `kind` or `tenant`"),
           ("name" = String, Path, description = "A configured queue (scopes queue and tenant) or a job kind")),
    request_body = SetLimit,
    responses((status = 200, description = "The limits now in force", body = LimitList),
        (status = 422, description = "Unknown scope, queue or kind, or not a rate", body = Problem, content_type = "application/problem+json")))]
async fn set_limit(
    State(state): State<AppState>,
    _guard: Guard<TenantsManage>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SetLimit>,
) -> Result<axum::Json<LimitList>, ApiError> {
    let scope = target(&state, &scope, &name)?;
    let value = match body.rate_limit.as_deref() {
        None => NO_LIMIT.to_owned(),
        Some(text) => RateLimit::parse(text)
            .ok_or_else(|| ApiError::field("rate_limit", limits::FORMAT))?
            .to_string(),
    };
    let field = format!("{}:{name}", scope.as_str());
    ferro_redis::limits::set_override(
        &state.redis,
        &state.config.redis.key_prefix,
        &field,
        Some(&value),
    )
    .await?;
    tracing::info!(limit = %field, rate_limit = %value, "rate limit changed");
    Ok(axum::Json(LimitList {
        items: entries(&in_force(&state).await?),
    }))
}

/// Removes a run-time change: the file's limit (or none) holds again.
#[utoipa::path(delete, path = "/api/v1/rate-limits/{scope}/{name}", tag = "jobs", security(("bearer" = ["tenants:manage"])),
    params(("scope" = String, Path, description = "`queue`, `kind` or `tenant`"),
           ("name" = String, Path, description = "A configured queue (scopes queue and tenant) or a job kind")),
    responses((status = 204, description = "Back to the configured limit"),
        (status = 422, description = "Unknown scope, queue or kind", body = Problem, content_type = "application/problem+json")))]
async fn clear_override(
    State(state): State<AppState>,
    _guard: Guard<TenantsManage>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let scope = target(&state, &scope, &name)?;
    let field = format!("{}:{name}", scope.as_str());
    ferro_redis::limits::set_override(&state.redis, &state.config.redis.key_prefix, &field, None)
        .await?;
    tracing::info!(limit = %field, "rate limit override removed");
    Ok(StatusCode::NO_CONTENT)
}
