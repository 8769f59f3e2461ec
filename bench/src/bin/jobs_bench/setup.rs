//! What a run needs: its settings, the database and brokers it starts
//! from, the release binaries it runs, and how it waits for jobs.

use ferro_broker::Broker;
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The api's port, and the baseline api's (`BENCH_BASELINE_BIN`).
pub(super) const API_PORT: u16 = 18301;
pub(super) const BASELINE_API_PORT: u16 = 18302;
pub(super) const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

pub(super) fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("jobs-bench: set {name}"))
}

pub(super) fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(super) struct Setup {
    /// What the figures are called in the output (`current`, `baseline`).
    pub(super) label: &'static str,
    pub(super) bin: String,
    pub(super) api_port: u16,
    pub(super) su: PgPool,
    pub(super) broker_url: String,
    pub(super) broker_prefix: String,
    pub(super) redis_prefix: String,
    /// The application role's URL (pgbench runs as it).
    pub(super) app_url: String,
    /// Jobs of the drain and envelopes of the raw loop (`BENCH_ONLY=drain`).
    pub(super) jobs: usize,
    /// Jobs submitted end to end, and by how many clients.
    pub(super) posts: usize,
    pub(super) clients: usize,
    /// Connections of wrk and clients of pgbench, and for how long.
    pub(super) conns: usize,
    pub(super) seconds: usize,
    pub(super) concurrency: usize,
    /// The api's `DATABASE_MAX_CONNECTIONS`.
    pub(super) api_pool: usize,
    /// How many times each half and its ceiling are measured side by side.
    pub(super) pairs: usize,
}

impl Setup {
    /// The same run against the baseline's binaries, database and broker
    /// names, if `BENCH_BASELINE_BIN` is set (with `BENCH_BASELINE_SU_URL`
    /// and `BENCH_BASELINE_DATABASE_URL`): what the plain path cost before
    /// a change, measured side by side with what it costs now.
    pub(super) async fn baseline(&self) -> Option<Setup> {
        let bin = std::env::var("BENCH_BASELINE_BIN").ok()?;
        Some(Setup {
            label: "baseline",
            bin,
            api_port: BASELINE_API_PORT,
            su: PgPool::connect(&env("BENCH_BASELINE_SU_URL"))
                .await
                .unwrap(),
            broker_url: self.broker_url.clone(),
            broker_prefix: format!("{}-base", self.broker_prefix),
            redis_prefix: format!("{}base:", self.redis_prefix),
            app_url: env("BENCH_BASELINE_DATABASE_URL"),
            ..*self
        })
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v1/{path}", self.api_port)
    }

    /// The seeded default tenant and its admin.
    pub(super) async fn tenant_and_admin(&self) -> (Uuid, Uuid) {
        sqlx::query_as(
            "SELECT t.id, u.id FROM tenants t, users u \
             WHERE t.slug = 'default' AND u.username = 'admin'",
        )
        .fetch_one(&self.su)
        .await
        .unwrap()
    }

