//! `/api/v1/queues` (platform administrators): each configured job queue
//! with what waits in it and who consumes it; pausing and resuming a queue
//! (every worker stops taking its jobs within a second, submissions are
//! still accepted), and purging what waits in it.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use ferro_tasks::jobs;
use ferro_tasks::limits::{Limits, Scope};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::workers;
use crate::auth::{Guard, TenantsManage};
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_queues))
        .routes(routes!(pause_queue))
        .routes(routes!(resume_queue))
        .routes(routes!(purge_queue))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    #[schema(example = "snmp")]
    pub name: String,
    /// Messages waiting in the broker (on Redis Streams also those in
    /// flight); null when the broker does not answer.
    #[schema(required = true)]
    pub depth: Option<u32>,
    /// Deferred jobs due later.
    pub scheduled: i64,
    /// Jobs submitted and not yet taken, or waiting for a retry (from the
    /// database: it counts also what a worker of a paused queue holds).
    pub waiting: i64,
    /// Jobs a worker runs now.
    pub running: i64,
    /// Live workers consuming it.
    pub consumers: usize,
    pub paused: bool,
    /// The queue's limit in force (`deploy/queues.json` or an override).
    #[schema(required = true, example = "100/s")]
    pub rate_limit: Option<String>,
    /// Each tenant's share of the queue, if limited.
    #[schema(required = true)]
    pub tenant_rate_limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    /// Jobs ended `cancelled`.
    pub purged: i64,
}

async fn describe(state: &AppState, guard: &Guard<TenantsManage>) -> Result<Vec<Queue>, ApiError> {
    let prefix = &state.config.redis.key_prefix;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let counts: HashMap<String, jobs::QueueCounts> = jobs::queue_counts(&mut tx)
        .await?
        .into_iter()
        .map(|c| (c.queue.clone(), c))
        .collect();
    tx.end_read_only();
    let paused = ferro_redis::control::paused(&state.redis, prefix).await?;
    let overrides = ferro_redis::limits::overrides(&state.redis, prefix).await?;
    let limits: Limits = state.config.queues.limits().with_overrides(&overrides);
    let live = workers::live(state).await?;
    let mut queues = Vec::new();
    for name in state.config.queues.names() {
        let depth = tokio::time::timeout(Duration::from_secs(2), state.broker.depth(name))
            .await
            .ok()
            .and_then(Result::ok);
        queues.push(Queue {
            name: name.clone(),
            depth,
            scheduled: counts.get(name).map_or(0, |c| c.scheduled),
            waiting: counts.get(name).map_or(0, |c| c.waiting),
            running: counts.get(name).map_or(0, |c| c.running),
            consumers: live
                .iter()
                .filter(|w| w.queues.iter().any(|q| q == name))
                .count(),
            paused: paused.contains(name),
            rate_limit: limits.get(Scope::Queue, name).map(|l| l.to_string()),
            tenant_rate_limit: limits.get(Scope::Tenant, name).map(|l| l.to_string()),
        });
    }
    Ok(queues)
}

fn configured(state: &AppState, name: &str) -> Result<(), ApiError> {
    if state.config.queues.contains(name) {
        Ok(())
    } else {
        Err(ApiError::NotFound("queue"))
    }
}

async fn one(
    state: &AppState,
    guard: &Guard<TenantsManage>,
    name: &str,
) -> Result<Queue, ApiError> {
    describe(state, guard)
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or(ApiError::NotFound("queue"))
}

/// The configured queues.
#[utoipa::path(get, path = "/api/v1/queues", tag = "operations", security(("bearer" = ["tenants:manage"])),
    responses((status = 200, description = "The queues", body = Vec<Queue>),
        (status = 403, description = "Not a platform administrator", body = Problem, content_type = "application/problem+json")))]
async fn list_queues(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
) -> Result<axum::Json<Vec<Queue>>, ApiError> {
    Ok(axum::Json(describe(&state, &guard).await?))
}

async fn set_paused(
    state: &AppState,
    guard: &Guard<TenantsManage>,
    name: &str,
    paused: bool,
) -> Result<axum::Json<Queue>, ApiError> {
    configured(state, name)?;
    ferro_redis::control::set_paused(&state.redis, &state.config.redis.key_prefix, name, paused)
        .await?;
    tracing::info!(queue = name, paused, "queue paused or resumed");
    Ok(axum::Json(one(state, guard, name).await?))
}

/// Pauses a queue: within a second no worker takes another of its jobs
/// (those a worker holds already wait with it); submissions are still
/// accepted and wait.
#[utoipa::path(post, path = "/api/v1/queues/{name}/pause", tag = "operations", security(("bearer" = ["tenants:manage"])),
    params(("name" = String, Path, description = "A configured queue")),
    responses((status = 200, description = "The queue, paused", body = Queue),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json")))]
async fn pause_queue(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiPath(name): ApiPath<String>,
) -> Result<axum::Json<Queue>, ApiError> {
    set_paused(&state, &guard, &name, true).await
}

/// Resumes a paused queue.
#[utoipa::path(post, path = "/api/v1/queues/{name}/resume", tag = "operations", security(("bearer" = ["tenants:manage"])),
    params(("name" = String, Path, description = "A configured queue")),
    responses((status = 200, description = "The queue, running", body = Queue),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json")))]
async fn resume_queue(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiPath(name): ApiPath<String>,
) -> Result<axum::Json<Queue>, ApiError> {
    set_paused(&state, &guard, &name, false).await
}

/// Purges a queue: every tenant's jobs waiting in it (scheduled, queued,
/// waiting for a retry) end `cancelled`, with the reason. Running jobs go
/// on.
#[utoipa::path(post, path = "/api/v1/queues/{name}/purge", tag = "operations", security(("bearer" = ["tenants:manage"])),
    params(("name" = String, Path, description = "A configured queue")),
    responses((status = 200, description = "How many jobs were purged", body = Purged),
        (status = 404, description = "No such queue", body = Problem, content_type = "application/problem+json")))]
async fn purge_queue(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiPath(name): ApiPath<String>,
) -> Result<axum::Json<Purged>, ApiError> {
    configured(&state, &name)?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let purged = jobs::purge_queue(&mut tx, &name).await?;
    tx.commit().await?;
    tracing::info!(queue = %name, purged, "queue purged");
    Ok(axum::Json(Purged { purged }))
}
