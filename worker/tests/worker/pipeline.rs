//! A job's way through the worker: success with progress and a result,
//! retries with backoff, dead letters, duplicate deliveries run once, many
//! jobs each exactly once, deadlines.

use crate::support::*;
use ferro_tasks::JobKind;
use ferro_tasks::jobs::{self};
use serde_json::json;
use std::time::{Duration, Instant};

on_both_brokers!(
    a_noop_job_runs_to_success_with_progress_and_a_result,
    transient_failures_are_retried_with_backoff,
    exhausted_retries_fail_the_job_and_dead_letter_it,
    a_duplicate_delivery_runs_the_handler_once,
    many_jobs_all_succeed_exactly_once,
    a_job_past_its_deadline_is_not_started,
);

async fn a_noop_job_runs_to_success_with_progress_and_a_result(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 200}))
        .await;
    let job = rig.wait_for(id, &["succeeded"], 10).await;
    assert_eq!(
        (job.progress, job.attempts, job.error.as_deref()),
        (100, 1, None)
    );
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert_eq!(rig.results(id).await, vec![json!({"slept_ms": 200})]);
    rig.stop().await;
}

async fn transient_failures_are_retried_with_backoff(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"fail_attempts": 1}))
        .await;
    let job = rig.wait_for(id, &["succeeded"], 15).await;
    assert_eq!(job.attempts, 2);
    rig.stop().await;
}

async fn exhausted_retries_fail_the_job_and_dead_letter_it(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"fail_attempts": 10}))
        .await;
    let job = rig.wait_for(id, &["failed"], 30).await;
    assert_eq!(job.attempts, job.max_attempts);
    assert!(job.error.as_deref().unwrap().contains("failing attempt 3"));
    rig.wait_for_dead_letter(id).await;
    rig.stop().await;
}

async fn a_duplicate_delivery_runs_the_handler_once(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 300}))
        .await;
    // The same envelope again, as a relay that lost its mark would send it.
    let duplicate = ferro_tasks::TaskEnvelope::new(id, "noop", rig.db.default_tenant(), None);
    rig.broker.publish(&duplicate).await.unwrap();
    rig.wait_for(id, &["succeeded"], 10).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let job = rig.job(id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 1));
    assert_eq!(rig.results(id).await.len(), 1);
    rig.stop().await;
}

/// A burst of jobs on four workers: every one succeeds, each run once.
async fn many_jobs_all_succeed_exactly_once(backend: Backend) {
    let mut rig = Rig::start_on(backend, None).await;
    for id in ["w2", "w3", "w4"] {
        rig.spawn_worker(id).await;
    }
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(rig.submit(JobKind::Noop, None, json!({})).await);
    }
    let owner = rig.db.owner().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND attempts = 1",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        if done == ids.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} succeeded",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results: i64 = sqlx::query_scalar("SELECT count(*) FROM job_results")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(results, 200, "one result row per job");
    rig.stop().await;
}

/// A job whose envelope's deadline passed before a worker took it is not
/// started: it ends `cancelled`, with no attempt counted.
async fn a_job_past_its_deadline_is_not_started(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let (id, mut envelope) = rig.enqueue(JobKind::Noop, None, json!({})).await;
    envelope.deadline = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    rig.broker.publish(&envelope).await.unwrap();
    let job = rig.wait_for(id, &["cancelled"], 10).await;
    assert_eq!(job.attempts, 0);
    assert_eq!(job.error.as_deref(), Some(jobs::EXPIRED_ERROR));
    assert!(rig.results(id).await.is_empty());
    rig.stop().await;
}

/// A deadline is for the first start: a job that started in time and failed
/// retries after it, instead of being cancelled as "not started".
#[tokio::test]
async fn a_retry_is_not_held_to_the_first_starts_deadline() {
    let rig = Rig::start().await;
    let (id, mut envelope) = rig
        .enqueue(JobKind::Noop, None, json!({"fail_attempts": 1}))
        .await;
    // Later than the first start, sooner than the retry (1 s of backoff).
    envelope.deadline = Some(chrono::Utc::now() + chrono::Duration::milliseconds(500));
    rig.broker.publish(&envelope).await.unwrap();
    let job = rig.wait_for(id, &["succeeded", "cancelled"], 15).await;
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 2));
    rig.stop().await;
}
