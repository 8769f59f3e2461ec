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
//! With `BENCH_BASELINE_BIN` (and `BENCH_BASELINE_SU_URL`,
//! `BENCH_BASELINE_DATABASE_URL`: the baseline's own database, migrated by
//! its own `migrate`), each pair also measures 2 and 3 against the
//! baseline's binaries, in alternating order, and reports the current
//! figures as a share of the baseline's: the cost of a change to the plain
//! path, side by side.
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
        label: "current",
        bin: env("BENCH_BIN"),
        api_port: API_PORT,
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
    let (tenant, admin) = setup.tenant_and_admin().await;

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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(setup.conns)
        .build()
        .unwrap();
    let (api, token) = setup.api(&client).await;
    // The api's RSS at idle after a login (argon2's working memory given
    // back), before any job.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api_rss = rss_mb(&api);

    let baseline = match setup.baseline().await {
        Some(base) => {
            base.reset_jobs().await;
            let (base_api, base_token) = base.api(&client).await;
            let (base_tenant, _) = base.tenant_and_admin().await;
            Some((base, base_api, base_token, base_tenant))
        }
        None => None,
    };

    // Each measurement is taken next to its ceiling, `pairs` times over,
    // and the ratios pair by pair: this machine's speed drifts by 20% or
    // more between minutes, so a ceiling measured a minute apart says little.
    let mut current = Series::default();
    let mut base_series = Series::default();
    let mut ceilings = Vec::new();
    for pair in 1..=setup.pairs {
        setup.reset_jobs().await;
        let ceiling = load::pgbench_ceiling(&setup, tenant, admin);
        ceilings.push(ceiling);
        // Current and baseline take turns going first, so that neither
        // always meets the machine in the same state.
        let mut stacks = vec![(&setup, &token, tenant, &mut current)];
        if let Some((base, _, base_token, base_tenant)) = &baseline {
            stacks.push((base, base_token, *base_tenant, &mut base_series));
            if pair % 2 == 0 {
                stacks.reverse();
            }
        }
        let mut posts = Vec::new();
        for (stack, token, _, _) in &stacks {
            stack.reset_jobs().await;
            posts.push(load::wrk_post(stack, token));
        }
        for ((stack, token, tenant, series), post) in stacks.into_iter().zip(posts) {
            let e2e = end_to_end(stack, &client, token, tenant).await;
            eprintln!(
                "jobs-bench: pair {pair}, {}: ceiling {ceiling:.0}/s, POST {:.0}/s (p50 {:.1} ms, \
                 p99 {:.1} ms), end to end {e2e:.0}/s",
                stack.label, post.per_s, post.p50_ms, post.p99_ms
            );
            series.push(ceiling, post.per_s, post.p99_ms, e2e);
        }
    }
    if let Some((base, base_api, _, _)) = baseline {
        stop(base_api);
        base.reset_jobs().await;
    }

    setup.reset_jobs().await;
    let worker = setup.worker();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = single_jobs(&setup, &client, &token, tenant).await;
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    stop(worker);
    stop(api);
    setup.reset_jobs().await;

    let mut report = json!({
        "broker": if setup.broker_url.starts_with("redis") { "redis-streams" } else { "rabbitmq" },
        "connections": setup.conns, "seconds": setup.seconds,
        "e2e_jobs": setup.posts, "e2e_clients": setup.clients,
        "worker_concurrency": setup.concurrency,
        "ceiling_per_s": median(&ceilings).round(),
        "latency_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
        "latency_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        "api_idle_rss_after_login_mb": (api_rss * 10.0).round() / 10.0,
        "worker_idle_rss_mb": (worker_rss * 10.0).round() / 10.0,
    });
    current.report(&mut report);
    if !base_series.posts.is_empty() {
        let mut base = json!({});
        base_series.report(&mut base);
        base["post_current_vs_baseline"] = current.versus(&base_series, |s| &s.posts).into();
        base["e2e_current_vs_baseline"] = current.versus(&base_series, |s| &s.e2es).into();
        report["baseline"] = base;
    }
    println!("{report}");
}

/// Single jobs on the idle stack, 50 ms apart: POST to the `succeeded`
/// event on the tenant's channel, in milliseconds. The queues were emptied
/// before and stay as they are.
async fn single_jobs(
    setup: &Setup,
    client: &reqwest::Client,
    token: &str,
    tenant: Uuid,
) -> Vec<f64> {
    setup.reset_rows().await;
    let (_sink, mut messages) = setup.job_events(tenant).await.split();
    let mut latencies = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let job: Value = client
            .post(setup.url("jobs"))
            .bearer_auth(token)
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
    latencies
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
