//! What the worker's tests share: a rig with its own database and broker
//! names running the real worker loop, the brokers to run on, and the real
//! worker binary.
#![allow(dead_code)]

use ferro_broker::Broker;
use ferro_db::TenantCtx;
use ferro_tasks::JobKind;
use ferro_tasks::jobs::{self, Enqueued, Job, NewJob};
use ferro_testkit::TestDb;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// SIGTERM to a worker binary, which must exit 0.
pub fn terminate(mut worker: Binary) {
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(worker.wait().unwrap().success(), "SIGTERM exits 0");
}

/// A worker binary the test started; killed if the test ends (or fails)
/// without stopping it, so a failed test leaves no worker behind.
pub struct Binary(pub std::process::Child);

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
pub enum Backend {
    RabbitMq,
    RedisStreams,
}

impl Backend {
    pub fn url(self) -> &'static str {
        match self {
            Backend::RabbitMq => "amqp://guest:guest@127.0.0.1:5672/%2f",
            Backend::RedisStreams => "redis://127.0.0.1:6379/0",
        }
    }

    /// The broker settings of a test: its own prefix, and a short
    /// visibility timeout so that abandoned stream entries come back soon.
    pub fn env(self, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("BROKER_URL".into(), self.url().into()),
            ("BROKER_PREFIX".into(), prefix.into()),
            ("BROKER_VISIBILITY_TIMEOUT_SECONDS".into(), "3".into()),
        ]
    }

    pub fn broker(self, prefix: &str) -> Broker {
        let env = ferro_config::Env::from_pairs(self.env(prefix));
        Broker::from_config(&ferro_config::BrokerConfig::from_env(&env).unwrap()).unwrap()
    }
}

pub struct Rig {
    pub smtp: Option<worker::SmtpConfig>,
    pub db: TestDb,
    pub prefix: String,
    pub backend: Backend,
    pub broker: Arc<Broker>,
    /// The test's own handle as the application role.
    pub app: ferro_db::Db,
    pub stop: CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// When the relays check what they published ([`worker::relay::recheck`]).
    pub redeliver_after: Duration,
}

impl Rig {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub async fn start_with(smtp: Option<worker::SmtpConfig>) -> Self {
        Self::start_on(Backend::RabbitMq, smtp).await
    }

    pub async fn start_on(backend: Backend, smtp: Option<worker::SmtpConfig>) -> Self {
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
            redeliver_after: Duration::from_secs(60),
        };
        rig.spawn_worker("w1").await;
        rig
    }

    pub fn settings(&self, id: &str) -> worker::RunConfig {
        worker::RunConfig {
            concurrency: 4,
            lease: Duration::from_secs(5),
            grace: Duration::from_secs(10),
            worker_id: id.to_owned(),
            smtp: self.smtp.clone(),
            retention: Default::default(),
            queues: Vec::new(),
            limits: Default::default(),
            uploads: Default::default(),
        }
    }

    pub async fn spawn_worker(&mut self, id: &str) {
        self.spawn_relay().await;
        let app = self.db.app().await;
        let (broker, stop) = (self.broker.clone(), self.stop.clone());
        let settings = self.settings(id);
        self.tasks.push(tokio::spawn(async move {
            worker::run(app, broker, None, settings, stop).await
        }));
    }

    /// An outbox relay (as every worker process runs one), checking what it
    /// published after `redeliver_after`.
    pub async fn spawn_relay(&mut self) {
        let db = self.db.app().await;
        let (broker, stop) = (self.broker.clone(), self.stop.clone());
        let redeliver_after = self.redeliver_after;
        self.tasks.push(tokio::spawn(async move {
            let every = Duration::from_millis(100);
            worker::relay::run(db, &broker, every, redeliver_after, stop.cancelled_owned()).await
        }));
    }

    /// Enqueues like the api does: job + outbox in one transaction, then publish.
    pub async fn submit(&self, kind: JobKind, device_id: Option<Uuid>, params: Value) -> Uuid {
        let (id, envelope) = self.enqueue(kind, device_id, params).await;
        self.broker.publish(&envelope).await.unwrap();
        id
    }

    /// The job and its outbox record, committed and marked published, with
    /// the envelope still to publish.
    pub async fn enqueue(
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
                options: Default::default(),
                step: None,
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
    pub async fn cancel(&self, id: Uuid) {
        let mut tx = self
            .app
            .begin(TenantCtx::new(self.db.default_tenant(), None))
            .await
            .unwrap();
        jobs::cancel(&mut tx, id).await.unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn job(&self, id: Uuid) -> Job {
        let app = &self.app;
        let mut tx = app
            .begin(TenantCtx::new(self.db.default_tenant(), None))
            .await
            .unwrap();
        jobs::get(&mut tx, id).await.unwrap().unwrap()
    }

    pub async fn wait_for(&self, id: Uuid, statuses: &[&str], secs: u64) -> Job {
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
    pub async fn wait_for_dead_letter(&self, id: Uuid) {
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
    pub async fn without_in_process_worker(mut self) -> Self {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.stop = CancellationToken::new();
        self
    }

    /// The real worker binary on this test's database and broker, with
    /// `env` on top.
    pub fn spawn_binary(&self, env: &[(&str, &str)]) -> Binary {
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
    pub async fn died_on_its_last_attempt(&self, id: Uuid) {
        sqlx::query(
            "UPDATE jobs SET status = 'running', attempts = max_attempts + 1, worker_id = 'gone', \
             started_at = now(), lease_expires_at = now() - interval '1 second' WHERE id = $1",
        )
        .bind(id)
        .execute(&self.db.owner().await)
        .await
        .unwrap();
    }

    pub async fn results(&self, id: Uuid) -> Vec<Value> {
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

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.broker.delete_topology().await.unwrap();
    }
}

pub async fn snmp_device(rig: &Rig, port: u16, community: &str) -> Uuid {
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

/// A plain `noop` job whose outbox record is due to the relay after `relay_after`.
pub fn noop_job(relay_after: Duration) -> NewJob {
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
        options: Default::default(),
        step: None,
    }
}

/// Inserts `n` queued noop jobs into `tenant` (as the application role).
pub async fn queued_jobs(app: &ferro_db::Db, tenant: Uuid, n: usize) -> Vec<Uuid> {
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
