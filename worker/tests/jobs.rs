//! The worker against the real PostgreSQL and broker: each test has its
//! own database and broker prefix, and runs the real worker loop (in-process,
//! or the real binary for the SIGKILL test). The tests of the pipeline and of
//! the job kinds run on both brokers (modules `rabbitmq` and `redis_streams`);
//! those of the worker's database batches and of scheduled maintenance kinds
//! run on RabbitMQ.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_broker::Broker;
use ferro_db::TenantCtx;
use ferro_tasks::JobKind;
use ferro_tasks::jobs::{self, Enqueued, Job, NewJob};
use ferro_testkit::TestDb;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// SIGTERM to a worker binary, which must exit 0.
fn terminate(mut worker: Binary) {
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(worker.wait().unwrap().success(), "SIGTERM exits 0");
}

/// A worker binary the test started; killed if the test ends (or fails)
/// without stopping it, so a failed test leaves no worker behind.
struct Binary(std::process::Child);

impl std::ops::Deref for Binary {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Binary {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[derive(Clone, Copy)]
enum Backend {
    RabbitMq,
    RedisStreams,
}

impl Backend {
    fn url(self) -> &'static str {
        match self {
            Backend::RabbitMq => "amqp://guest:guest@127.0.0.1:5672/%2f",
            Backend::RedisStreams => "redis://127.0.0.1:6379/0",
        }
    }

    /// The broker settings of a test: its own prefix, and a short
    /// visibility timeout so that abandoned stream entries come back soon.
    fn env(self, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("BROKER_URL".into(), self.url().into()),
            ("BROKER_PREFIX".into(), prefix.into()),
            ("BROKER_VISIBILITY_TIMEOUT_SECONDS".into(), "3".into()),
        ]
    }

    fn broker(self, prefix: &str) -> Broker {
        let env = ferro_config::Env::from_pairs(self.env(prefix));
        Broker::from_config(&ferro_config::BrokerConfig::from_env(&env).unwrap()).unwrap()
    }
}

/// Runs each named `async fn(Backend)` as a test on both brokers.
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::RabbitMq).await
            })*
        }
        mod redis_streams {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::RedisStreams).await
            })*
        }
    };
}

on_both_brokers!(
    a_noop_job_runs_to_success_with_progress_and_a_result,
    transient_failures_are_retried_with_backoff,
    exhausted_retries_fail_the_job_and_dead_letter_it,
    a_duplicate_delivery_runs_the_handler_once,
    a_running_job_stops_when_cancelled,
    shutdown_lets_running_jobs_finish,
    jobs_published_while_a_worker_stops_are_not_lost,
    a_job_whose_worker_is_killed_still_succeeds_once,
    a_job_interrupted_on_every_attempt_fails_and_is_dead_lettered,
    a_job_past_its_deadline_is_not_started,
    many_jobs_all_succeed_exactly_once,
    a_cancelled_queued_job_is_never_started,
    a_running_export_stops_when_cancelled,
    devices_export_produces_csv_without_secrets,
    snmp_get_reads_sys_descr_from_a_real_agent,
    snmp_walk_reads_the_system_subtree,
    an_agent_that_does_not_answer_fails_the_job_after_its_retries,
    email_send_delivers_to_a_real_smtp_server,
    email_send_fails_after_retries_when_the_server_is_unreachable,
);

