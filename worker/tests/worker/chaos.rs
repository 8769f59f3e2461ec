//! Chaos at full rate: while 32 submitters write jobs as fast as the api's
//! batched submissions do (multi-row inserts, one commit per batch, the
//! batch published together), the worker binary, then the broker, then the
//! database are killed with SIGKILL and started again (the later ones while
//! the worker drains what was submitted). Every submitted job
//! ends `succeeded` with exactly one result, none is lost and none doubled.

use crate::support::*;
use ferro_broker::Broker;
use ferro_db::TenantCtx;
use ferro_tasks::jobs::{self, Enqueued, NewJob};
use ferro_testkit::{PostgresServer, RabbitMqNode, RedisServer, TestDb};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

on_both_brokers!(kill_9_of_worker_broker_and_database_at_full_rate_loses_and_doubles_nothing);

const SUBMITTERS: usize = 32;
const BATCH: usize = 8;
/// Submissions stop here (a few seconds at full rate), so that the run
/// stays short; the later kills then land while the worker drains.
const MOST_JOBS: usize = 16_000;

/// The test's own broker server, killed and started again mid-run.
enum BrokerServer {
    RabbitMq(RabbitMqNode),
    Redis(RedisServer),
}

impl BrokerServer {
    fn start(backend: Backend) -> Self {
        match backend {
            Backend::RabbitMq => Self::RabbitMq(RabbitMqNode::start()),
            Backend::RedisStreams => Self::Redis(RedisServer::start()),
        }
    }

    fn url(&self) -> String {
        match self {
            Self::RabbitMq(node) => node.url(),
            Self::Redis(server) => server.url(),
        }
    }

    fn restart(&mut self, down_for: Duration) {
        match self {
            Self::RabbitMq(node) => node.restart(down_for),
            Self::Redis(server) => server.restart(down_for),
        }
    }
}

fn broker_env(url: &str, prefix: &str) -> Vec<(String, String)> {
    vec![
        ("BROKER_URL".into(), url.into()),
        ("BROKER_PREFIX".into(), prefix.into()),
        ("BROKER_VISIBILITY_TIMEOUT_SECONDS".into(), "3".into()),
    ]
}

fn spawn_worker(db: &TestDb, broker: &[(String, String)]) -> Binary {
    Binary(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .envs(db.env_pairs())
            .envs(broker.iter().cloned())
            .env("RUST_LOG", "warn")
            .env("WORKER_CONCURRENCY", "64")
            .env("WORKER_LEASE_SECONDS", "2")
            .env("JOB_REDELIVER_AFTER_SECONDS", "5")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// One batch as the api's submissions write it: the jobs and their outbox
/// records in one transaction, published after commit, marked published.
/// Idempotency keys make a retry after an ambiguous failure safe. Any
/// failure after commit is left to the worker's relay.
async fn submit_batch(
    app: &ferro_db::Db,
    broker: &Broker,
    ctx: TenantCtx,
    keys: &[String],
) -> Result<(), ferro_db::DbError> {
    let new: Vec<NewJob> = keys
        .iter()
        .map(|key| NewJob {
            idempotency_key: Some(key.clone()),
            ..noop_job(jobs::PUBLISHED_BY_WRITER)
        })
        .collect();
    let mut tx = app.begin(ctx).await?;
    let answers = jobs::enqueue_many(&mut tx, &new).await?;
    tx.commit().await?;
    let created: Vec<_> = answers
        .into_iter()
        .filter_map(|a| match a {
            Enqueued::Created {
                envelope,
                outbox_id,
                ..
            } => Some((envelope, outbox_id)),
            _ => None,
        })
        .collect();
    let envelopes: Vec<_> = created.iter().map(|(e, _)| e).collect();
    let sent = broker.publish_many(&envelopes).await;
    let published: Vec<i64> = created
        .iter()
        .zip(sent)
        .filter(|(_, sent)| sent.is_ok())
        .map(|((_, id), _)| *id)
        .collect();
    if !published.is_empty() {
        let mut tx = app.begin(ctx).await?;
        jobs::mark_published(&mut tx, &published).await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn kill_9_of_worker_broker_and_database_at_full_rate_loses_and_doubles_nothing(
    backend: Backend,
) {
    ferro_telemetry::install_crypto_provider();
    let mut pg = PostgresServer::start();
    let db = TestDb::on_server(&pg.url()).await;
    let mut server = BrokerServer::start(backend);
    let prefix = format!("chaos-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let env = broker_env(&server.url(), &prefix);
    let broker = Arc::new(
        Broker::from_config(
            &ferro_config::BrokerConfig::from_env(&ferro_config::Env::from_pairs(env.clone()))
                .unwrap(),
        )
        .unwrap(),
    );
    let app = db.app().await;
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let mut worker = spawn_worker(&db, &env);

    let running = Arc::new(AtomicBool::new(true));
    let (submitted, retried) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|n| {
            let (app, broker, running) = (app.clone(), broker.clone(), running.clone());
            let (submitted, retried) = (submitted.clone(), retried.clone());
            tokio::spawn(async move {
                let mut batch = 0;
                while running.load(Ordering::Relaxed)
                    && submitted.load(Ordering::Relaxed) < MOST_JOBS
                {
                    let keys: Vec<String> = (0..BATCH)
                        .map(|i| format!("chaos-{n}-{batch}-{i}"))
                        .collect();
                    // The same keys again until the batch is in.
                    while submit_batch(&app, &broker, ctx, &keys).await.is_err() {
                        retried.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    submitted.fetch_add(BATCH, Ordering::Relaxed);
                    batch += 1;
                }
            })
        })
        .collect();

    // The worker, the broker and the database die in turn, mid-run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Command::new("kill")
        .args(["-KILL", &worker.id().to_string()])
        .status()
        .unwrap();
    worker.wait().unwrap();
    worker = spawn_worker(&db, &env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart(Duration::from_secs(1));
        server
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg = tokio::task::spawn_blocking(move || {
        pg.restart(Duration::from_secs(1));
        pg
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    for s in submitters {
        s.await.unwrap();
    }
    let window = started.elapsed();
    let total = submitted.load(Ordering::Relaxed);

    let owner = db.owner().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (done, jobs): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM jobs",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(jobs as usize, total, "a job per submission, none doubled");
        if done == jobs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {jobs} jobs succeeded; the rest were lost"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (results, jobs_with_one): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM job_results), \
         (SELECT count(*) FROM (SELECT job_id FROM job_results GROUP BY job_id \
           HAVING count(*) = 1) r)",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(
        (results as usize, jobs_with_one as usize),
        (total, total),
        "each job's result written once"
    );
    println!(
        "{total} jobs submitted in {window:?} ({:.0}/s, {} batches retried) through a kill -9 of \
         the worker, the broker and the database; all succeeded once",
        total as f64 / window.as_secs_f64(),
        retried.load(Ordering::Relaxed)
    );
    terminate(worker);
    drop((owner, app));
    drop(db);
    drop((server, pg));
}
