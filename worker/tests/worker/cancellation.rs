//! Cancelling jobs: running ones stop, queued ones never start.

use crate::support::*;
use ferro_tasks::JobKind;
use serde_json::json;
use std::time::{Duration, Instant};

on_both_brokers!(
    a_running_job_stops_when_cancelled,
    a_cancelled_queued_job_is_never_started,
    a_running_export_stops_when_cancelled,
);

async fn a_running_job_stops_when_cancelled(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 20000}))
        .await;
    rig.wait_for(id, &["running"], 10).await;
    rig.cancel(id).await;
    let started = Instant::now();
    let job = rig.wait_for(id, &["cancelled"], 5).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(job.error.as_deref(), Some("cancelled while running"));
    rig.stop().await;
}

/// A job cancelled while queued is never started, even when its envelope
/// is already in the broker: the worker acknowledges the delivery and
/// leaves the job as it is.
async fn a_cancelled_queued_job_is_never_started(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let (id, envelope) = rig.enqueue(JobKind::Noop, None, json!({})).await;
    rig.cancel(id).await;
    rig.broker.publish(&envelope).await.unwrap();
    // A job published after it shows the worker is past the cancelled one.
    let after = rig.submit(JobKind::Noop, None, json!({})).await;
    rig.wait_for(after, &["succeeded"], 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = rig.job(id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("cancelled", 0));
    assert!(job.started_at.is_none());
    assert!(rig.results(id).await.is_empty());
    assert_eq!(
        rig.broker.depths().await.unwrap().0,
        0,
        "the delivery was settled"
    );
    rig.stop().await;
}

/// A kind whose handler never looks at the cancel signal (the export) is
/// stopped all the same: here it is stuck behind a lock on `devices` when
/// it is cancelled.
async fn a_running_export_stops_when_cancelled(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let (id, envelope) = rig.enqueue(JobKind::DevicesExport, None, json!({})).await;
    let lock = rig.db.lock_devices().await;
    rig.broker.publish(&envelope).await.unwrap();
    rig.wait_for(id, &["running"], 10).await;
    rig.cancel(id).await;
    let job = rig.wait_for(id, &["cancelled"], 5).await;
    assert_eq!(job.error.as_deref(), Some("cancelled while running"));
    lock.rollback().await.unwrap();
    assert!(rig.results(id).await.is_empty());
    rig.stop().await;
}
