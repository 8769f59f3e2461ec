//! A job's life in the worker: claimed for an attempt under a lease, its
//! progress, and how the attempt ends (an outcome with results, another
//! attempt later, an expiry, a hand-back). Every function takes the job's
//! tenant-bound transaction.

use crate::{JobStatus, TaskEnvelope};
use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde_json::Value;
use uuid::Uuid;

/// What a job's events carry: its state right after a change, as the
/// changing statement returns it (no second read).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobState {
    pub id: Uuid,
    pub status: String,
    pub progress: i16,
    pub attempts: i32,
    pub error: Option<String>,
}

const STATE: &str = "id, status, progress, attempts, error";

/// A job claimed by a worker for one attempt.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Claimed {
    pub kind: String,
    pub device_id: Option<Uuid>,
    pub params: Value,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The previous attempt's error, if any (kept until the outcome).
    pub error: Option<String>,
    /// The job's own time limit for an attempt, if it was given one.
    pub timeout_seconds: Option<i32>,
    /// The workflow it is a step of, and which step.
    pub workflow_id: Option<Uuid>,
    pub workflow_step: Option<i32>,
}

impl Claimed {
    /// How long this attempt may run: the job's own limit, else its kind's.
    pub fn time_limit(&self, kind: crate::JobKind) -> std::time::Duration {
        match self.timeout_seconds {
            Some(secs) if secs > 0 => std::time::Duration::from_secs(secs as u64),
            _ => kind.time_limit(),
        }
    }

    /// The job's state right after the claim: running, progress 0.
    pub fn state(&self, id: Uuid) -> JobState {
        JobState {
            id,
            status: JobStatus::Running.as_str().to_owned(),
            progress: 0,
            attempts: self.attempts,
            error: self.error.clone(),
        }
    }
}

/// Why a delivery did not lead to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum NotClaimed {
    /// No such job (deleted with its tenant).
    Missing,
    /// Already succeeded, failed or cancelled: a duplicate delivery.
    Finished,
    /// Another worker holds a live lease on it until then.
    Leased(DateTime<Utc>),
    /// Cancelled before it started (now marked so).
    Cancelled,
    /// Its worker stopped during its last allowed attempt: no attempt is
    /// left, so it is now marked `failed` (and should be dead-lettered).
    Exhausted,
}

/// The error of a job whose workers stopped during all its attempts.
pub const EXHAUSTED_ERROR: &str = "its worker stopped during every attempt";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    #[sqlx(flatten)]
    claimed: Claimed,
}

/// Claims jobs of the tenant for one attempt each, in one call
/// (`app_claim_jobs`, migration `..._hot_job_updates`): each job is locked by
/// primary key under the claim's guards, then one UPDATE claims the locked
/// rows. It takes only a queued or retrying job, or a running one whose lease expired
/// (its worker died), and never one whose cancellation was requested, so a
/// duplicate delivery or a job another worker holds is not run twice. The
/// claimed ones come back; for an id that is not in the answer,
/// [`why_not_claimed`] tells why. `ids` should hold each job once, sorted
/// (rows are locked in that order).
pub async fn claim_many(
    tx: &mut TenantTx,
    ids: &[Uuid],
    worker_id: &str,
    lease: std::time::Duration,
) -> Result<Vec<(Uuid, Claimed)>, DbError> {
    let rows: Vec<ClaimedRow> = sqlx::query_as(
        "SELECT id, kind, device_id, params, attempts, max_attempts, error, timeout_seconds, \
           workflow_id, workflow_step \
         FROM app_claim_jobs($1, $2, $3)",
    )
    .bind(ids)
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.claimed)).collect())
}

/// Why the guarded claim did not take the job. A job whose cancellation was
/// requested and that nobody holds ends here, as `cancelled`.
pub async fn why_not_claimed(tx: &mut TenantTx, id: Uuid) -> Result<NotClaimed, DbError> {
    // (status, lease_expires_at, cancel_requested_at, no attempt left)
    type State = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>, bool);
    let state: Option<State> = sqlx::query_as(
        "SELECT status, lease_expires_at, cancel_requested_at, attempts > max_attempts \
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match state {
        None => NotClaimed::Missing,
        Some((status, ..)) if status.parse::<JobStatus>().is_ok_and(JobStatus::is_final) => {
            NotClaimed::Finished
        }
        Some((_, _, Some(_), _)) => {
            // Cancellation was requested and nobody holds it: it ends here.
            finish(tx, id, JobStatus::Cancelled, Some("cancelled")).await?;
            NotClaimed::Cancelled
        }
        Some((_, Some(lease), None, true)) if lease < Utc::now() => {
            finish(tx, id, JobStatus::Failed, Some(EXHAUSTED_ERROR)).await?;
            NotClaimed::Exhausted
        }
        Some((_, lease, None, _)) => {
            // Running under a live lease (or claimed by another worker a
            // moment ago): look again once the lease can have expired.
            NotClaimed::Leased(lease.unwrap_or_else(Utc::now))
        }
    })
}

/// The error of a job that was not started before its deadline.
pub const EXPIRED_ERROR: &str = "not started before its deadline";

/// Ends a job that has not started (queued, or waiting for a retry) as
/// `cancelled` because its deadline passed; its new state, or `None` if it
/// had started or ended meanwhile (then it is left alone).
pub async fn expire(tx: &mut TenantTx, id: Uuid) -> Result<Option<JobState>, DbError> {
    let state: Option<(String,)> = sqlx::query_as(
        "SELECT status FROM jobs WHERE id = $1 AND status IN ('queued', 'retrying') FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if state.is_none() {
        return Ok(None);
    }
    finish(tx, id, JobStatus::Cancelled, Some(EXPIRED_ERROR)).await
}