struct Rig {
    smtp: Option<worker::SmtpConfig>,
    db: TestDb,
    prefix: String,
    backend: Backend,
    broker: Arc<Broker>,
    /// The test's own handle as the application role.
    app: ferro_db::Db,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Rig {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    async fn start_with(smtp: Option<worker::SmtpConfig>) -> Self {
        Self::start_on(Backend::RabbitMq, smtp).await
    }

    async fn start_on(backend: Backend, smtp: Option<worker::SmtpConfig>) -> Self {
        ferro_telemetry::install_crypto_provider();
        let db = TestDb::new().await;
        let prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let broker = Arc::new(backend.broker(&prefix));
        let app = db.app().await;
        let mut rig = Rig {
            smtp,
            app,
            db,
            prefix,
            backend,
            broker,
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        };
        rig.spawn_worker("w1").await;
        rig
    }

    fn settings(&self, id: &str) -> worker::RunConfig {
        worker::RunConfig {
            concurrency: 4,
            lease: Duration::from_secs(5),
            grace: Duration::from_secs(10),
            worker_id: id.to_owned(),
            smtp: self.smtp.clone(),
        }
    }

    async fn spawn_worker(&mut self, id: &str) {
        let app = self.db.app().await;
        let (broker, stop) = (self.broker.clone(), self.stop.clone());
        let relay_db = app.clone();
        let relay_broker = broker.clone();
        let relay_stop = stop.clone();
        self.tasks.push(tokio::spawn(async move {
            worker::relay::run(
                relay_db,
                &relay_broker,
                Duration::from_millis(100),
                relay_stop.cancelled_owned(),
            )
            .await
        }));
        let settings = self.settings(id);
        self.tasks.push(tokio::spawn(async move {
            worker::run(app, broker, None, settings, stop).await
        }));
    }

    /// Enqueues like the api does: job + outbox in one transaction, then publish.
    async fn submit(&self, kind: JobKind, device_id: Option<Uuid>, params: Value) -> Uuid {
        let (id, envelope) = self.enqueue(kind, device_id, params).await;
        self.broker.publish(&envelope).await.unwrap();
        id
    }

    /// The job and its outbox record, committed and marked published, with
    /// the envelope still to publish.
    async fn enqueue(
        &self,
        kind: JobKind,
        device_id: Option<Uuid>,
        params: Value,
    ) -> (Uuid, ferro_tasks::TaskEnvelope) {
        let mut tx = self
            .app
            .begin(TenantCtx::new(self.db.default_tenant(), None))
            .await
            .unwrap();
        let Enqueued::Created {
            job,
            envelope,
            outbox_id,
        } = jobs::enqueue(
            &mut tx,
            NewJob {
                kind,
                device_id,
                params,
                idempotency_key: None,
                schedule_id: None,
                scheduled_for: None,
                relay_after: jobs::PUBLISHED_BY_WRITER,
                trace: None,
                deadline: None,
            },
        )
        .await
        .unwrap()
        else {
            panic!("not created")
        };
        jobs::mark_published(&mut tx, &[outbox_id]).await.unwrap();
        tx.commit().await.unwrap();
        (job.id, envelope)
    }

    /// Cancels the job as the api does.
    async fn cancel(&self, id: Uuid) {
        let mut tx = self
            .app
            .begin(TenantCtx::new(self.db.default_tenant(), None))
            .await
            .unwrap();
        jobs::cancel(&mut tx, id).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn job(&self, id: Uuid) -> Job {
        let app = &self.app;
        let mut tx = app
            .begin(TenantCtx::new(self.db.default_tenant(), None))
            .await
            .unwrap();
        jobs::get(&mut tx, id).await.unwrap().unwrap()
    }

    async fn wait_for(&self, id: Uuid, statuses: &[&str], secs: u64) -> Job {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.job(id).await;
            if statuses.contains(&job.status.as_str()) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job stayed {} (wanted {statuses:?}): {job:?}",
                job.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 5 s) for the dead letter of job `id`.
    async fn wait_for_dead_letter(&self, id: Uuid) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(dead) = self.broker.take_dead_letter().await.unwrap() {
                assert_eq!(dead.unwrap().job_id, id);
                return;
            }
            assert!(Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the in-process worker, for tests that run the real binary.
    async fn without_in_process_worker(mut self) -> Self {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.stop = CancellationToken::new();
        self
    }

    /// The real worker binary on this test's database and broker, with
    /// `env` on top.
    fn spawn_binary(&self, env: &[(&str, &str)]) -> Binary {
        Binary(
            Command::new(env!("CARGO_BIN_EXE_worker"))
                .envs(self.db.env_pairs())
                .envs(self.backend.env(&self.prefix))
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// Leaves the job as a worker that took it for the last time and died
    /// leaves it: running, attempts spent, its lease run out.
    async fn died_on_its_last_attempt(&self, id: Uuid) {
        sqlx::query(
            "UPDATE jobs SET status = 'running', attempts = max_attempts + 1, worker_id = 'gone', \
             started_at = now(), lease_expires_at = now() - interval '1 second' WHERE id = $1",
        )
        .bind(id)
        .execute(&self.db.owner().await)
        .await
        .unwrap();
    }

    async fn results(&self, id: Uuid) -> Vec<Value> {
        let app = &self.app;
        let mut tx = app
            .begin(TenantCtx::new(self.db.default_tenant(), None))
            .await
            .unwrap();
        jobs::results(&mut tx, id, 100, 0)
            .await
            .unwrap()
            .0
            .into_iter()
            .map(|r| r.data)
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.broker.delete_topology().await.unwrap();
    }
}

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

async fn devices_export_produces_csv_without_secrets(backend: Backend) {
    let rig = Rig::start_on(backend, None).await;
    let app = rig.db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, tags, snmp_version, snmp_community) VALUES \
         (app_current_tenant(), 'core, main', 'snmp', '10.0.0.1', 161, '{core}', 'v2c', 'sekret'), \
         (app_current_tenant(), 'web', 'http', 'example.com', 80, '{}', NULL, NULL)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let id = rig.submit(JobKind::DevicesExport, None, json!({})).await;
    rig.wait_for(id, &["succeeded"], 10).await;
    let result = &rig.results(id).await[0];
    assert_eq!(result["rows"], 2);
    let csv = result["csv"].as_str().unwrap();
    assert!(csv.starts_with("id,name,protocol,host,port,tags,status\n"));
    assert!(csv.contains("\"core, main\",snmp,10.0.0.1,161,core,unknown"));
    assert!(!csv.contains("sekret"));
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

use ferro_testkit::SnmpAgent;

async fn snmp_device(rig: &Rig, port: u16, community: &str) -> Uuid {
    let app = rig.db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    let id = sqlx::query_scalar(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, snmp_version, snmp_community) \
         VALUES (app_current_tenant(), $1, 'snmp', '127.0.0.1', $2, 'v2c', $3) RETURNING id",
    )
    .bind(format!("agent-{port}-{community}"))
    .bind(i32::from(port))
    .bind(community)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn snmp_get_reads_sys_descr_from_a_real_agent(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    let device = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let id = rig
        .submit(
            JobKind::SnmpGet,
            Some(device),
            json!({"oids": ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0"]}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let values = rig.results(id).await[0]["values"].clone();
    assert_eq!(
        values[0],
        json!({"oid": "1.3.6.1.2.1.1.1.0", "type": "string", "value": "Ferrostack test agent"})
    );
    assert_eq!(values[1]["type"], "timeticks");
    rig.stop().await;
}

async fn snmp_walk_reads_the_system_subtree(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    let device = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let id = rig
        .submit(
            JobKind::SnmpWalk,
            Some(device),
            json!({"oid": "1.3.6.1.2.1.1"}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let result = &rig.results(id).await[0];
    assert!(result["rows"].as_u64().unwrap() >= 5, "{result}");
    let values = result["values"].as_array().unwrap();
    assert!(
        values
            .iter()
            .all(|v| v["oid"].as_str().unwrap().starts_with("1.3.6.1.2.1.1."))
    );
    assert!(values.iter().any(|v| v["value"] == "test-lab"));
    assert_eq!(result["truncated"], false);
    rig.stop().await;
}

async fn an_agent_that_does_not_answer_fails_the_job_after_its_retries(backend: Backend) {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(backend, None).await;
    // A v2c agent does not answer a wrong community: every attempt times out.
    let device = snmp_device(&rig, agent.port, "wrong-community").await;
    let id = rig
        .submit(
            JobKind::SnmpGet,
            Some(device),
            json!({"oids": ["1.3.6.1.2.1.1.1.0"]}),
        )
        .await;
    let job = rig.wait_for(id, &["failed"], 40).await;
    assert_eq!(job.attempts, job.max_attempts);
    assert!(job.error.unwrap().contains("no SNMP answer"));
    rig.stop().await;
}

#[tokio::test]
async fn sessions_cleanup_purges_old_logs_in_every_tenant() {
    let rig = Rig::start().await;
    let acme = rig.db.create_tenant("acme").await;
    let owner = rig.db.owner().await;
    for (tenant, age) in [(rig.db.default_tenant(), 100), (acme, 100), (acme, 10)] {
        sqlx::query(
            "INSERT INTO login_logs (tenant_id, username, outcome, created_at) \
             VALUES ($1, 'x', 'failure', now() - make_interval(days => $2))",
        )
        .bind(tenant)
        .bind(age)
        .execute(&owner)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO login_logs (username, outcome, created_at) VALUES ('nobody', 'failure', now() - interval '400 days')")
        .execute(&owner)
        .await
        .unwrap();
    let id = rig
        .submit(
            JobKind::SessionsCleanup,
            None,
            json!({"retention_days": 30}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 10).await;
    let result = &rig.results(id).await[0];
    assert_eq!(result["login_logs_deleted"], 3, "{result}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM login_logs")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(left, 1, "the 10-day-old row stays");
    rig.stop().await;
}

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

async fn email_send_delivers_to_a_real_smtp_server(backend: Backend) {
    let sink = ferro_testkit::SmtpSink::start();
    let smtp = worker::SmtpConfig::from_env(&ferro_config::Env::from_pairs([
        ("SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port)),
        ("SMTP_FROM", "Ferrostack <noreply@example.com>".to_owned()),
    ]))
    .unwrap();
    let rig = Rig::start_on(backend, smtp).await;
    let id = rig
        .submit(
            JobKind::EmailSend,
            None,
            json!({"to": "ops@example.com", "subject": "Disk full", "body": "core-1 is at 99%"}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.contains("Subject: Disk full"), "{m}");
    assert!(m.contains("To: ops@example.com"), "{m}");
    assert!(m.contains("From: Ferrostack <noreply@example.com>"), "{m}");
    assert!(m.contains("core-1 is at 99%"), "{m}");
    assert_eq!(rig.results(id).await[0]["smtp_code"], "250");
    rig.stop().await;
}

async fn email_send_fails_after_retries_when_the_server_is_unreachable(backend: Backend) {
    let smtp = worker::SmtpConfig::from_env(&ferro_config::Env::from_pairs([(
        "SMTP_URL",
        "smtp://127.0.0.1:1",
    )]))
    .unwrap();
    let rig = Rig::start_on(backend, smtp).await;
    let id = rig
        .submit(
            JobKind::EmailSend,
            None,
            json!({"to": "ops@example.com", "subject": "s", "body": "b"}),
        )
        .await;
    let job = rig.wait_for(id, &["failed"], 30).await;
    assert_eq!(job.attempts, job.max_attempts);
    assert!(job.error.unwrap().contains("sending failed"));
    rig.stop().await;
}

#[tokio::test]
async fn devices_poll_marks_answering_devices_up_and_silent_ones_down_in_every_tenant() {
    let agent = SnmpAgent::start();
    let rig = Rig::start().await;
    let here = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;
    let silent = snmp_device(&rig, agent.port, "wrong-community").await;
    // A device of another tenant is polled too (platform maintenance).
    let acme = rig.db.create_tenant("acme").await;
    let owner = rig.db.owner().await;
    let elsewhere: Uuid = sqlx::query_scalar(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, snmp_version, snmp_community) \
         VALUES ($1, 'acme-agent', 'snmp', '127.0.0.1', $2, 'v2c', $3) RETURNING id",
    )
    .bind(acme)
    .bind(i32::from(agent.port))
    .bind(SnmpAgent::COMMUNITY)
    .fetch_one(&owner)
    .await
    .unwrap();
    let id = rig
        .submit(JobKind::DevicesPoll, None, json!({"concurrency": 4}))
        .await;
    rig.wait_for(id, &["succeeded"], 20).await;
    assert_eq!(
        rig.results(id).await[0],
        json!({"polled": 3, "up": 2, "down": 1})
    );
    let status = |device: Uuid| {
        let owner = owner.clone();
        async move {
            sqlx::query_as::<_, (String, bool)>(
                "SELECT status, last_seen_at IS NOT NULL FROM devices WHERE id = $1",
            )
            .bind(device)
            .fetch_one(&owner)
            .await
            .unwrap()
        }
    };
    assert_eq!(status(here).await, ("up".into(), true));
    assert_eq!(status(elsewhere).await, ("up".into(), true));
    assert_eq!(status(silent).await, ("down".into(), false));
    rig.stop().await;
}

/// A plain `noop` job whose outbox record is due to the relay after `relay_after`.
fn noop_job(relay_after: Duration) -> NewJob {
    NewJob {
        kind: JobKind::Noop,
        device_id: None,
        params: json!({}),
        idempotency_key: None,
        schedule_id: None,
        scheduled_for: None,
        relay_after,
        trace: None,
        deadline: None,
    }
}

/// Inserts `n` queued noop jobs into `tenant` (as the application role).
async fn queued_jobs(app: &ferro_db::Db, tenant: Uuid, n: usize) -> Vec<Uuid> {
    let mut tx = app.begin(TenantCtx::new(tenant, None)).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let new = noop_job(Duration::ZERO);
        let Enqueued::Created { job, .. } = jobs::enqueue(&mut tx, new).await.unwrap() else {
            panic!("not created")
        };
        ids.push(job.id);
    }
    tx.commit().await.unwrap();
    ids
}

/// The worker's batched claims and outcomes, called at once from many
/// tasks so that batches form: two tenants' jobs in the same batches, claims
/// and outcomes in the same batch, a job
/// asked for twice, a finished job, a missing one and another tenant's job
/// each get the answer a lone claim would give; results keep their order.
#[tokio::test]
async fn batched_claims_and_outcomes_answer_each_job_as_alone() {
    use ferro_tasks::JobStatus;
    use ferro_tasks::jobs::{Finish, NotClaimed};
    use worker::recorder::Recorder;

    let db = TestDb::new().await;
    let app = db.app().await;
    let (one, two) = (db.default_tenant(), db.create_tenant("second").await);
    let first = queued_jobs(&app, one, 20).await;
    let second = queued_jobs(&app, two, 20).await;
    let recorder = Recorder::new(app.clone(), "batch-test:1".into(), Duration::from_secs(30));
    let (ctx1, ctx2) = (TenantCtx::new(one, None), TenantCtx::new(two, None));

    // Every job once, plus first[0] a second time, all at once.
    let mut asks: Vec<(TenantCtx, Uuid)> = first.iter().map(|id| (ctx1, *id)).collect();
    asks.extend(second.iter().map(|id| (ctx2, *id)));
    asks.push((ctx1, first[0]));
    let claims = futures_util::future::join_all(
        asks.iter()
            .map(|&(ctx, id)| recorder.claim(ctx, id))
            .collect::<Vec<_>>(),
    )
    .await;
    let claims: Vec<_> = claims.into_iter().map(|c| c.unwrap()).collect();
    let won = claims.iter().filter(|c| c.is_ok()).count();
    assert_eq!(won, 40, "each job claimed once: {claims:?}");
    let twice: Vec<_> = asks
        .iter()
        .zip(&claims)
        .filter(|((_, id), _)| *id == first[0])
        .map(|(_, c)| c.clone())
        .collect();
    assert!(
        matches!(
            twice.as_slice(),
            [Ok(_), Err(NotClaimed::Leased(_))] | [Err(NotClaimed::Leased(_)), Ok(_)]
        ),
        "{twice:?}"
    );
    assert!(claims.iter().flatten().all(|c| c.attempts == 1));

    // Outcomes of both tenants at once; first[0] with three ordered results.
    let ends = asks[..40].iter().map(|&(ctx, id)| {
        let results = if id == first[0] {
            vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
        } else {
            vec![json!({"n": 0})]
        };
        let end = Finish {
            id,
            attempt: 1,
            status: JobStatus::Succeeded,
            error: None,
            results,
        };
        recorder.finish(ctx, end)
    });
    // Claims of more jobs at the same time: they share the outcomes' batch.
    let more = queued_jobs(&app, one, 10).await;
    let (states, more_claims) = tokio::join!(
        futures_util::future::join_all(ends.collect::<Vec<_>>()),
        futures_util::future::join_all(more.iter().map(|id| recorder.claim(ctx1, *id))),
    );
    for claim in &more_claims {
        let claim = claim
            .as_ref()
            .unwrap()
            .as_ref()
            .expect("a queued job is claimed");
        assert_eq!(claim.attempts, 1);
    }
    for state in &states {
        let state = state.as_ref().unwrap().as_ref().expect("it had not ended");
        assert_eq!((state.status.as_str(), state.progress), ("succeeded", 100));
    }

    // A finished job, a missing one, and a job of the other tenant.
    let again = recorder.claim(ctx1, first[1]).await.unwrap();
    assert_eq!(again, Err(NotClaimed::Finished));
    let missing = recorder.claim(ctx1, Uuid::new_v4()).await.unwrap();
    assert_eq!(missing, Err(NotClaimed::Missing));
    let fresh = queued_jobs(&app, two, 1).await[0];
    let foreign = recorder.claim(ctx1, fresh).await.unwrap();
    assert_eq!(
        foreign,
        Err(NotClaimed::Missing),
        "RLS hides the other tenant's job"
    );
    // Ending a job that already ended changes nothing and keeps no results.
    let late = Finish {
        id: first[1],
        attempt: 1,
        status: JobStatus::Failed,
        error: Some("late".into()),
        results: vec![json!({"late": true})],
    };
    assert_eq!(recorder.finish(ctx1, late).await.unwrap(), None);

    let owner = db.owner().await;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT data FROM job_results WHERE job_id = $1 ORDER BY created_at, id",
    )
    .bind(first[0])
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
    );
    let (succeeded, results): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'succeeded'), (SELECT count(*) FROM job_results)",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!((succeeded, results), (40, 42));
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'running' AND id = ANY($1)")
            .bind(&more)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(running, 10);
}

/// Outbox marks, claims and outcomes read only the rows of their batch even
/// when the tables have no statistics (never analyzed, as after a TRUNCATE or before
/// autovacuum's first look): the planner must not trade the lookups by
/// primary key for a walk through every job of the tenant.
#[tokio::test]
async fn batches_read_only_their_own_rows_without_statistics() {
    use ferro_tasks::JobStatus;
    use ferro_tasks::jobs::Finish;

    let db = TestDb::new().await;
    let app = db.app().await;
    let owner = db.owner().await;
    let tenant = db.default_tenant();
    for table in ["jobs", "job_outbox"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        )))
        .execute(&owner)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO jobs (tenant_id, kind) SELECT $1, 'noop' FROM generate_series(1, 3000)",
    )
    .bind(tenant)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_outbox (tenant_id, job_id, payload) SELECT tenant_id, id, '{}' FROM jobs",
    )
    .execute(&owner)
    .await
    .unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id LIMIT 64")
        .fetch_all(&owner)
        .await
        .unwrap();
    let analyzed: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL \
         FROM pg_stat_user_tables WHERE relname = 'jobs'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(!analyzed, "the table must have no statistics for this test");

    // Rows of the table this transaction has read so far.
    async fn read_of(tx: &mut ferro_db::TenantTx, table: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) \
             FROM pg_stat_xact_user_tables WHERE relname = $1",
        )
        .bind(table)
        .fetch_one(&mut **tx)
        .await
        .unwrap()
    }
    async fn read(tx: &mut ferro_db::TenantTx) -> i64 {
        read_of(tx, "jobs").await
    }
    let records: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM job_outbox WHERE job_id = ANY($1) ORDER BY id")
            .bind(&ids)
            .fetch_all(&owner)
            .await
            .unwrap();
    let mut tx = app.begin(TenantCtx::new(tenant, None)).await.unwrap();
    jobs::mark_published(&mut tx, &records).await.unwrap();
    let by_marks = read_of(&mut tx, "job_outbox").await;
    assert!(
        by_marks <= 64,
        "marking 64 outbox records read {by_marks} rows"
    );
    tx.commit().await.unwrap();
    let published: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE published_at IS NOT NULL")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(published, 64);

    let mut tx = app.begin(TenantCtx::new(tenant, None)).await.unwrap();
    let claimed = jobs::claim_many(&mut tx, &ids, "rows-test:1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 64);
    let by_claim = read(&mut tx).await;
    assert!(
        by_claim <= 2 * 64,
        "the claim read {by_claim} rows for 64 jobs"
    );

    let ends: Vec<Finish> = ids
        .iter()
        .map(|&id| Finish {
            id,
            attempt: 1,
            status: JobStatus::Succeeded,
            error: None,
            results: vec![json!({"ok": true})],
        })
        .collect();
    let states = jobs::finish_many(&mut tx, &ends.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(states.len(), 64);
    assert!(states.iter().all(|s| s.status.as_str() == "succeeded"));
    // The lookups, plus the foreign-key check of each result row.
    let by_finish = read(&mut tx).await - by_claim;
    assert!(
        by_finish <= 3 * 64,
        "the outcomes read {by_finish} rows for 64 jobs"
    );
    tx.commit().await.unwrap();
}

/// The api marks the outbox record it published after its own commit; by
/// then a worker may have claimed the job, failed it and written the record
/// of its retry. The mark must leave that record to the relay, or the job
/// stays `retrying` for good.
#[tokio::test]
async fn marking_a_published_job_leaves_its_retry_to_the_relay() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let mut tx = app.begin(ctx).await.unwrap();
    let new = noop_job(jobs::PUBLISHED_BY_WRITER);
    let Enqueued::Created {
        job,
        envelope,
        outbox_id,
    } = jobs::enqueue(&mut tx, new).await.unwrap()
    else {
        panic!("not created")
    };
    tx.commit().await.unwrap();

    // The worker's side, before the api's mark.
    let mut tx = app.begin(ctx).await.unwrap();
    let claimed = jobs::claim_many(&mut tx, &[job.id], "race:1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let retry = ferro_tasks::TaskEnvelope {
        attempt: 1,
        ..envelope
    };
    jobs::retry_later(&mut tx, &retry, "transient", Duration::from_secs(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = app.begin(ctx).await.unwrap();
    jobs::mark_published(&mut tx, &[outbox_id]).await.unwrap();
    tx.commit().await.unwrap();

    let pending: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT id, payload FROM job_outbox WHERE job_id = $1 AND published_at IS NULL",
    )
    .bind(job.id)
    .fetch_all(&db.owner().await)
    .await
    .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the retry's record was marked: {pending:?}"
    );
    assert_ne!(pending[0].0, outbox_id);
    assert_eq!(pending[0].1["attempt"], 2);
}

/// Results the database refuses (here a check constraint the test adds, as
/// PostgreSQL refuses a NUL character in jsonb) fail the job at once with
/// the reason, instead of handing the delivery back until the attempts run
/// out.
#[tokio::test]
async fn results_the_database_refuses_fail_the_job_at_once() {
    let rig = Rig::start().await;
    sqlx::query(
        "ALTER TABLE job_results ADD CONSTRAINT test_refuses_results CHECK (NOT data ? 'slept_ms')",
    )
    .execute(&rig.db.owner().await)
    .await
    .unwrap();
    let id = rig.submit(JobKind::Noop, None, json!({})).await;
    let job = rig.wait_for(id, &["failed"], 10).await;
    assert_eq!(job.attempts, 1);
    let error = job.error.unwrap();
    assert!(
        error.contains("results could not be stored") && error.contains("test_refuses_results"),
        "{error}"
    );
    rig.wait_for_dead_letter(id).await;
    assert!(rig.results(id).await.is_empty());
    rig.stop().await;
}

/// `worker_jobs_total` counts the jobs the worker ends without a run too:
/// one past its deadline is `cancelled`, one out of attempts `failed`.
#[tokio::test]
async fn jobs_ended_without_a_run_are_counted_in_the_metrics() {
    let rig = Rig::start().await.without_in_process_worker().await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
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
