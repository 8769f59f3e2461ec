//! The jobs benchmark (issue 4), for one broker per invocation; run by
//! `bench/jobs.sh`, which prepares the database and calls it once per broker.
//!
//! In one run, against release binaries of `api` and `worker` it starts itself:
//! 1. raw loop: publish N envelopes and consume + ack them with the broker
//!    library alone (no database), publishers and consumer running together;
//! 2. worker drain: N `noop` jobs written to the database and published with
//!    the worker stopped, then the worker started and timed until all succeeded;
//! 3. POST alone: M `POST /api/v1/jobs` at C connections, no worker running;
//! 4. end to end: M POSTs at C connections with the worker running, timed
//!    until every job succeeded;
//! 5. latency: single jobs on the idle stack, POST to the `succeeded` event
//!    on the tenant's Redis channel;
//! 6. the worker's idle RSS.
//!
//! Steps 1 and 2 run `BENCH_PAIRS` times (default 3) in alternation, then
//! steps 3 and 4 likewise; each ratio is taken within its pair and the
//! median of the pairs is reported, with every pair's figures beside it.
//!
//! Environment: `BENCH_BIN` (release binaries), `BENCH_SU_URL` (superuser URL
//! of the bench database), `DATABASE_URL` (app role), `BROKER_URL`,
//! `ADMIN_PASSWORD`, `BENCH_JOBS` (N, default 20000), `BENCH_POSTS` (M,
//! default 10000), `BENCH_CONNS` (C, default 64), `BENCH_WORKER_CONCURRENCY`
//! (default 256: the worker's concurrency and prefetch, and the raw loop's prefetch),
//! `BENCH_API_POOL` (the api's `DATABASE_MAX_CONNECTIONS`, default 10, its own default), `BENCH_PAIRS`.
//! Prints one JSON object.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_broker::Broker;
use ferro_tasks::TaskEnvelope;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const API_PORT: u16 = 18301;
const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("jobs-bench: set {name}"))
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Setup {
    bin: String,
    su: PgPool,
    broker_url: String,
    broker_prefix: String,
    redis_prefix: String,
    jobs: usize,
    posts: usize,
    conns: usize,
    concurrency: usize,
    /// The api's `DATABASE_MAX_CONNECTIONS`.
    api_pool: usize,
    /// How many times each half and its ceiling are measured side by side.
    pairs: usize,
}

