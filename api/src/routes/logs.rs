//! `/api/v1/audit-logs` and `/api/v1/login-logs`: read-only, newest first.

use axum::extract::State;
use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuditRead, Guard};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::openapi::fields;
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::validation::Validator;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_logs))
        .routes(routes!(list_login_logs))
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditLog {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub method: String,
    /// The route template, e.g. `/api/v1/devices/{id}`.
    pub route: String,
    pub status: i16,
    pub latency_ms: i32,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct LoginLog {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub username: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `success`, `failure` or `throttled`.
    pub outcome: String,
    pub reason: Option<String>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    pub user_id: Option<Uuid>,
    /// `POST`, `PUT`, `PATCH` or `DELETE`, in any case.
    #[param(
        pattern = "^(?:[Pp][Oo][Ss][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh]|[Dd][Ee][Ll][Ee][Tt][Ee])$"
    )]
    pub method: Option<String>,
}

fn outcome() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(fields::one_of(&["success", "failure", "throttled"]))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LoginLogQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// `success`, `failure` or `throttled`.
    #[param(schema_with = outcome)]
    pub outcome: Option<String>,
    pub username: Option<String>,
}

/// Every mutating request made in this tenant.
#[utoipa::path(get, path = "/api/v1/audit-logs", tag = "logs", security(("bearer" = ["audit:read"])), params(AuditQuery),
    responses((status = 200, description = "A page of audit entries", body = Paginated<AuditLog>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_audit_logs(
    State(state): State<AppState>,
    guard: Guard<AuditRead>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<axum::Json<Paginated<AuditLog>>, ApiError> {
    let mut v = Validator::default();
    let paging = PageParams {
        page: q.page,
        size: q.size,
    }
    .validate(&mut v.0);
    let method = q.method.map(|m| m.to_ascii_uppercase());
    v.check(
        method
            .as_deref()
            .is_none_or(|m| ["POST", "PUT", "PATCH", "DELETE"].contains(&m)),
        "method",
        "must be POST, PUT, PATCH or DELETE",
    );
    v.finish()?;
    let filter = "WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR method = $2)";
    let mut tx = state.db.begin(guard.ctx()).await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM audit_logs {filter}"
    )))
    .bind(q.user_id)
    .bind(&method)
    .fetch_one(&mut *tx)
    .await?;
    let items: Vec<AuditLog> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id, method, route, status, latency_ms, host(ip) AS ip, user_agent, request_id, created_at \
         FROM audit_logs {filter} ORDER BY created_at DESC, id DESC {page}",
        page = ferro_db::limit_offset(paging.size, paging.offset())
    )))
    .bind(q.user_id)
    .bind(&method)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Login attempts into this tenant (and failed ones by its users).
#[utoipa::path(get, path = "/api/v1/login-logs", tag = "logs", security(("bearer" = ["audit:read"])), params(LoginLogQuery),
    responses((status = 200, description = "A page of login attempts", body = Paginated<LoginLog>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_login_logs(
    State(state): State<AppState>,
    guard: Guard<AuditRead>,
    ApiQuery(q): ApiQuery<LoginLogQuery>,
) -> Result<axum::Json<Paginated<LoginLog>>, ApiError> {
    let mut v = Validator::default();
    let paging = PageParams {
        page: q.page,
        size: q.size,
    }
    .validate(&mut v.0);
    v.check(
        q.outcome
            .as_deref()
            .is_none_or(|o| ["success", "failure", "throttled"].contains(&o)),
        "outcome",
        "must be success, failure or throttled",
    );
    v.finish()?;
    let filter = "WHERE ($1::text IS NULL OR outcome = $1) AND ($2::text IS NULL OR lower(username) = lower($2))";
    let mut tx = state.db.begin(guard.ctx()).await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM login_logs {filter}"
    )))
    .bind(&q.outcome)
    .bind(&q.username)
    .fetch_one(&mut *tx)
    .await?;
    let items: Vec<LoginLog> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id, username, host(ip) AS ip, user_agent, outcome, reason, created_at \
         FROM login_logs {filter} ORDER BY created_at DESC, id DESC {page}",
        page = ferro_db::limit_offset(paging.size, paging.offset())
    )))
    .bind(&q.outcome)
    .bind(&q.username)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Paginated::new(items, total, paging)))
}
