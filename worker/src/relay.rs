//! The outbox relay. A job and its outbox record commit together; the api
//! publishes the envelope right after commit and marks the record, and this
//! relay publishes every record still pending (the api could not reach the
//! broker, or died between commit and publish). A broker outage therefore
//! delays jobs but never loses one. A record may occasionally be published
//! twice (published, then the mark lost); the worker's guarded claim makes
//! that harmless.
//!
//! A job can still be lost after it reached the broker (a node recreated
//! without its data, a deleted or purged queue, a Redis without
//! persistence). Every record marked published is checked `redeliver_after`
//! later ([`recheck`]); one whose job has not started is published again.

use std::time::Duration;

use ferro_db::Db;
use ferro_tasks::TaskEnvelope;

use ferro_broker::{Broker, BrokerError};

/// How long a claimed record is reserved for this relay before another
/// relay may take it (should this one die mid-batch).
pub const LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] ferro_db::DbError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Publishes up to `batch` due records, together (the broker's confirms
/// awaited as one); returns how many were published. Records that fail stay
/// pending and come due again a second later. Each published one is checked
/// `redeliver_after` later ([`recheck`]). Claiming a deferred job's record
/// releases the job (`scheduled` to `queued`).
pub async fn relay_once(
    db: &Db,
    broker: &Broker,
    batch: i32,
    redeliver_after: Duration,
) -> Result<usize, RelayError> {
    let rows = db.outbox_claim(batch, LEASE).await?;
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        match TaskEnvelope::from_bytes(row.payload.to_string().as_bytes()) {
            Ok(envelope) => envelopes.push((row.id, envelope)),
            Err(err) => {
                tracing::error!(outbox_id = row.id, error = %err, "outbox record is not a task envelope");
                db.outbox_mark_failed(row.id, &err.to_string()).await?;
            }
        }
    }
    if envelopes.is_empty() {
        return Ok(0);
    }
    let refs: Vec<&TaskEnvelope> = envelopes.iter().map(|(_, e)| e).collect();
    let sent = broker.publish_many(&refs).await;
    let mut published = Vec::with_capacity(envelopes.len());
    for ((id, envelope), sent) in envelopes.iter().zip(sent) {
        match sent {
            Ok(()) => published.push(*id),
            Err(err) => {
                tracing::warn!(outbox_id = id, job_id = %envelope.job_id, error = %err, "could not publish; will retry");
                db.outbox_mark_failed(*id, &err.to_string()).await?;
            }
        }
    }
    if !published.is_empty() {
        db.outbox_mark_published(&published, redeliver_after)
            .await?;
        metrics::counter!("outbox_relayed_total").increment(published.len() as u64);
    }
    Ok(published.len())
}

/// Publishes again the jobs the broker lost: takes the published records
/// whose check is due ([`Db::outbox_recheck`]); a job still waiting for a
/// start is published again at once when no message waits in the broker's
/// jobs queue (nothing there could be it), or once ten `period`s passed
/// (however busy the queue). Returns how many were made due again.
pub async fn recheck(db: &Db, broker: &Broker, period: Duration) -> Result<i32, RelayError> {
    // An unreadable depth counts as busy: the long wait still applies.
    let idle = broker.depths().await.is_ok_and(|(jobs, _)| jobs == 0);
    let again = db.outbox_recheck(1000, idle, period).await?;
    if again > 0 {
        tracing::warn!(
            jobs = again,
            broker_idle = idle,
            "published jobs the broker never delivered are published again"
        );
        metrics::counter!("outbox_republished_total").increment(again as u64);
    }
    Ok(again)
}

/// Runs the relay until `shutdown` resolves: a batch as soon as the last one
/// was full, otherwise every `interval`; and the check of published jobs
/// ([`recheck`]) every `redeliver_after` (at most every 5 s).
pub async fn run(
    db: Db,
    broker: &Broker,
    interval: Duration,
    redeliver_after: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    const BATCH: i32 = 100;
    let recheck_every = redeliver_after.min(Duration::from_secs(5));
    let mut last_recheck = tokio::time::Instant::now();
    tokio::pin!(shutdown);
    loop {
        let wait = match relay_once(&db, broker, BATCH, redeliver_after).await {
            Ok(n) if n as i32 == BATCH => Duration::ZERO,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(published = n, "outbox relay published pending jobs");
                }
                interval
            }
            Err(err) => {
                tracing::warn!(error = %err, "outbox relay round failed");
                interval.max(Duration::from_secs(1))
            }
        };
        if last_recheck.elapsed() >= recheck_every {
            last_recheck = tokio::time::Instant::now();
            if let Err(err) = recheck(&db, broker, redeliver_after).await {
                tracing::warn!(error = %err, "could not check published jobs");
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
