//! `/api/v1/workers` (platform administrators): the live workers, from
//! their heartbeats, and what an operator may ask of one through Redis
//! (`ferro_redis::control`), acted on within a second: a graceful
//! shutdown, another concurrency.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Guard, TenantsManage};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// A heartbeat older than this is a worker gone (they beat every 2 s).
const ALIVE_WITHIN_SECS: i64 = 15;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workers))
        .routes(routes!(shutdown_worker))
        .routes(routes!(set_concurrency))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Worker {
    /// Host and process id.
    #[schema(example = "worker-1:7")]
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// The queues it consumes.
    pub queues: Vec<String>,
    /// Jobs it runs at most at once now.
    pub concurrency: u32,
    /// The concurrency it started with: the most it can be set to.
    pub max_concurrency: u32,
    /// Ids of the jobs it runs.
    pub active: Vec<String>,
    pub processed: u64,
    pub failed: u64,
    #[schema(example = "2026-12-07T10:00:00+00:00")]
    pub started_at: String,
    #[schema(example = "2026-12-07T10:05:00Z")]
    pub last_beat_at: String,
}

/// The queues of a heartbeat (`snmp=4,default`).
fn queues_of(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| part.split('=').next().unwrap_or(part).to_owned())
        .collect()
}

fn from_heartbeat(m: &HashMap<String, String>) -> Worker {
    let text = |k: &str| m.get(k).cloned().unwrap_or_default();
    let num = |k: &str| -> u64 { m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let beat = num("beat") as i64;
    Worker {
        id: text("worker_id"),
        host: text("host"),
        pid: num("pid") as u32,
        queues: queues_of(&text("queues")),
        concurrency: num("concurrency") as u32,
        max_concurrency: num("max_concurrency").max(num("concurrency")) as u32,
        active: text("active_jobs")
            .split(',')
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect(),
        processed: num("processed"),
        failed: num("failed"),
        started_at: text("started"),
        last_beat_at: chrono::DateTime::from_timestamp(beat, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
    }
}

/// The workers whose heartbeat is fresh.
pub(crate) async fn live(state: &AppState) -> Result<Vec<Worker>, ApiError> {
    let pattern = format!("{}workers:*", state.config.redis.key_prefix);
    let now = chrono::Utc::now().timestamp();
    Ok(ferro_redis::heartbeat::list(&state.redis, &pattern)
        .await?
        .iter()
        .filter(|m| {
            m.get("beat")
                .and_then(|b| b.parse::<i64>().ok())
                .is_some_and(|b| now - b <= ALIVE_WITHIN_SECS)
        })
        .map(from_heartbeat)
        .collect())
}

async fn find(state: &AppState, id: &str) -> Result<Worker, ApiError> {
    live(state)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or(ApiError::NotFound("worker"))
}

/// The live workers, by id.
#[utoipa::path(get, path = "/api/v1/workers", tag = "operations", security(("bearer" = ["tenants:manage"])),
    responses((status = 200, description = "The workers", body = Vec<Worker>),
        (status = 403, description = "Not a platform administrator", body = Problem, content_type = "application/problem+json")))]
async fn list_workers(
    State(state): State<AppState>,
    _guard: Guard<TenantsManage>,
) -> Result<axum::Json<Vec<Worker>>, ApiError> {
    Ok(axum::Json(live(&state).await?))
}

/// Asks a worker to shut down gracefully: within a second it takes no new
/// job, gives running ones its grace period, hands back the rest, exits.
#[utoipa::path(post, path = "/api/v1/workers/{worker}/shutdown", tag = "operations", security(("bearer" = ["tenants:manage"])),
    params(("worker" = String, Path, description = "A live worker's id")),
    responses((status = 202, description = "Asked; the worker as it was", body = Worker),
        (status = 404, description = "No such live worker", body = Problem, content_type = "application/problem+json")))]
async fn shutdown_worker(
    State(state): State<AppState>,
    _guard: Guard<TenantsManage>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, axum::Json<Worker>), ApiError> {
    let worker = find(&state, &id).await?;
    ferro_redis::control::request_shutdown(&state.redis, &state.config.redis.key_prefix, &id)
        .await?;
    tracing::info!(worker_id = %id, "worker shutdown asked for");
    Ok((StatusCode::ACCEPTED, axum::Json(worker)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConcurrency {
    /// From 1 to the worker's `max_concurrency`.
    #[schema(minimum = 1, maximum = 1000, example = 4)]
    pub concurrency: u32,
}

/// Changes how many jobs a worker runs at once, within a second: lower,
/// its running jobs finish and no new one starts until fewer run; higher,
/// up to the concurrency it started with (its broker prefetch).
#[utoipa::path(put, path = "/api/v1/workers/{worker}/concurrency", tag = "operations", security(("bearer" = ["tenants:manage"])),
    params(("worker" = String, Path, description = "A live worker's id")),
    request_body = SetConcurrency,
    responses((status = 200, description = "Asked; the worker with the concurrency it will run at", body = Worker),
        (status = 404, description = "No such live worker", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Out of 1 to the worker's maximum", body = Problem, content_type = "application/problem+json")))]
async fn set_concurrency(
    State(state): State<AppState>,
    _guard: Guard<TenantsManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetConcurrency>,
) -> Result<axum::Json<Worker>, ApiError> {
    let mut worker = find(&state, &id).await?;
    if !(1..=worker.max_concurrency).contains(&body.concurrency) {
        return Err(ApiError::field(
            "concurrency",
            &format!(
                "from 1 to {} (the concurrency the worker started with)",
                worker.max_concurrency
            ),
        ));
    }
    ferro_redis::control::request_concurrency(
        &state.redis,
        &state.config.redis.key_prefix,
        &id,
        body.concurrency as usize,
    )
    .await?;
    tracing::info!(worker_id = %id, concurrency = body.concurrency, "worker concurrency asked for");
    worker.concurrency = body.concurrency;
    Ok(axum::Json(worker))
}