    /// Starts the api, waits until it answers and logs in as the admin.
    pub(super) async fn api(&self, client: &reqwest::Client) -> (Service, String) {
        let api = self.service(
            "api",
            &[
                ("PORT", self.api_port.to_string()),
                ("HOST", "127.0.0.1".into()),
                ("DATABASE_MAX_CONNECTIONS", self.api_pool.to_string()),
                (
                    "JWT_SECRET",
                    "bench-secret-bench-secret-bench-secret".into(),
                ),
            ],
        );
        for _ in 0..100 {
            if client.get(self.url("health")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let login: Value = client
            .post(self.url("auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": env("ADMIN_PASSWORD")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (api, login["access_token"].as_str().unwrap().to_owned())
    }

    pub(super) fn service(&self, name: &str, extra: &[(&str, String)]) -> Service {
        let mut cmd = Command::new(format!("{}/{name}", self.bin));
        // BENCH_SERVICE_LOG: a RUST_LOG for the services, whose logs then
        // go to BENCH_SERVICE_LOG_DIR/NAME.log (default: warnings, dropped).
        let log = std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into());
        let stdout = match std::env::var("BENCH_SERVICE_LOG_DIR") {
            Ok(dir) => Stdio::from(std::fs::File::create(format!("{dir}/{name}.log")).unwrap()),
            Err(_) => Stdio::null(),
        };
        cmd.env("DATABASE_URL", &self.app_url)
            .env("BROKER_PREFIX", &self.broker_prefix)
            .env("REDIS_KEY_PREFIX", &self.redis_prefix)
            .env("RUST_LOG", log)
            .env("LOG_FORMAT", "json")
            .stdout(stdout)
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Service(Some(
            cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}")),
        ))
    }

    pub(super) fn worker(&self) -> Service {
        self.service(
            "worker",
            &[("WORKER_CONCURRENCY", self.concurrency.to_string())],
        )
    }

    pub(super) fn broker(&self, prefix: &str) -> Broker {
        let env = ferro_config::Env::from_pairs([
            ("BROKER_URL", self.broker_url.as_str()),
            ("BROKER_PREFIX", prefix),
        ]);
        Broker::from_config(&ferro_config::BrokerConfig::from_env(&env).unwrap()).unwrap()
    }

    pub(super) async fn reset_jobs(&self) {
        self.reset_rows().await;
        self.broker(&self.broker_prefix)
            .delete_topology()
            .await
            .unwrap();
        if self.label == "baseline" {
            self.delete_single_queue_layout().await;
        }
    }

    /// The broker names of the layout before named queues (`P.jobs` on
    /// RabbitMQ, `P:jobs` on Redis), which a baseline from before them
    /// uses and ferro-broker no longer deletes: else the jobs the POST step
    /// left there would be drained by the next end-to-end step.
    async fn delete_single_queue_layout(&self) {
        let p = &self.broker_prefix;
        if self.broker_url.starts_with("redis") {
            let client = redis::Client::open(self.broker_url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("DEL")
                .arg(format!("{p}:jobs"))
                .arg(format!("{p}:jobs:dead"))
                .arg(format!("{p}:jobs:delayed"))
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        } else {
            let conn = lapin::Connection::connect(
                &self.broker_url,
                lapin::ConnectionProperties::default(),
            )
            .await
            .unwrap();
            let channel = conn.create_channel().await.unwrap();
            for queue in [format!("{p}.jobs"), format!("{p}.jobs.dead")] {
                channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await
                    .unwrap();
            }
            let _ = conn.close(200, "done".into()).await;
        }
    }

    /// Empties the jobs table, leaving the broker's queues alone (a running
    /// worker's consumer would be cancelled by deleting them).
    pub(super) async fn reset_rows(&self) {
        sqlx::query("TRUNCATE jobs CASCADE")
            .execute(&self.su)
            .await
            .unwrap();
    }

    /// A subscription to the tenant's job events.
    pub(super) async fn job_events(&self, tenant: Uuid) -> redis::aio::PubSub {
        let redis = redis::Client::open(REDIS_URL).unwrap();
        let mut pubsub = redis.get_async_pubsub().await.unwrap();
        pubsub
            .subscribe(ferro_tasks::events::channel(&self.redis_prefix, tenant))
            .await
            .unwrap();
        pubsub
    }

    /// Listens to the tenant's job events, for [`Succeeded::wait`]. Call it
    /// before the jobs can start running.
    pub(super) async fn watch_succeeded(&self, tenant: Uuid) -> Succeeded {
        Succeeded {
            pubsub: self.job_events(tenant).await,
            su: self.su.clone(),
        }
    }
}

/// Counts `succeeded` events instead of polling the jobs table: a `count(*)`
/// every few milliseconds took a quarter of a core from the stack under test.
pub(super) struct Succeeded {
    pubsub: redis::aio::PubSub,
    pub(super) su: PgPool,
}

impl Succeeded {
    /// Waits until `n` jobs succeeded, then checks the table agrees.
    pub(super) async fn wait(mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut done = std::collections::HashSet::new();
        let su = self.su.clone();
        let mut messages = self.pubsub.on_message();
        while done.len() < n {
            match tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
                Ok(Some(msg)) => {
                    let event: Value =
                        serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
                    if event["status"] == "succeeded" {
                        done.insert(event["job_id"].as_str().unwrap().to_owned());
                    }
                }
                Ok(None) => panic!("the event subscription ended"),
                // Quiet for 2 s: events are best effort, so ask the table.
                Err(_) => {
                    if succeeded_rows(&su).await >= n {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} succeeded",
                done.len()
            );
        }
        assert!(
            succeeded_rows(&su).await >= n,
            "the events and the jobs table disagree"
        );
    }
}

pub(super) async fn succeeded_rows(su: &PgPool) -> usize {
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
        .fetch_one(su)
        .await
        .unwrap();
    done as usize
}

/// A service this benchmark started. If the benchmark fails (a panic),
/// dropping it kills the process, so that no worker or api outlives the run.
pub(super) struct Service(Option<Child>);

impl Service {
    pub(super) fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stops a service with SIGTERM (its graceful shutdown) and waits for it.
pub(super) fn stop(mut service: Service) {
    if let Some(mut child) = service.0.take() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

pub(super) fn rss_mb(service: &Service) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.id())).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}