impl Setup {
    fn service(&self, name: &str, extra: &[(&str, String)]) -> Service {
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

    fn worker(&self) -> Service {
        self.service(
            "worker",
            &[("WORKER_CONCURRENCY", self.concurrency.to_string())],
        )
    }

    fn broker(&self, prefix: &str) -> Broker {
        let env = ferro_config::Env::from_pairs([
            ("BROKER_URL", self.broker_url.as_str()),
            ("BROKER_PREFIX", prefix),
        ]);
        Broker::from_config(&ferro_config::BrokerConfig::from_env(&env).unwrap()).unwrap()
    }

    async fn reset_jobs(&self) {
        self.reset_rows().await;
        self.broker(&self.broker_prefix)
            .delete_topology()
            .await
            .unwrap();
    }

    /// Empties the jobs table, leaving the broker's queues alone (a running
    /// worker's consumer would be cancelled by deleting them).
    async fn reset_rows(&self) {
        sqlx::query("TRUNCATE jobs CASCADE")
            .execute(&self.su)
            .await
            .unwrap();
    }

    /// A subscription to the tenant's job events.
    async fn job_events(&self, tenant: Uuid) -> redis::aio::PubSub {
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
    async fn watch_succeeded(&self, tenant: Uuid) -> Succeeded {
        Succeeded {
            pubsub: self.job_events(tenant).await,
            su: self.su.clone(),
        }
    }
}

/// Counts `succeeded` events instead of polling the jobs table: a `count(*)`
/// every few milliseconds took a quarter of a core from the stack under test.
struct Succeeded {
    pubsub: redis::aio::PubSub,
    su: PgPool,
}

impl Succeeded {
    /// Waits until `n` jobs succeeded, then checks the table agrees.
    async fn wait(mut self, n: usize) {
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

async fn succeeded_rows(su: &PgPool) -> usize {
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
        .fetch_one(su)
        .await
        .unwrap();
    done as usize
}

/// A service this benchmark started. If the benchmark fails (a panic),
/// dropping it kills the process, so that no worker or api outlives the run.
struct Service(Option<Child>);

impl Service {
    fn id(&self) -> u32 {
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
fn stop(mut service: Service) {
    if let Some(mut child) = service.0.take() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

fn rss_mb(service: &Service) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.id())).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// 1. Publish and consume + ack `n` envelopes, no database.
async fn raw_loop(setup: &Setup, n: usize) -> f64 {
    let prefix = format!("{}-raw", setup.broker_prefix);
    let broker = Arc::new(setup.broker(&prefix));
    broker.delete_topology().await.ok();
    broker.depths().await.ok();
    let tenant = Uuid::new_v4();
    let started = Instant::now();
    let publishers = {
        let broker = broker.clone();
        let conns = setup.conns;
        tokio::spawn(async move {
            futures_util::stream::iter(0..n)
                .for_each_concurrent(conns, |_| {
                    let broker = broker.clone();
                    async move {
                        let envelope = TaskEnvelope::new(Uuid::new_v4(), "noop", tenant, None);
                        broker.publish(&envelope).await.unwrap();
                    }
                })
                .await
        })
    };
    let mut consumer = broker.consumer(setup.concurrency as u16, "raw-bench");
    let slots = Arc::new(tokio::sync::Semaphore::new(setup.concurrency));
    let mut acks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let delivery = consumer.next().await;
        acks.spawn(async move {
            delivery.ack().await.unwrap();
            drop(permit);
        });
    }
    while acks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    publishers.await.unwrap();
    consumer.close().await;
    broker.delete_topology().await.ok();
    n as f64 / elapsed.as_secs_f64()
}

/// 2. `n` jobs written and published with no worker; then the worker drains them.
async fn worker_drain(setup: &Setup, tenant: Uuid, admin: Uuid, n: usize) -> f64 {
    setup.reset_jobs().await;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO jobs (tenant_id, kind, created_by) \
         SELECT $1, 'noop', $2 FROM generate_series(1, $3) RETURNING id",
    )
    .bind(tenant)
    .bind(admin)
    .bind(n as i32)
    .fetch_all(&setup.su)
    .await
    .unwrap();
    let broker = Arc::new(setup.broker(&setup.broker_prefix));
    futures_util::stream::iter(ids)
        .for_each_concurrent(setup.conns, |id| {
            let broker = broker.clone();
            async move {
                let envelope = TaskEnvelope::new(id, "noop", tenant, Some(admin));
                broker.publish(&envelope).await.unwrap();
            }
        })
        .await;
    let succeeded = setup.watch_succeeded(tenant).await;
    let started = Instant::now();
    let worker = setup.worker();
    succeeded.wait(n).await;
    let elapsed = started.elapsed();
    stop(worker);
    n as f64 / elapsed.as_secs_f64()
}

/// `m` POSTs at `conns` connections; returns the seconds they took.
async fn post_jobs(client: &reqwest::Client, token: &str, m: usize, conns: usize) -> f64 {
    let url = format!("http://127.0.0.1:{API_PORT}/api/v1/jobs");
    let started = Instant::now();
    futures_util::stream::iter(0..m)
        .for_each_concurrent(conns, |_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"kind": "noop"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    res.status(),
                    202,
                    "{}",
                    res.text().await.unwrap_or_default()
                );
            }
        })
        .await;
    started.elapsed().as_secs_f64()
}

