//! The worker's heartbeat in Redis (`{prefix}workers:{host}:{pid}`), which
//! `worker ping` and the api's monitor read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RunConfig;

/// Counters the heartbeat reports.
#[derive(Default)]
pub struct Stats {
    pub active: AtomicU64,
    pub processed: AtomicU64,
    pub failed: AtomicU64,
}

/// How often the worker writes its heartbeat, and how long one lives.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
const HEARTBEAT_TTL: Duration = Duration::from_secs(30);

fn key(prefix: &str, worker_id: &str) -> String {
    format!("{prefix}workers:{worker_id}")
}

/// Writes this worker's heartbeat (a Redis hash with a TTL) every
/// [`HEARTBEAT_EVERY`] until `stop`; removes it on the way out.
/// `live` tells the concurrency now and the ids of the jobs running.
pub async fn beat(
    redis: ferro_redis::RedisPool,
    prefix: String,
    config: RunConfig,
    stats: Arc<Stats>,
    live: impl Fn() -> (usize, Vec<String>),
    stop: CancellationToken,
) {
    let key = key(&prefix, &config.worker_id);
    let started = chrono::Utc::now().to_rfc3339();
    let host = config
        .worker_id
        .rsplit_once(':')
        .map(|(h, _)| h.to_owned())
        .unwrap_or_default();
    let queues = if config.queues.is_empty() {
        ferro_tasks::queues::DEFAULT_QUEUE.to_owned()
    } else {
        let caps: Vec<String> = config
            .queues
            .iter()
            .map(|(queue, cap)| format!("{queue}={cap}"))
            .collect();
        caps.join(",")
    };
    let fields = move || {
        let (concurrency, active_jobs) = live();
        vec![
            ("worker_id", config.worker_id.clone()),
            ("host", host.clone()),
            ("pid", std::process::id().to_string()),
            ("queues", queues.clone()),
            ("concurrency", concurrency.to_string()),
            ("max_concurrency", config.concurrency.to_string()),
            ("active_jobs", active_jobs.join(",")),
            ("active", stats.active.load(Relaxed).to_string()),
            ("processed", stats.processed.load(Relaxed).to_string()),
            ("failed", stats.failed.load(Relaxed).to_string()),
            ("started", started.clone()),
        ]
    };
    ferro_redis::heartbeat::run(redis, key, HEARTBEAT_EVERY, HEARTBEAT_TTL, fields, stop).await;
}

/// `worker ping [--pid N]`: true if a worker on `host` (process `pid`, when
/// given) wrote its heartbeat within `fresh`.
pub async fn ping(
    redis: &ferro_redis::RedisPool,
    prefix: &str,
    host: &str,
    pid: Option<u32>,
    fresh: Duration,
) -> Result<bool, ferro_redis::Error> {
    let pid = pid.map_or_else(|| "*".to_owned(), |p| p.to_string());
    ferro_redis::heartbeat::any_fresh(redis, &key(prefix, &format!("{host}:{pid}")), fresh).await
}

/// This machine's host name, as the heartbeat records it.
pub fn host_name() -> String {
    ferro_redis::heartbeat::host_name()
}
