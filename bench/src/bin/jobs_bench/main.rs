//! The jobs benchmark (issues 4 and 22), for one broker per invocation;
//! run by `bench/jobs.sh`, which prepares the database and calls it once
//! per broker.
//!
//! Against release binaries of `api` and `worker` it starts itself, each
//! pair (`BENCH_PAIRS`, default 3) measures in turn:
//! 1. the ceiling: pgbench running the single-submission transaction (the
//!    tenant `set_config`, the job, its outbox record, a commit) as the
//!    application role at `BENCH_CONNS` clients for `BENCH_SECONDS`;
//! 2. `POST /api/v1/jobs` (noop) with wrk -t2 at `BENCH_CONNS` connections
//!    for `BENCH_SECONDS`, no worker running;
//! 3. end to end: `BENCH_POSTS` noop jobs submitted by `BENCH_CLIENTS`
//!    concurrent clients with the worker running, timed until every one of
//!    them succeeded.
//!
//! The ratios of 2 and 3 to the ceiling are taken within each pair and the
//! medians reported, with every pair's figures beside them. Then, on the
//! idle stack: single jobs, POST to the `succeeded` event on the tenant's
//! Redis channel; the api's RSS after a login and the worker's RSS.
//!
//! `BENCH_ONLY=drain` measures instead the broker library's raw loop
//! against the worker draining pre-published jobs (`BENCH_JOBS`), for
//! working on the worker.
//!
//! Environment: `BENCH_BIN` (release binaries), `BENCH_SU_URL` (superuser URL
//! of the bench database), `DATABASE_URL` (app role), `BROKER_URL`,
//! `ADMIN_PASSWORD`, `BENCH_JOBS` (default 20000), `BENCH_POSTS` (5000),
//! `BENCH_CLIENTS` (32), `BENCH_CONNS` (64), `BENCH_SECONDS` (15),
//! `BENCH_WORKER_CONCURRENCY` (256: the worker's concurrency and prefetch,
//! and the raw loop's prefetch), `BENCH_API_POOL` (the api's
//! `DATABASE_MAX_CONNECTIONS`, default 10, its own default), `BENCH_PAIRS`.
//! Prints one JSON object.

mod load;
mod setup;
mod steps;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use setup::*;
use steps::*;

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
        app_url: env("DATABASE_URL"),
        jobs: env_or("BENCH_JOBS", 20_000),
        posts: env_or("BENCH_POSTS", 5_000),
        clients: env_or("BENCH_CLIENTS", 32),
        conns: env_or("BENCH_CONNS", 64),
        seconds: env_or("BENCH_SECONDS", 15),
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

    if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "drain") {
        drain_only(&setup, tenant, admin).await;
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

    // The api's RSS at idle after a login (argon2's working memory given
    // back), before any job.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api_rss = rss_mb(&api);

    // Each measurement is taken next to its ceiling, `pairs` times over,
    // and the ratios pair by pair: this machine's speed drifts by 20% or
    // more between minutes, so a ceiling measured a minute apart says little.
    let (mut ceilings, mut posts, mut e2es) = (Vec::new(), Vec::new(), Vec::new());
    let (mut post_ratios, mut e2e_ratios) = (Vec::new(), Vec::new());
    let mut post_p99s = Vec::new();
    for pair in 1..=setup.pairs {
        setup.reset_jobs().await;
        let ceiling = load::pgbench_ceiling(&setup, tenant, admin);

        setup.reset_jobs().await;
        let post = load::wrk_post(&setup, &token);

        setup.reset_jobs().await;
        let worker = setup.worker();
        let succeeded = setup.watch_succeeded(tenant).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        post_jobs(&client, &token, setup.posts, setup.clients).await;
        succeeded.wait(setup.posts).await;
        let e2e = setup.posts as f64 / started.elapsed().as_secs_f64();
        stop(worker);
        eprintln!(
            "jobs-bench: pair {pair}: ceiling {ceiling:.0}/s, POST {:.0}/s (p50 {:.1} ms, p99 {:.1} ms), \
             end to end {e2e:.0}/s",
            post.per_s, post.p50_ms, post.p99_ms
        );
        ceilings.push(ceiling);
        posts.push(post.per_s);
        post_p99s.push(post.p99_ms);
        post_ratios.push(post.per_s / ceiling);
        e2es.push(e2e);
        e2e_ratios.push(e2e / ceiling);
    }
    let (ceiling, post_rate, e2e) = (median(&ceilings), median(&posts), median(&e2es));
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
            "connections": setup.conns, "seconds": setup.seconds,
            "e2e_jobs": setup.posts, "e2e_clients": setup.clients,
            "worker_concurrency": setup.concurrency,
            "ceiling_per_s": ceiling.round(),
            "post_per_s": post_rate.round(),
            "post_vs_ceiling": (median(&post_ratios) * 100.0).round(),
            "post_p99_ms": (median(&post_p99s) * 100.0).round() / 100.0,
            "end_to_end_per_s": e2e.round(),
            "e2e_vs_ceiling": (median(&e2e_ratios) * 100.0).round(),
            "pairs": {
                "ceiling_per_s": rounded(&ceilings), "post_per_s": rounded(&posts),
                "post_p99_ms": post_p99s, "end_to_end_per_s": rounded(&e2es),
                "post_vs_ceiling": percents(&post_ratios), "e2e_vs_ceiling": percents(&e2e_ratios),
            },
            "latency_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
            "latency_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
            "api_idle_rss_after_login_mb": (api_rss * 10.0).round() / 10.0,
            "worker_idle_rss_mb": (worker_rss * 10.0).round() / 10.0,
        })
    );
}

/// `BENCH_ONLY=drain`: the broker library's raw loop against the worker
/// draining pre-published jobs, alternated `pairs` times.
async fn drain_only(setup: &Setup, tenant: Uuid, admin: Uuid) {
    let (mut raws, mut drains, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=setup.pairs {
        let raw = raw_loop(setup, setup.jobs).await;
        let drain = worker_drain(setup, tenant, admin, setup.jobs).await;
        eprintln!("jobs-bench: pair {pair}: raw loop {raw:.0}/s, worker drain {drain:.0}/s");
        raws.push(raw);
        drains.push(drain);
        ratios.push(drain / raw);
    }
    println!(
        "{}",
        json!({
            "raw_loop_per_s": median(&raws).round(),
            "worker_drain_per_s": median(&drains).round(),
            "drain_vs_raw": (median(&ratios) * 100.0).round(),
        })
    );
}
