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
