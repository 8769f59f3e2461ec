//! The measured steps, and the statistics of their pairs.

use super::setup::*;
use ferro_tasks::TaskEnvelope;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// 1. Publish and consume + ack `n` envelopes, no database.
pub(super) async fn raw_loop(setup: &Setup, n: usize) -> f64 {
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
pub(super) async fn worker_drain(setup: &Setup, tenant: Uuid, admin: Uuid, n: usize) -> f64 {
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

/// End to end (step 3 of a pair): `setup.posts` noop jobs submitted by
/// `setup.clients` concurrent clients through the api at `setup` with its
/// worker running, timed until every one succeeded. Jobs per second.
pub(super) async fn end_to_end(
    setup: &Setup,
    client: &reqwest::Client,
    token: &str,
    tenant: Uuid,
) -> f64 {
    setup.reset_jobs().await;
    let worker = setup.worker();
    let succeeded = setup.watch_succeeded(tenant).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let started = Instant::now();
    post_jobs(
        client,
        &setup.url("jobs"),
        token,
        setup.posts,
        setup.clients,
    )
    .await;
    succeeded.wait(setup.posts).await;
    let e2e = setup.posts as f64 / started.elapsed().as_secs_f64();
    stop(worker);
    e2e
}

/// `m` POSTs at `conns` connections; returns the seconds they took.
async fn post_jobs(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    m: usize,
    conns: usize,
) -> f64 {
    let url = url.to_owned();
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
pub(super) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One stack's figures, pair by pair.
#[derive(Default)]
pub(super) struct Series {
    pub(super) posts: Vec<f64>,
    post_p99s: Vec<f64>,
    pub(super) e2es: Vec<f64>,
    post_ratios: Vec<f64>,
    e2e_ratios: Vec<f64>,
}

impl Series {
    pub(super) fn push(&mut self, ceiling: f64, post: f64, post_p99_ms: f64, e2e: f64) {
        self.posts.push(post);
        self.post_p99s.push(post_p99_ms);
        self.e2es.push(e2e);
        self.post_ratios.push(post / ceiling);
        self.e2e_ratios.push(e2e / ceiling);
    }

    /// Medians (ratios to the ceiling in percent), and every pair's figures.
    pub(super) fn report(&self, into: &mut Value) {
        let rounded = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<_>>();
        let percents = |v: &[f64]| v.iter().map(|x| (x * 100.0).round()).collect::<Vec<_>>();
        into["post_per_s"] = median(&self.posts).round().into();
        into["post_vs_ceiling"] = (median(&self.post_ratios) * 100.0).round().into();
        into["post_p99_ms"] = ((median(&self.post_p99s) * 100.0).round() / 100.0).into();
        into["end_to_end_per_s"] = median(&self.e2es).round().into();
        into["e2e_vs_ceiling"] = (median(&self.e2e_ratios) * 100.0).round().into();
        into["pairs"] = json!({
            "post_per_s": rounded(&self.posts), "post_p99_ms": self.post_p99s,
            "end_to_end_per_s": rounded(&self.e2es),
            "post_vs_ceiling": percents(&self.post_ratios),
            "e2e_vs_ceiling": percents(&self.e2e_ratios),
        });
    }

    /// The median, over the pairs, of this series' figure as a percentage
    /// of `other`'s in the same pair.
    pub(super) fn versus(&self, other: &Series, figure: fn(&Series) -> &Vec<f64>) -> f64 {
        let ratios: Vec<f64> = figure(self)
            .iter()
            .zip(figure(other))
            .map(|(a, b)| a / b)
            .collect();
        (median(&ratios) * 100.0).round()
    }
}
