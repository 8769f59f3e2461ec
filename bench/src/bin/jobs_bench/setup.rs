//! What a run needs: its settings, the database and brokers it starts
//! from, the release binaries it runs, and how it waits for jobs.

use ferro_broker::Broker;
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(super) const API_PORT: u16 = 18301;
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
    pub(super) bin: String,
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
    pub(super) fn service(&self, name: &str, extra: &[(&str, String)]) -> Service {
        let mut cmd = Command::new(format!("{}/{name}", self.bin));
        // BENCH_SERVICE_LOG: a RUST_LOG for the services, whose logs then
        // go to BENCH_SERVICE_LOG_DIR/NAME.log (default: warnings, dropped).
        let log = std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into());
        let stdout = match std::env::var("BENCH_SERVICE_LOG_DIR") {
            Ok(dir) => Stdio::from(std::fs::File::create(format!("{dir}/{name}.log")).unwrap()),
            Err(_) => Stdio::null(),
        };
        cmd.env("BROKER_PREFIX", &self.broker_prefix)
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
