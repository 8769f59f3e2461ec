//! One delivery of a job, from its envelope to its settlement: claim the job
//! ([`claim`]), run its handler ([`execute`]), record the outcome
//! ([`record`]), then tell the broker what to do with the delivery
//! ([`Settle`]). Every write of the job's row goes through the
//! [`Recorder`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_broker::Broker;
use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs::{self, Claimed, Finish, JobState, NotClaimed};
use ferro_tasks::{JobKind, JobStatus, TaskEnvelope};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::claims::Claims;
use crate::config::RunConfig;
use crate::events::Events;
use crate::jobs::{JobContext, JobError};
use crate::metrics::{self, Outcome};
use crate::recorder::Recorder;
use crate::watch::{Stop, watch};

/// What running a job needs; shared by every delivery of the worker.
pub struct Worker {
    pub db: Db,
    pub recorder: Recorder,
    pub broker: Arc<Broker>,
    pub events: Option<Events>,
    pub config: RunConfig,
    pub claims: Claims,
    /// The rate limits (with Redis; none without).
    pub limiter: Option<Arc<crate::limits::RateLimiter>>,
}

/// What becomes of a delivery once its job's state is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    DeadLetter,
}

/// Why an outcome could not be recorded; the delivery is given back.
#[derive(Debug, thiserror::Error)]
pub enum Unrecorded {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Broker(#[from] ferro_broker::BrokerError),
}

/// Claims, runs and records the job of one delivery.
pub async fn handle(worker: &Worker, envelope: &TaskEnvelope) -> Result<Settle, Unrecorded> {
    let ctx = TenantCtx::new(envelope.tenant_id, envelope.user_id);
    if envelope.is_past_deadline(chrono::Utc::now()) && expire(worker, ctx, envelope).await? {
        return Ok(Settle::Ack);
    }
    let claimed = match claim(worker, ctx, envelope).await? {
        Ok(claimed) => claimed,
        Err(settle) => return Ok(settle),
    };
    let _held = worker.claims.hold(envelope.job_id, ctx);
    let Some(kind) = JobKind::parse(&claimed.kind) else {
        let failed = finish(
            envelope,
            &claimed,
            JobStatus::Failed,
            Some("unknown job kind"),
        );
        worker.recorder.finish(ctx, failed).await?;
        metrics::job_ended_unrun(&claimed.kind, Outcome::Failed);
        return Ok(Settle::DeadLetter);
    };
    tracing::info!("job started");
    publish(worker, ctx, Some(claimed.state(envelope.job_id))).await;
    let ran = execute(worker, ctx, envelope, kind, &claimed).await;
    if ran.lost {
        // Its lease ran out (this worker stalled) and another worker claimed
        // the job: that worker's run is the one that counts.
        tracing::warn!("another worker took the job over; leaving it to that worker");
        return Ok(Settle::Ack);
    }
    let (settle, outcome, state) = record(worker, ctx, envelope, &claimed, ran.result).await?;
    metrics::job_finished(kind, outcome, ran.took);
    publish(worker, ctx, state).await;
    Ok(settle)
}

/// Ends a job past its deadline without running it; true if it ended so
/// (false: it had started already, a duplicate delivery the claim decides).
async fn expire(worker: &Worker, ctx: TenantCtx, envelope: &TaskEnvelope) -> Result<bool, DbError> {
    let Some(state) = worker.recorder.expire(ctx, envelope.job_id).await? else {
        return Ok(false);
    };
    tracing::info!(error = jobs::EXPIRED_ERROR, "job cancelled");
    metrics::job_ended_unrun(&envelope.kind, Outcome::Cancelled);
    publish(worker, ctx, Some(state)).await;
    Ok(true)
}

/// The claimed job, or how to settle a delivery whose job is not to run.
async fn claim(
    worker: &Worker,
    ctx: TenantCtx,
    envelope: &TaskEnvelope,
) -> Result<Result<Claimed, Settle>, Unrecorded> {
    let reason = match worker.recorder.claim(ctx, envelope.job_id).await? {
        Ok(claimed) => return Ok(Ok(claimed)),
        Err(reason) => reason,
    };
    if let NotClaimed::Leased(until) = reason {
        // Another worker holds it, or held it and died: look again once its
        // lease can have run out.
        let wait =
            (until - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "job is leased by another worker; looking again later"
        );
        worker.broker.publish_delayed(envelope, wait).await?;
        return Ok(Err(Settle::Ack));
    }
    let settle = if reason == NotClaimed::Exhausted {
        tracing::warn!(error = jobs::EXHAUSTED_ERROR, "job failed");
        metrics::job_ended_unrun(&envelope.kind, Outcome::Failed);
        Settle::DeadLetter
    } else {
        tracing::info!(?reason, "not running the job");
        Settle::Ack
    };
    // Ended here rather than by a run: its watchers hear it now.
    if matches!(reason, NotClaimed::Cancelled | NotClaimed::Exhausted)
        && let Some(events) = &worker.events
    {
        events.emit(&worker.db, ctx, envelope.job_id).await;
    }
    Ok(Err(settle))
}

/// What a run of the handler came to.
struct Ran {
    result: Result<Vec<Value>, JobError>,
    took: Duration,
    /// Another worker took the job over meanwhile.
    lost: bool,
}

/// Runs the handler under the kind's time limit while the watcher renews
/// the lease and looks for a cancel request.
async fn execute(
    worker: &Worker,
    ctx: TenantCtx,
    envelope: &TaskEnvelope,
    kind: JobKind,
    claimed: &Claimed,
) -> Ran {
    let cancel = CancellationToken::new();
    let job = JobContext {
        db: worker.db.clone(),
        job_id: envelope.job_id,
        ctx,
        attempt: claimed.attempts,
        device_id: claimed.device_id,
        cancel: cancel.clone(),
        recorder: worker.recorder.clone(),
        events: worker.events.clone(),
        smtp: worker.config.smtp.clone(),
        retention: worker.config.retention,
        workflow: claimed.workflow_id.zip(claimed.workflow_step),
        files: ferro_files::Storage::new(&worker.config.uploads),
        sessions: worker.events.as_ref().map(|e| {
            // Sessions live under the same Redis prefix as the events; the
            // lifetime only matters to writers, which this store is not.
            ferro_auth::sessions::SessionStore::new(
                e.redis.clone(),
                e.prefix.clone(),
                Duration::from_secs(1),
            )
        }),
    };
    let started = Instant::now();
    let watcher = tokio::spawn(watch(
        worker.db.clone(),
        ctx,
        envelope.job_id,
        worker.config.worker_id.clone(),
        worker.config.lease,
        cancel.clone(),
    ));
    // The handler stops at its time limit or when the watcher signals, even
    // one that never looks at the signal itself (dropping it rolls back its
    // transaction; its results are only kept by the outcome recorded after).
    let limit = claimed.time_limit(kind);
    let result = tokio::select! {
        biased;
        ran = tokio::time::timeout(limit, crate::jobs::run(kind, &claimed.params, &job)) => {
            ran.unwrap_or_else(|_| Err(JobError::Transient(format!(
                "timed out after {} s",
                limit.as_secs()
            ))))
        }
        _ = cancel.cancelled() => Err(JobError::Cancelled),
    };
    watcher.abort();
    let lost = watcher.await.ok() == Some(Stop::Lost);
    Ran {
        result,
        took: started.elapsed(),
        lost,
    }
}

/// The outcome of a finished attempt, for [`Recorder::finish`].
fn finish(
    envelope: &TaskEnvelope,
    claimed: &Claimed,
    status: JobStatus,
    error: Option<&str>,
) -> Finish {
    Finish {
        id: envelope.job_id,
        attempt: claimed.attempts,
        status,
        error: error.map(str::to_owned),
        results: Vec::new(),
    }
}

/// Records what the attempt came to: success with its results, cancelled,
/// another attempt after a backoff, or failure for good.
async fn record(
    worker: &Worker,
    ctx: TenantCtx,
    envelope: &TaskEnvelope,
    claimed: &Claimed,
    result: Result<Vec<Value>, JobError>,
) -> Result<(Settle, Outcome, Option<JobState>), DbError> {
    let recorder = &worker.recorder;
    let failed = |error: &str| finish(envelope, claimed, JobStatus::Failed, Some(error));
    Ok(match result {
        Ok(rows) => {
            let count = rows.len();
            let succeeded = Finish {
                results: rows,
                ..finish(envelope, claimed, JobStatus::Succeeded, None)
            };
            match recorder.finish(ctx, succeeded).await {
                Ok(state) => {
                    tracing::info!(results = count, "job succeeded");
                    (Settle::Ack, Outcome::Succeeded, state)
                }
                // Results the database will never take: another attempt
                // would make the same ones, so the job fails now (rather
                // than being handed back until its attempts run out).
                Err(err) if err.is_refused_value() => {
                    let error = format!("its results could not be stored: {err}");
                    let state = recorder.finish(ctx, failed(&error)).await?;
                    tracing::warn!(%error, "job failed for good; dead-lettering it");
                    (Settle::DeadLetter, Outcome::Failed, state)
                }
                Err(err) => return Err(err),
            }
        }
        Err(JobError::Cancelled) => {
            let cancelled = "cancelled while running";
            let end = finish(envelope, claimed, JobStatus::Cancelled, Some(cancelled));
            let state = recorder.finish(ctx, end).await?;
            tracing::info!("job cancelled");
            (Settle::Ack, Outcome::Cancelled, state)
        }
        Err(JobError::Transient(error)) if claimed.attempts < claimed.max_attempts => {
            let delay = backoff(claimed.attempts);
            // The deadline was for the first start (a scheduled job not
            // started before its next slot is stale); a job that started in
            // time retries by the retry policy alone.
            let failed_attempt = TaskEnvelope {
                attempt: claimed.attempts as u32,
                deadline: None,
                ..envelope.clone()
            };
            let state = recorder
                .retry(ctx, failed_attempt, error.clone(), delay)
                .await?;
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            (Settle::Ack, Outcome::Retrying, state)
        }
        Err(JobError::Transient(error) | JobError::Permanent(error)) => {
            let state = recorder.finish(ctx, failed(&error)).await?;
            tracing::warn!(%error, "job failed for good; dead-lettering it");
            (Settle::DeadLetter, Outcome::Failed, state)
        }
    })
}

/// Backoff before attempt `attempt + 1`: 1 s, 2 s, 4 s, ... doubling up to
/// 512 s (from the tenth attempt on).
pub fn backoff(attempt: i32) -> Duration {
    Duration::from_secs(1u64 << (attempt.clamp(1, 10) - 1))
}

/// Tells the job's watchers of its new state, if there is one.
async fn publish(worker: &Worker, ctx: TenantCtx, state: Option<JobState>) {
    if let (Some(events), Some(state)) = (&worker.events, state) {
        events.publish(ctx.tenant_id, &state).await;
    }
}
