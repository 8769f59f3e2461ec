//! Rate limits as the worker enforces them: before claiming a job, it takes
//! the job's room in the shared buckets of every limit that applies (its
//! queue, its kind, its tenant's share of its queue; `ferro_redis::limits`).
//! A job without room is not claimed and spends no attempt: the worker
//! publishes it again to come back when there is room, then acks the
//! delivery. The limits are the file's (`QUEUES_CONFIG`) with the run-time
//! overrides from Redis, read again every second, so a change made through
//! the api holds within a second everywhere.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferro_redis::RedisPool;
use ferro_tasks::TaskEnvelope;
use ferro_tasks::limits::Limits;
use tokio_util::sync::CancellationToken;

/// How often the overrides are read again.
const REFRESH: Duration = Duration::from_secs(1);

pub struct RateLimiter {
    pool: RedisPool,
    prefix: String,
    configured: Limits,
    current: RwLock<Arc<Limits>>,
}

impl RateLimiter {
    pub fn new(pool: RedisPool, prefix: String, configured: Limits) -> Arc<Self> {
        Arc::new(Self {
            pool,
            prefix,
            current: RwLock::new(Arc::new(configured.clone())),
            configured,
        })
    }

    fn current(&self) -> Arc<Limits> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the overrides now and every second until `stop`.
    pub async fn refresh(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match ferro_redis::limits::overrides(&self.pool, &self.prefix).await {
                Ok(overrides) => {
                    let limits = Arc::new(self.configured.with_overrides(&overrides));
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = limits;
                }
                Err(err) => {
                    tracing::debug!(error = %err, "could not read the rate limit overrides")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }

    /// `None` when the job may run now (its room taken); otherwise how long
    /// to hold it back. With Redis away the job runs: limits are held as
    /// well as their shared state can be, and a worker does not stop for
    /// them.
    pub async fn hold_back(&self, envelope: &TaskEnvelope) -> Option<Duration> {
        let limits = self.current();
        if limits.is_empty() {
            return None;
        }
        let applicable: Vec<(String, u32, Duration)> = limits
            .applicable(&envelope.queue, &envelope.kind, envelope.tenant_id)
            .into_iter()
            .map(|(key, limit)| (key, limit.count, limit.period))
            .collect();
        match ferro_redis::limits::acquire(&self.pool, &self.prefix, &applicable).await {
            Ok(wait) => wait,
            Err(err) => {
                tracing::warn!(error = %err, "could not check the rate limits; running the job");
                None
            }
        }
    }
}
