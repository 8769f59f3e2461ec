//! The monitor (what Flower is to Celery): `GET /api/v1/monitor` gives the
//! tenant's job counts and latest jobs and, for platform administrators,
//! the cluster: the broker's queue depths and every worker's and
//! scheduler's heartbeat. The page at `GET /monitor` (`monitor_page`) shows
//! it with the rest of the operations.

use std::collections::HashMap;

use axum::extract::State;
use ferro_tasks::jobs::{self, Job, JobFilter, JobSort, PageAt};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Guard, JobsRead};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(monitor))
}

/// How many latest jobs the monitor shows.
const RECENT: i64 = 20;
/// A heartbeat older than this is shown as not alive.
const ALIVE_WITHIN_SECS: i64 = 15;

#[derive(Debug, Serialize, ToSchema)]
pub struct Monitor {
    /// The tenant's jobs per status: `queued`, `running`, `retrying`,
    /// `succeeded`, `failed`, `cancelled` (every status present, 0 for none).
    #[schema(value_type = Object, example = json!({"queued": 2, "running": 1, "retrying": 0,
        "succeeded": 40, "failed": 1, "cancelled": 0}))]
    pub jobs: HashMap<&'static str, i64>,
    /// The tenant's latest jobs, newest first.
    pub recent: Vec<Job>,
    /// Workers, schedulers and queues: platform administrators only (null
    /// for everyone else).
    pub cluster: Option<Cluster>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cluster {
    /// Messages waiting in the broker; null when the broker does not answer.
    pub queue: Option<QueueDepth>,
    pub workers: Vec<WorkerBeat>,
    pub schedulers: Vec<SchedulerBeat>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueDepth {
    pub jobs: u32,
    pub dead: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerBeat {
    pub worker_id: String,
    pub host: String,
    pub pid: u32,
    pub concurrency: u32,
    pub active: u64,
    pub processed: u64,
    pub failed: u64,
    pub started: String,
    /// Unix seconds of the last heartbeat.
    pub beat: i64,
    /// The last heartbeat is at most 15 s old.
    pub alive: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerBeat {
    pub instance: String,
    /// `leader` or `standby`.
    pub role: String,
    pub fired: u64,
    pub skipped: u64,
    pub last_lag_ms: u64,
    pub beat: i64,
    pub alive: bool,
}

/// The tenant's jobs and, for platform administrators, the cluster.
#[utoipa::path(get, path = "/api/v1/monitor", tag = "jobs", security(("bearer" = ["jobs:read"])),
    responses((status = 200, description = "Jobs, workers, schedulers and queues", body = Monitor)))]
async fn monitor(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
) -> Result<axum::Json<Monitor>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let counts = jobs::count_by_status(&mut tx).await?;
    let recent = jobs::list(
        &mut tx,
        &JobFilter::default(),
        JobSort::default(),
        &PageAt::Offset(0),
        RECENT,
    )
    .await?
    .items;
    tx.end_read_only();
    let mut by_status: HashMap<&'static str, i64> = ferro_tasks::JobStatus::ALL
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
    for (status, n) in counts {
        if let Ok(status) = status.parse::<ferro_tasks::JobStatus>() {
            by_status.insert(status.as_str(), n);
        }
    }
    let cluster = if guard.is_platform_admin {
        Some(cluster(&state).await?)
    } else {
        None
    };
    Ok(axum::Json(Monitor {
        jobs: by_status,
        recent,
        cluster,
    }))
}

async fn cluster(state: &AppState) -> Result<Cluster, ApiError> {
    let prefix = &state.config.redis.key_prefix;
    let (workers_key, schedulers_key) = (
        format!("{prefix}workers:*"),
        format!("{prefix}schedulers:*"),
    );
    let (queue, workers, schedulers) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(2), state.broker.depths()),
        ferro_redis::heartbeat::list(&state.redis, &workers_key),
        ferro_redis::heartbeat::list(&state.redis, &schedulers_key),
    );
    let queue = match queue {
        Ok(Ok((jobs, dead))) => Some(QueueDepth { jobs, dead }),
        _ => None,
    };
    let redis_down = |e: ferro_redis::Error| {
        tracing::warn!(error = %e, "cannot read heartbeats");
        ApiError::Unavailable("redis")
    };
    let now = chrono::Utc::now().timestamp();
    let num = |m: &HashMap<String, String>, k: &str| -> u64 {
        m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let text = |m: &HashMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    let beat = |m: &HashMap<String, String>| -> i64 {
        m.get("beat").and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let workers = workers
        .map_err(redis_down)?
        .iter()
        .map(|m| WorkerBeat {
            worker_id: text(m, "worker_id"),
            host: text(m, "host"),
            pid: num(m, "pid") as u32,
            concurrency: num(m, "concurrency") as u32,
            active: num(m, "active"),
            processed: num(m, "processed"),
            failed: num(m, "failed"),
            started: text(m, "started"),
            beat: beat(m),
            alive: now - beat(m) <= ALIVE_WITHIN_SECS,
        })
        .collect();
    let schedulers = schedulers
        .map_err(redis_down)?
        .iter()
        .map(|m| SchedulerBeat {
            instance: text(m, "instance"),
            role: text(m, "role"),
            fired: num(m, "fired"),
            skipped: num(m, "skipped"),
            last_lag_ms: num(m, "last_lag_ms"),
            beat: beat(m),
            alive: now - beat(m) <= ALIVE_WITHIN_SECS,
        })
        .collect();
    Ok(Cluster {
        queue,
        workers,
        schedulers,
    })
}
