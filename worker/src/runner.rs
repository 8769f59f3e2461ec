//! The worker's loop: take deliveries while a slot is free, run each on a
//! task of its own ([`attempt::handle`]), settle it with the broker; on
//! shutdown stop taking, give running jobs their grace period, and hand the
//! rest back.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use ferro_broker::{Broker, Delivery, PauseGate};
use ferro_db::Db;
use ferro_tasks::TaskEnvelope;
use ferro_tasks::queues::DEFAULT_QUEUE;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::attempt::{self, Settle, Worker};
use crate::claims::Claims;
use crate::config::RunConfig;
use crate::control::{self, Slots};
use crate::events::Events;
use crate::heartbeat::{self, Stats};
use crate::limits::RateLimiter;
use crate::metrics;
use crate::recorder::Recorder;

/// Consumes and runs jobs until `shutdown` is cancelled.
pub async fn run(
    db: Db,
    broker: Arc<Broker>,
    events: Option<Events>,
    config: RunConfig,
    shutdown: CancellationToken,
) {
    let prefetch = |cap: usize| cap.min(config.concurrency).min(u16::MAX as usize) as u16;
    let queues: Vec<(String, u16)> = if config.queues.is_empty() {
        vec![(DEFAULT_QUEUE.to_owned(), prefetch(config.concurrency))]
    } else {
        config
            .queues
            .iter()
            .map(|(queue, cap)| (queue.clone(), prefetch(*cap)))
            .collect()
    };
    let (paused, gate) = PauseGate::new();
    let mut consumer = broker.consumer_of(&queues, &config.worker_id, Some(gate));
    let slots = Slots::new(config.concurrency);
    let stats = Arc::new(Stats::default());
    let claims = Claims::default();
    let background = CancellationToken::new();
    metrics::set_concurrency(config.concurrency);
    let depths = tokio::spawn(metrics::report_queue_depths(
        broker.clone(),
        background.clone(),
    ));
    let beating = events.as_ref().map(|events| {
        let (slots, claims) = (slots.clone(), claims.clone());
        let live = move || {
            let mut active: Vec<String> =
                claims.held().iter().map(|(id, _)| id.to_string()).collect();
            active.sort();
            (slots.target(), active)
        };
        tokio::spawn(heartbeat::beat(
            events.redis.clone(),
            events.prefix.clone(),
            config.clone(),
            stats.clone(),
            live,
            background.clone(),
        ))
    });
    let controlling = events.as_ref().map(|events| {
        tokio::spawn(control::run(
            events.redis.clone(),
            events.prefix.clone(),
            config.worker_id.clone(),
            slots.clone(),
            paused,
            shutdown.clone(),
            background.clone(),
        ))
    });
    let limiter = events.as_ref().map(|events| {
        RateLimiter::new(
            events.redis.clone(),
            events.prefix.clone(),
            config.limits.clone(),
        )
    });
    let refreshing = limiter
        .clone()
        .map(|limiter| tokio::spawn(limiter.refresh(background.clone())));
    let worker = Arc::new(Worker {
        recorder: Recorder::new(db.clone(), config.worker_id.clone(), config.lease),
        db,
        broker,
        events,
        config,
        claims,
        limiter,
    });
    let names: Vec<&str> = queues.iter().map(|(q, _)| q.as_str()).collect();
    tracing::info!(worker_id = %worker.config.worker_id, concurrency = worker.config.concurrency, queues = %names.join(","), "worker consuming");
    let mut running = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.acquire() => slot,
        };
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            delivery = consumer.next() => delivery,
        };
        let (worker, stats) = (worker.clone(), stats.clone());
        running.spawn(async move {
            stats.active.fetch_add(1, Relaxed);
            metrics::job_started();
            let failed = process(&worker, delivery).await;
            metrics::job_ended();
            stats.active.fetch_sub(1, Relaxed);
            stats.processed.fetch_add(1, Relaxed);
            if failed {
                stats.failed.fetch_add(1, Relaxed);
            }
            drop(permit);
        });
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
    }
    drain(&worker, running).await;
    // Closing the connection returns every unacknowledged delivery to the queue.
    consumer.close().await;
    if let Some(events) = &worker.events {
        events.flush().await;
    }
    background.cancel();
    if let Some(beating) = beating {
        let _ = beating.await;
    }
    if let Some(refreshing) = refreshing {
        let _ = refreshing.await;
    }
    if let Some(controlling) = controlling {
        let _ = controlling.await;
    }
    let _ = depths.await;
}