/// The median of a few measurements (the mean of the middle two if even).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    ferro_telemetry::install_crypto_provider();
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let setup = Setup {
        bin: env("BENCH_BIN"),
        su: PgPool::connect(&env("BENCH_SU_URL")).await.unwrap(),
        broker_url: env("BROKER_URL"),
        broker_prefix: format!("bench-{run}"),
        redis_prefix: format!("bench:{run}:"),
        jobs: env_or("BENCH_JOBS", 20_000),
        posts: env_or("BENCH_POSTS", 10_000),
        conns: env_or("BENCH_CONNS", 64),
        concurrency: env_or("BENCH_WORKER_CONCURRENCY", 256),
        api_pool: env_or("BENCH_API_POOL", 10),
        pairs: env_or("BENCH_PAIRS", 3).max(1),
    };
    let (tenant, admin): (Uuid, Uuid) = sqlx::query_as(
        "SELECT t.id, u.id FROM tenants t, users u WHERE t.slug = 'default' AND u.username = 'admin'",
    )
    .fetch_one(&setup.su)
    .await
    .unwrap();

    // Each half is measured next to its ceiling, `pairs` times over, and the
    // ratios are taken pair by pair: this machine's speed drifts by 20% or
    // more between minutes, so a ceiling measured a minute apart says little.
    let (mut raws, mut drains, mut drain_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=setup.pairs {
        let raw = raw_loop(&setup, setup.jobs).await;
        let drain = worker_drain(&setup, tenant, admin, setup.jobs).await;
        eprintln!("jobs-bench: pair {pair}: raw loop {raw:.0}/s, worker drain {drain:.0}/s");
        raws.push(raw);
        drains.push(drain);
        drain_ratios.push(drain / raw);
    }
    let (raw, drain) = (median(&raws), median(&drains));
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "drain") {
        // BENCH_ONLY=drain: the raw loop and the drain, for working on the worker.
        let ratio = (median(&drain_ratios) * 100.0).round();
        println!(
            "{}",
            json!({"raw_loop_per_s": raw.round(), "worker_drain_per_s": drain.round(), "drain_vs_raw": ratio})
        );
        return;
    }

    // The worker's idle RSS, before it has run anything.
    setup.reset_jobs().await;
    let idle = setup.worker();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let worker_rss = rss_mb(&idle);
    stop(idle);

    setup.reset_jobs().await;
    let api = setup.service(
        "api",
        &[
            ("PORT", API_PORT.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("DATABASE_MAX_CONNECTIONS", setup.api_pool.to_string()),
            (
                "JWT_SECRET",
                "bench-secret-bench-secret-bench-secret".into(),
            ),
        ],
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(setup.conns)
        .build()
        .unwrap();
    let health = format!("http://127.0.0.1:{API_PORT}/api/v1/health");
    for _ in 0..100 {
        if client.get(&health).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login: Value = client
        .post(format!("http://127.0.0.1:{API_PORT}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": env("ADMIN_PASSWORD")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();

    let (mut posts, mut e2es, mut e2e_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=setup.pairs {
        setup.reset_jobs().await;
        let post_secs = post_jobs(&client, &token, setup.posts, setup.conns).await;
        let post_rate = setup.posts as f64 / post_secs;

        setup.reset_jobs().await;
        let worker = setup.worker();
        let succeeded = setup.watch_succeeded(tenant).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        post_jobs(&client, &token, setup.posts, setup.conns).await;
        succeeded.wait(setup.posts).await;
        let e2e = setup.posts as f64 / started.elapsed().as_secs_f64();
        stop(worker);
        // The slower half: POST alone, or the median drain if that was slower.
        let slower_half = post_rate.min(drain);
        eprintln!(
            "jobs-bench: pair {pair}: POST alone {post_rate:.0}/s, end to end {e2e:.0}/s ({:.0}% of the slower half)",
            e2e / slower_half * 100.0
        );
        posts.push(post_rate);
        e2es.push(e2e);
        e2e_ratios.push(e2e / slower_half);
    }
    let (post_rate, e2e) = (median(&posts), median(&e2es));
    setup.reset_jobs().await;
    let worker = setup.worker();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Single jobs on the idle stack: POST to the `succeeded` event. The
    // queues were emptied above and stay as they are.
    setup.reset_rows().await;
    let (_sink, mut messages) = setup.job_events(tenant).await.split();
    let mut latencies = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let job: Value = client
            .post(format!("http://127.0.0.1:{API_PORT}/api/v1/jobs"))
            .bearer_auth(&token)
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = job["id"].as_str().unwrap().to_owned();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("an event within 10 s")
                .unwrap();
            let event: Value = serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
            if event["job_id"] == id.as_str() && event["status"] == "succeeded" {
                break;
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let slowest = latencies
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap())
        .map(|(i, ms)| (i, *ms))
        .unwrap();
    eprintln!(
        "jobs-bench: latency samples (ms, in order): {:?}; slowest #{} at {:.1} ms",
        latencies.iter().map(|l| l.round()).collect::<Vec<_>>(),
        slowest.0,
        slowest.1
    );
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    stop(worker);
    stop(api);
    setup.reset_jobs().await;

    let rounded = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<_>>();
    let percents = |v: &[f64]| v.iter().map(|x| (x * 100.0).round()).collect::<Vec<_>>();
    println!(
        "{}",
        json!({
            "broker": if setup.broker_url.starts_with("redis") { "redis-streams" } else { "rabbitmq" },
            "jobs": setup.jobs, "posts": setup.posts, "connections": setup.conns,
            "worker_concurrency": setup.concurrency,
            "raw_loop_per_s": raw.round(),
            "worker_drain_per_s": drain.round(),
            "drain_vs_raw": (median(&drain_ratios) * 100.0).round(),
            "post_alone_per_s": post_rate.round(),
            "end_to_end_per_s": e2e.round(),
            "e2e_vs_slower_half": (median(&e2e_ratios) * 100.0).round(),
            "pairs": {
                "raw_loop_per_s": rounded(&raws), "worker_drain_per_s": rounded(&drains),
                "drain_vs_raw": percents(&drain_ratios),
                "post_alone_per_s": rounded(&posts), "end_to_end_per_s": rounded(&e2es),
                "e2e_vs_slower_half": percents(&e2e_ratios),
            },
            "latency_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
            "latency_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
            "worker_idle_rss_mb": (worker_rss * 10.0).round() / 10.0,
        })
    );
}
