//! Workers that stop, stall or die: graceful shutdown, hand-backs, lost
//! leases, SIGKILL mid-job; no job is lost or run twice.

use crate::support::*;
use ferro_tasks::JobKind;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

on_both_brokers!(
    jobs_the_broker_lost_are_published_again,
    shutdown_lets_running_jobs_finish,
    jobs_published_while_a_worker_stops_are_not_lost,
    a_job_whose_worker_is_killed_still_succeeds_once,
    a_job_interrupted_on_every_attempt_fails_and_is_dead_lettered,
);

/// A worker whose job was taken over by another (its lease ran out while it
/// stalled) stops the job and records nothing: the job is the new owner's.
#[tokio::test]
async fn a_worker_that_lost_its_lease_leaves_the_job_to_the_new_owner() {
    let rig = Rig::start().await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 20000}))
        .await;
    rig.wait_for(id, &["running"], 10).await;
    // As another worker's claim after the lease ran out leaves the row.
    sqlx::query("UPDATE jobs SET worker_id = 'other', attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .execute(&rig.db.owner().await)
        .await
        .unwrap();
    // The watcher renews every lease / 3 (5 s / 3 here) and finds it lost.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let job = rig.job(id).await;
    assert_eq!(
        (job.status.as_str(), job.error.as_deref()),
        ("running", None)
    );
    let owner: String = sqlx::query_scalar("SELECT worker_id FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&rig.db.owner().await)
        .await
        .unwrap();
    assert_eq!(owner, "other");
    assert!(rig.results(id).await.is_empty());
    rig.stop().await;
}

async fn shutdown_lets_running_jobs_finish(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 1500}))
        .await;
    rig.wait_for(id, &["running"], 10).await;
    rig.stop.cancel();
    let job = rig.wait_for(id, &["succeeded"], 10).await;
    assert_eq!(job.attempts, 1);
    rig.stop().await;
}

/// Jobs published while a worker is shutting down are not lost. The worker
/// stops taking deliveries at once, but its last read may still be waiting
/// in the broker and take a job after that (on Redis Streams the entry is
/// then pending for the leaving consumer): whatever it took goes back for
/// the next worker.
async fn jobs_published_while_a_worker_stops_are_not_lost(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let long = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 1500}))
        .await;
    rig.wait_for(long, &["running"], 10).await;
    rig.stop.cancel();
    // Past the worker's last `next()`, within its read's wait in the broker.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut late = Vec::new();
    for _ in 0..3 {
        late.push(rig.submit(JobKind::Noop, None, json!({})).await);
    }
    // The worker finishes the running job and leaves.
    let mut rig = rig.without_in_process_worker().await;
    assert_eq!(rig.job(long).await.status, "succeeded");
    for id in &late {
        assert_eq!(
            rig.job(*id).await.status,
            "queued",
            "not run by a leaving worker"
        );
    }
    rig.spawn_worker("w2").await;
    for id in late {
        rig.wait_for(id, &["succeeded"], 10).await;
    }
    rig.stop().await;
}

async fn a_job_whose_worker_is_killed_still_succeeds_once(backend: Backend) {
    // The job must go to the real binary.
    let rig = Rig::start_on(backend, None)
        .await
        .without_in_process_worker()
        .await;
    let spawn_binary = || rig.spawn_binary(&[("WORKER_LEASE_SECONDS", "2")]);
    let mut first = spawn_binary();
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 4000}))
        .await;
    rig.wait_for(id, &["running"], 15).await;
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();

    let second = spawn_binary();
    let job = rig.wait_for(id, &["succeeded"], 30).await;
    assert_eq!(job.attempts, 2, "run again once, after the lease expired");
    assert_eq!(rig.results(id).await.len(), 1);
    terminate(second);
    rig.stop().await;
}

/// A job whose worker died during its last allowed attempt (and the one
/// extra run after such a death) cannot be claimed again: it ends `failed`
/// and is dead-lettered, instead of its delivery coming back for ever.
async fn a_job_interrupted_on_every_attempt_fails_and_is_dead_lettered(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let (id, envelope) = rig.enqueue(JobKind::Noop, None, json!({})).await;
    rig.died_on_its_last_attempt(id).await;
    rig.broker.publish(&envelope).await.unwrap();

    let ended = rig.wait_for(id, &["failed"], 15).await;
    assert_eq!(ended.attempts, ended.max_attempts + 1, "not claimed again");
    assert!(
        ended.error.as_deref().unwrap().contains("stopped"),
        "{:?}",
        ended.error
    );
    rig.wait_for_dead_letter(id).await;
    rig.stop().await;
}

/// A job still running when the shutdown grace runs out is handed back
/// without spending its attempt: a job longer than the grace survives any
/// number of deploys, and the next worker runs it as the same attempt.
#[tokio::test]
async fn a_job_handed_back_at_shutdown_keeps_its_attempt() {
    let rig = Rig::start().await.without_in_process_worker().await;
    let spawn_binary = || rig.spawn_binary(&[("WORKER_SHUTDOWN_GRACE_SECONDS", "1")]);
    let id = rig
        .submit(JobKind::Noop, None, json!({"sleep_ms": 2500}))
        .await;
    for round in 0..3 {
        let worker = spawn_binary();
        let running = rig.wait_for(id, &["running"], 15).await;
        assert_eq!(running.attempts, 1, "round {round}");
        terminate(worker);
        let back = rig.job(id).await;
        assert_eq!(
            (back.status.as_str(), back.attempts),
            ("queued", 0),
            "round {round}: {back:?}"
        );
    }
    let worker = spawn_binary();
    let job = rig.wait_for(id, &["succeeded"], 20).await;
    assert_eq!(job.attempts, 1);
    terminate(worker);
    rig.stop().await;
}

/// Jobs published and then lost by the broker (its queue deleted under
/// them, as a node recreated without its data or a purge would) are
/// published again by the relay's check and run, each once.
async fn jobs_the_broker_lost_are_published_again(backend: Backend) {
    let mut rig = Rig::start_on(backend, None)
        .await
        .without_in_process_worker()
        .await;
    rig.redeliver_after = Duration::from_secs(1);
    // The relay alone: it publishes them, nothing consumes.
    rig.spawn_relay().await;
    let ids = queued_jobs(&rig.app, rig.db.default_tenant(), 20).await;
    let owner = rig.db.owner().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE published_at IS NULL")
                .fetch_one(&owner)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} records never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The broker loses every message.
    rig.broker.delete_topology().await.unwrap();
    let lost_at = Instant::now();
    rig.spawn_worker("w1").await;
    for id in &ids {
        let job = rig.wait_for(*id, &["succeeded"], 30).await;
        assert_eq!(job.attempts, 1, "{id} ran once");
    }
    let took = lost_at.elapsed();
    let republished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE publish_attempts >= 2")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(republished, 20, "every lost job was published again");
    println!("20 lost jobs published again and succeeded {took:?} after the loss");
    rig.stop().await;
}