/// Gives the running jobs the grace period to end; then aborts the rest and
/// hands their jobs back ([`Recorder::hand_back`]): their attempts do not
/// count.
async fn drain(worker: &Worker, mut running: JoinSet<()>) {
    let grace = worker.config.grace;
    tracing::info!(
        running = running.len(),
        grace_secs = grace.as_secs(),
        "worker stopping: no new jobs"
    );
    let drained = tokio::time::timeout(grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        return;
    }
    tracing::warn!(
        left = running.len(),
        "grace period over: handing the remaining jobs back"
    );
    let left = worker.claims.held();
    running.abort_all();
    while running.join_next().await.is_some() {}
    for (job_id, ctx) in left {
        match worker.recorder.hand_back(ctx, job_id).await {
            Ok(true) => tracing::info!(%job_id, "job handed back; its attempt does not count"),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%job_id, error = %err, "could not hand the job back; its lease will run out")
            }
        }
    }
}

/// Runs one delivery and settles it with the broker; true if its job failed
/// for good.
async fn process(worker: &Worker, delivery: Delivery) -> bool {
    let envelope = match &delivery.envelope {
        Ok(envelope) => envelope.clone(),
        Err(err) => {
            tracing::error!(error = %err, "undeliverable message: dead-lettering it");
            let _ = delivery.dead_letter().await;
            return true;
        }
    };
    if let Some(limiter) = &worker.limiter
        && let Some(wait) = limiter.hold_back(&envelope).await
    {
        hold_back(worker, &delivery, &envelope, wait).await;
        return false;
    }
    let trace_id = envelope
        .trace
        .as_ref()
        .map(|t| t.trace_id())
        .unwrap_or_default();
    let span = tracing::info_span!("job", job_id = %envelope.job_id, kind = %envelope.kind, tenant_id = %envelope.tenant_id, attempt = envelope.attempt, trace_id);
    let outcome = tracing::Instrument::instrument(attempt::handle(worker, &envelope), span).await;
    let failed = matches!(outcome, Ok(Settle::DeadLetter));
    let settled = match outcome {
        Ok(Settle::Ack) => delivery.ack().await,
        Ok(Settle::DeadLetter) => delivery.dead_letter().await,
        Err(err) => {
            // The outcome could not be recorded (database away): give the
            // delivery back so that it is tried again.
            tracing::warn!(job_id = %envelope.job_id, error = %err, "could not record the outcome; requeueing");
            tokio::time::sleep(Duration::from_millis(500)).await;
            delivery.requeue().await
        }
    };
    if let Err(err) = settled {
        tracing::warn!(job_id = %envelope.job_id, error = %err, "could not settle the delivery; the broker will redeliver it");
    }
    failed
}

/// A job over a rate limit: published again to come back after `wait`
/// (its attempt unspent), then its delivery acked; if the publish fails,
/// the delivery goes back after a pause instead.
async fn hold_back(worker: &Worker, delivery: &Delivery, envelope: &TaskEnvelope, wait: Duration) {
    metrics::held_back(&envelope.queue, &envelope.kind);
    tracing::debug!(job_id = %envelope.job_id, wait_ms = wait.as_millis() as u64, "rate limited: held back");
    match worker.broker.publish_delayed(envelope, wait).await {
        Ok(()) => {
            if let Err(err) = delivery.ack().await {
                tracing::warn!(job_id = %envelope.job_id, error = %err, "could not ack a held-back delivery; the claim skips the copy");
            }
        }
        Err(err) => {
            tracing::warn!(job_id = %envelope.job_id, error = %err, "could not hold a job back; requeueing it");
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
            let _ = delivery.requeue().await;
        }
    }
}