/// Extends the lease of a running job; false if the job is no longer ours.
pub async fn renew_lease(
    tx: &mut TenantTx,
    id: Uuid,
    worker_id: &str,
    lease: std::time::Duration,
) -> Result<bool, DbError> {
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3) \
         WHERE id = $1 AND worker_id = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// Gives back a job this worker was running when it had to stop (its
/// shutdown grace ran out): the attempt does not count, so a job longer than
/// the grace period is not failed by a few deploys. Queued again (or
/// retrying, if an earlier attempt failed), for the delivery the worker hands
/// back to run. False if the job was no longer this worker's to give back.
pub async fn hand_back(tx: &mut TenantTx, id: Uuid, worker_id: &str) -> Result<bool, DbError> {
    let given = sqlx::query(
        "UPDATE jobs SET attempts = attempts - 1, \
           status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'queued' END, \
           worker_id = NULL, lease_expires_at = NULL, progress = 0 \
         WHERE id = $1 AND worker_id = $2 AND status = 'running' AND attempts > 0",
    )
    .bind(id)
    .bind(worker_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(given == 1)
}

/// Whether cancellation of the job was requested.
pub async fn cancel_requested(tx: &mut TenantTx, id: Uuid) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT cancel_requested_at IS NOT NULL FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .unwrap_or(true))
}

/// Records progress of a running job; its new state, or `None` if it is no
/// longer running.
pub async fn set_progress(
    tx: &mut TenantTx,
    id: Uuid,
    progress: u8,
) -> Result<Option<JobState>, DbError> {
    let sql = format!(
        "UPDATE jobs SET progress = $2 WHERE id = $1 AND status = 'running' RETURNING {STATE}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(i16::from(progress.min(100)))
        .fetch_optional(&mut **tx)
        .await?)
}

/// How one attempt ended, for [`finish_many`].
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub id: Uuid,
    /// The attempt the result rows belong to.
    pub attempt: i32,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: JobStatus,
    pub error: Option<String>,
    /// Result rows, in order.
    pub results: Vec<Value>,
}

/// Ends the job: succeeded (progress 100), failed or cancelled. Returns its
/// final state, or `None` if it had already ended.
pub async fn finish(
    tx: &mut TenantTx,
    id: Uuid,
    status: JobStatus,
    error: Option<&str>,
) -> Result<Option<JobState>, DbError> {
    let end = Finish {
        id,
        attempt: 1,
        status,
        error: error.map(str::to_owned),
        results: Vec::new(),
    };
    Ok(finish_many(tx, &[&end]).await?.pop())
}

/// Ends several of the tenant's jobs in one call (`app_finish_jobs`) and
/// records their result rows. Only jobs that had not ended yet change, and
/// only their results are kept; their final states come back. `ends` should
/// hold each job once, sorted by id (rows are locked in that order).
pub async fn finish_many(tx: &mut TenantTx, ends: &[&Finish]) -> Result<Vec<JobState>, DbError> {
    debug_assert!(ends.iter().all(|e| e.status.is_final()));
    let ids: Vec<Uuid> = ends.iter().map(|e| e.id).collect();
    let statuses: Vec<&str> = ends.iter().map(|e| e.status.as_str()).collect();
    let errors: Vec<Option<String>> = ends
        .iter()
        .map(|e| e.error.as_ref().map(|m| m.chars().take(2000).collect()))
        .collect();
    let rows = ends
        .iter()
        .flat_map(|e| e.results.iter().map(move |r| (e.id, e.attempt, r)));
    let (mut result_jobs, mut attempts, mut data) = (Vec::new(), Vec::new(), Vec::new());
    for (id, attempt, row) in rows {
        result_jobs.push(id);
        attempts.push(attempt);
        data.push(row);
    }
    let sql = format!("SELECT {STATE} FROM app_finish_jobs($1, $2, $3, $4, $5, $6)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&statuses)
        .bind(&errors)
        .bind(&result_jobs)
        .bind(&attempts)
        .bind(&data)
        .fetch_all(&mut **tx)
        .await?)
}

/// Schedules another attempt after `delay`: the job becomes `retrying` and
/// the next attempt's envelope goes into the outbox, due after the delay, in
/// the same transaction. The relay publishes it when it is due.
pub async fn retry_later(
    tx: &mut TenantTx,
    envelope: &TaskEnvelope,
    error: &str,
    delay: std::time::Duration,
) -> Result<Option<JobState>, DbError> {
    let sql = format!(
        "UPDATE jobs SET status = 'retrying', error = $2, lease_expires_at = NULL \
         WHERE id = $1 AND status = 'running' RETURNING {STATE}"
    );
    let state: Option<JobState> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(envelope.job_id)
        .bind(error.chars().take(2000).collect::<String>())
        .fetch_optional(&mut **tx)
        .await?;
    let next = envelope.next_attempt();
    sqlx::query(
        "INSERT INTO job_outbox (tenant_id, job_id, payload, available_at) \
         VALUES (app_current_tenant(), $1, $2, now() + make_interval(secs => $3))",
    )
    .bind(envelope.job_id)
    .bind(next.to_json())
    .bind(delay.as_secs_f64())
    .execute(&mut **tx)
    .await?;
    Ok(state)
}
