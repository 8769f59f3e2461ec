//! The worker process: its heartbeat and `worker ping`, its metrics, its
//! command line.

use crate::support::*;
use ferro_tasks::JobKind;
use ferro_testkit::TestDb;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test]
async fn the_heartbeat_is_written_and_worker_ping_reads_it() {
    ferro_telemetry::install_crypto_provider();
    let db = TestDb::new().await;
    let redis_prefix = format!("test:{}:", Uuid::new_v4().simple());
    let broker_prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let broker = Arc::new(Backend::RabbitMq.broker(&broker_prefix));
    let pool =
        ferro_redis::create_pool("redis://127.0.0.1:6379/0", 2, Duration::from_secs(2)).unwrap();
    let events = worker::Events::new(pool.clone(), redis_prefix.clone());
    let worker_id = format!("{}:{}", worker::host_name(), std::process::id());
    let settings = worker::RunConfig {
        concurrency: 3,
        lease: Duration::from_secs(5),
        grace: Duration::from_secs(2),
        worker_id: worker_id.clone(),
        smtp: None,
        retention: Default::default(),
        queues: Vec::new(),
        limits: Default::default(),
        uploads: Default::default(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker::run(
        db.app().await,
        broker.clone(),
        Some(events),
        settings,
        stop.clone(),
    ));

    let ping = |prefix: &str| {
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .arg("ping")
            .env("REDIS_KEY_PREFIX", prefix)
            .env("DATABASE_URL", "postgres://unused@127.0.0.1/unused")
            .status()
            .unwrap()
    };
    let key = format!("{redis_prefix}workers:{worker_id}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut conn = ferro_redis::connection(&pool).await.unwrap();
    loop {
        let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !fields.is_empty() {
            assert_eq!(fields["concurrency"], "3");
            assert_eq!(fields["pid"], std::process::id().to_string());
            for f in ["host", "active", "processed", "failed", "started", "beat"] {
                assert!(fields.contains_key(f), "heartbeat lacks {f}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ping(&redis_prefix).success());
    assert!(!ping("test:nobody-here:").success());

    stop.cancel();
    task.await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "the heartbeat is removed on shutdown");
    broker.delete_topology().await.unwrap();
}

/// A loopback port nothing listens on, and its address.
fn free_address() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("127.0.0.1:{port}"))
}

/// `worker_jobs_total` counts the jobs the worker ends without a run too:
/// one past its deadline is `cancelled`, one out of attempts `failed`.
#[tokio::test]
async fn jobs_ended_without_a_run_are_counted_in_the_metrics() {
    let rig = Rig::start().await.without_in_process_worker().await;
    let (metrics_port, metrics_addr) = free_address();
    let worker = rig.spawn_binary(&[("WORKER_METRICS_ADDR", metrics_addr.as_str())]);

    let (late, mut envelope) = rig.enqueue(JobKind::Noop, None, json!({})).await;
    envelope.deadline = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    rig.broker.publish(&envelope).await.unwrap();
    let (spent, envelope) = rig.enqueue(JobKind::Noop, None, json!({})).await;
    rig.died_on_its_last_attempt(spent).await;
    rig.broker.publish(&envelope).await.unwrap();
    rig.wait_for(late, &["cancelled"], 15).await;
    rig.wait_for(spent, &["failed"], 15).await;

    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    for series in [
        r#"worker_jobs_total{kind="noop",outcome="cancelled"} 1"#,
        r#"worker_jobs_total{kind="noop",outcome="failed"} 1"#,
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }
    terminate(worker);
    rig.stop().await;
}

/// What the relay publishes (here a deferred job it releases) is counted
/// in `outbox_relayed_total`.
#[tokio::test]
async fn jobs_the_relay_publishes_are_counted_in_the_metrics() {
    let rig = Rig::start().await.without_in_process_worker().await;
    let (metrics_port, metrics_addr) = free_address();
    let worker = rig.spawn_binary(&[("WORKER_METRICS_ADDR", metrics_addr.as_str())]);
    let mut deferred = noop_job(Duration::ZERO);
    deferred.options.run_at = Some(chrono::Utc::now() + chrono::Duration::milliseconds(300));
    let mut tx = rig
        .app
        .begin(ferro_db::TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    let answer = ferro_tasks::jobs::enqueue(&mut tx, deferred).await.unwrap();
    tx.commit().await.unwrap();
    let ferro_tasks::jobs::Enqueued::Created { job, .. } = answer else {
        panic!("not created: {answer:?}");
    };
    assert_eq!(job.status, "scheduled");
    rig.wait_for(job.id, &["succeeded"], 15).await;

    // The relay counts a record once it is marked published, which may be
    // a moment after the job ran.
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let relayed: Option<f64> = text
            .lines()
            .find_map(|l| l.strip_prefix("outbox_relayed_total "))
            .and_then(|v| v.trim().parse().ok());
        if relayed.is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(Instant::now() < until, "no outbox_relayed_total in\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    terminate(worker);
    rig.stop().await;
}

#[test]
fn unknown_arguments_start_nothing() {
    for (args, code) in [
        (&["--help"][..], 0),
        (&["bogus"][..], 2),
        (&["ping", "--pid"][..], 2),
        (&["--concurrency=many"][..], 2),
        (&["--concurrency", "0"][..], 2),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(args)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}

/// `worker ping --pid N` takes a process id: a non-numeric one stops it
/// with 2, a real one is looked for (none beats under this test's Redis
/// prefix: 1).
#[test]
fn the_ping_pid_is_a_process_id() {
    let prefix = format!("ping-test-{}:", std::process::id());
    for (args, code) in [
        (&["ping", "--pid", "x"][..], 2),
        (&["ping", "--pid", "42"][..], 1),
        (&["ping"][..], 1),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(args)
            .env("REDIS_KEY_PREFIX", &prefix)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}

/// `--concurrency N` and `--concurrency=N` set the real binary's concurrency
/// (over WORKER_CONCURRENCY), as its heartbeat reports it.
#[tokio::test]
async fn the_concurrency_flag_sets_the_workers_concurrency() {
    let rig = Rig::start().await.without_in_process_worker().await;
    let pool =
        ferro_redis::create_pool("redis://127.0.0.1:6379/0", 1, Duration::from_secs(2)).unwrap();
    let mut conn = ferro_redis::connection(&pool).await.unwrap();
    for (args, expected) in [
        (&["--concurrency", "3"][..], "3"),
        (&["--concurrency=5"][..], "5"),
    ] {
        let prefix = format!("test:{}:", Uuid::new_v4().simple());
        let worker = Binary(
            Command::new(env!("CARGO_BIN_EXE_worker"))
                .args(args)
                .envs(rig.db.env_pairs())
                .envs(rig.backend.env(&rig.prefix))
                .env("REDIS_KEY_PREFIX", &prefix)
                .env("WORKER_CONCURRENCY", "7")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let key = format!("{prefix}workers:{}:{}", worker::host_name(), worker.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        let concurrency = loop {
            let value: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("concurrency")
                .query_async(&mut conn)
                .await
                .unwrap();
            if let Some(value) = value {
                break value;
            }
            assert!(Instant::now() < deadline, "no heartbeat from {args:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(concurrency, expected, "{args:?}");
        terminate(worker);
    }
    rig.stop().await;
}
