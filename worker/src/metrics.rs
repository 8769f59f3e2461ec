//! The worker's Prometheus metrics, served on `WORKER_METRICS_ADDR` by
//! `ferro_telemetry::metrics::serve`:
//!
//! - `worker_jobs_total{kind, outcome}`: jobs this worker ended, or sent to
//!   retry; outcome `succeeded`, `failed`, `retrying` or `cancelled`. Besides
//!   finished runs this counts the jobs ended without a run: past their
//!   deadline (`cancelled`), out of attempts or of an unknown kind (`failed`);
//! - `worker_job_duration_seconds{kind}`: how long handlers ran;
//! - `worker_jobs_active`, `worker_concurrency`;
//! - `broker_queue_depth{queue}`: messages waiting in the jobs queue and
//!   among the dead letters, read from the broker every few seconds.

use std::sync::Arc;
use std::time::Duration;

use ferro_broker::Broker;
use ferro_tasks::JobKind;
use tokio_util::sync::CancellationToken;

/// Histogram buckets, in seconds.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[(
    "worker_job_duration_seconds",
    &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ],
)];

/// How a run ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Retrying,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Retrying => "retrying",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Records one finished run of a handler.
pub fn job_finished(kind: JobKind, outcome: Outcome, took: Duration) {
    ::metrics::counter!("worker_jobs_total", "kind" => kind.as_str(), "outcome" => outcome.as_str())
        .increment(1);
    ::metrics::histogram!("worker_job_duration_seconds", "kind" => kind.as_str())
        .record(took.as_secs_f64());
}

/// Records a job this worker ended without running its handler.
pub fn job_ended_unrun(kind: &str, outcome: Outcome) {
    // Only known kinds become labels: a forged envelope cannot add series.
    let kind = JobKind::parse(kind).map_or("unknown", JobKind::as_str);
    ::metrics::counter!("worker_jobs_total", "kind" => kind, "outcome" => outcome.as_str())
        .increment(1);
}

pub fn set_concurrency(concurrency: usize) {
    ::metrics::gauge!("worker_concurrency").set(concurrency as f64);
}

/// A job held back by a rate limit (published again for later).
pub fn held_back(queue: &str, kind: &str) {
    ::metrics::counter!("worker_jobs_held_back_total", "queue" => queue.to_owned(), "kind" => kind.to_owned())
        .increment(1);
}

pub fn job_started() {
    ::metrics::gauge!("worker_jobs_active").increment(1.0);
}

pub fn job_ended() {
    ::metrics::gauge!("worker_jobs_active").decrement(1.0);
}

/// How often the queue depths are read from the broker.
const QUEUE_EVERY: Duration = Duration::from_secs(5);

/// Keeps `broker_queue_depth` current until `stop`.
pub async fn report_queue_depths(broker: Arc<Broker>, stop: CancellationToken) {
    loop {
        match broker.depths().await {
            Ok((jobs, dead)) => {
                ::metrics::gauge!("broker_queue_depth", "queue" => "jobs").set(jobs as f64);
                ::metrics::gauge!("broker_queue_depth", "queue" => "dead").set(dead as f64);
            }
            Err(err) => tracing::debug!(error = %err, "could not read the queue depths"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(QUEUE_EVERY) => {}
        }
    }
}
