//! What an operator does to jobs: read their attempts, retry one as a new
//! job that links to it, discard a finished one, and pick the jobs a bulk
//! action applies to.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

use super::enqueue::{Enqueued, JobOptions, NewJob, enqueue};
use super::job::{COLUMNS, Job, get};
use super::search::{JobFilter, JobSort, PageAt, list};
use crate::{JobKind, JobStatus};

/// At most this many jobs change in one bulk action; the answer says if
/// more matched, and the same request then takes the next ones.
pub const BULK_LIMIT: i64 = 1_000;

/// One attempt of a job: ended (from `job_attempts`), or the one running.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt. A handed-back attempt did not count, so the
    /// next one has the same number.
    pub attempt: i32,
    /// The worker that ran it.
    #[schema(required = true)]
    pub worker: Option<String>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `cancelled`, `retried` (failed,
    /// with another attempt to come), `handed_back` (the worker stopped
    /// before it ended; it did not count) or `lost` (the worker's lease ran
    /// out and another worker took the job).
    pub outcome: String,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The job's attempts, oldest first, with the running one last; `None` if
/// the tenant has no such job.
pub async fn attempts(tx: &mut TenantTx, id: Uuid) -> Result<Option<Vec<Attempt>>, DbError> {
    if get(tx, id).await?.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query_as(
        "SELECT attempt, worker, started_at, finished_at, outcome, error FROM ( \
           SELECT a.id AS n, a.attempt, a.worker_id AS worker, a.started_at, a.finished_at, \
                  a.outcome, a.error \
           FROM job_attempts a WHERE a.job_id = $1 \
           UNION ALL \
           SELECT NULL, j.attempts, j.worker_id, coalesce(j.attempt_started_at, j.started_at), \
                  NULL, 'running', NULL \
           FROM jobs j WHERE j.id = $1 AND j.status = 'running') t \
         ORDER BY n NULLS LAST",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Some(rows))
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// The new job, queued with a fresh attempt budget.
    Retried(Job),
    /// Only failed and cancelled jobs are retried: this one is in another state.
    NotRetryable(Job),
    NotFound,
}

/// Retries a failed or cancelled job as a new job with the same kind,
/// device, parameters, queue, priority and limits, and `retry_of` naming
/// the original (which stays as it was). The relay publishes it.
pub async fn retry(tx: &mut TenantTx, id: Uuid) -> Result<RetryOutcome, DbError> {
    let Some(original) = get(tx, id).await? else {
        return Ok(RetryOutcome::NotFound);
    };
    let retryable = [JobStatus::Failed, JobStatus::Cancelled]
        .iter()
        .any(|s| s.as_str() == original.status);
    let Some(kind) = JobKind::parse(&original.kind).filter(|_| retryable) else {
        return Ok(RetryOutcome::NotRetryable(original));
    };
    let new = NewJob {
        kind,
        device_id: original.device_id,
        params: original.params.clone(),
        idempotency_key: None,
        schedule_id: None,
        scheduled_for: None,
        relay_after: Duration::ZERO,
        trace: None,
        deadline: None,
        options: JobOptions {
            queue: Some(original.queue.clone()),
            priority: original.priority.clamp(0, 9) as u8,
            run_at: None,
            max_attempts: Some(original.max_attempts),
            timeout_seconds: original.timeout_seconds,
            unique: None,
        },
        step: None,
    };
    let Enqueued::Created { job, .. } = enqueue(tx, new).await? else {
        unreachable!("a job without idempotency key, slot or uniqueness is always created")
    };
    let sql = format!("UPDATE jobs SET retry_of = $2 WHERE id = $1 RETURNING {COLUMNS}");
    let job = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(job.id)
        .bind(original.id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(RetryOutcome::Retried(job))
}

#[derive(Debug, Clone, PartialEq)]
pub enum DiscardOutcome {
    /// Deleted, with its results, attempts and outbox records.
    Discarded(Job),
    /// Not finished: cancel it first.
    NotFinished(Job),
    /// A step of a workflow whose other steps have not all finished (they
    /// may still read its results).
    WorkflowOpen(Job),
    NotFound,
}

/// Deletes a finished job with everything it left behind.
pub async fn discard(tx: &mut TenantTx, id: Uuid) -> Result<DiscardOutcome, DbError> {
    let Some(job) = get(tx, id).await? else {
        return Ok(DiscardOutcome::NotFound);
    };
    let finished = job
        .status
        .parse::<JobStatus>()
        .is_ok_and(JobStatus::is_final);
    if !finished {
        return Ok(DiscardOutcome::NotFinished(job));
    }
    if let Some(workflow) = job.workflow_id {
        let open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE workflow_id = $1 \
             AND status NOT IN ('succeeded', 'failed', 'cancelled'))",
        )
        .bind(workflow)
        .fetch_one(&mut **tx)
        .await?;
        if open {
            return Ok(DiscardOutcome::WorkflowOpen(job));
        }
    }
    sqlx::query("DELETE FROM job_outbox WHERE job_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let deleted = sqlx::query(
        "DELETE FROM jobs WHERE id = $1 AND status IN ('succeeded', 'failed', 'cancelled')",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(if deleted == 1 {
        DiscardOutcome::Discarded(job)
    } else {
        // It changed since it was read (a concurrent discard).
        DiscardOutcome::NotFound
    })
}

/// A bulk action on the jobs a filter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Retry,
    Cancel,
    Discard,
}

impl BulkAction {
    pub fn parse(text: &str) -> Option<BulkAction> {
        match text {
            "retry" => Some(BulkAction::Retry),
            "cancel" => Some(BulkAction::Cancel),
            "discard" => Some(BulkAction::Discard),
            _ => None,
        }
    }

    /// The statuses of the jobs the action applies to.
    pub fn applies_to(self) -> &'static [JobStatus] {
        match self {
            BulkAction::Retry => &[JobStatus::Failed, JobStatus::Cancelled],
            BulkAction::Cancel => &[
                JobStatus::Scheduled,
                JobStatus::Queued,
                JobStatus::Running,
                JobStatus::Retrying,
            ],
            BulkAction::Discard => &[
                JobStatus::Succeeded,
                JobStatus::Failed,
                JobStatus::Cancelled,
            ],
        }
    }
}

/// The jobs `filter` selects that `action` applies to, newest first, at
/// most [`BULK_LIMIT`], and whether more matched.
pub async fn bulk_targets(
    tx: &mut TenantTx,
    filter: &JobFilter,
    action: BulkAction,
) -> Result<(Vec<Job>, bool), DbError> {
    let applicable = action.applies_to();
    let mut narrowed = filter.clone();
    narrowed.statuses = if filter.statuses.is_empty() {
        applicable.to_vec()
    } else {
        let wanted: Vec<JobStatus> = filter
            .statuses
            .iter()
            .copied()
            .filter(|s| applicable.contains(s))
            .collect();
        if wanted.is_empty() {
            return Ok((Vec::new(), false));
        }
        wanted
    };
    let page = list(
        tx,
        &narrowed,
        JobSort::CreatedDesc,
        &PageAt::Offset(0),
        BULK_LIMIT + 1,
    )
    .await?;
    let mut jobs = page.items;
    let more = jobs.len() as i64 > BULK_LIMIT;
    jobs.truncate(BULK_LIMIT as usize);
    Ok((jobs, more))
}

/// One queue's unfinished jobs, across tenants.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueCounts {
    pub queue: String,
    /// Deferred jobs due later.
    pub scheduled: i64,
    /// Queued, or waiting for a retry.
    pub waiting: i64,
    pub running: i64,
}

/// Every queue's unfinished jobs, across tenants: for platform
/// administrators (`platform_queue_counts`, which refuses others).
pub async fn queue_counts(tx: &mut TenantTx) -> Result<Vec<QueueCounts>, DbError> {
    Ok(
        sqlx::query_as("SELECT queue, scheduled, waiting, running FROM platform_queue_counts()")
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Ends every tenant's jobs waiting in `queue` (scheduled, queued,
/// retrying) `cancelled`; how many. For platform administrators
/// (`platform_purge_queue`).
pub async fn purge_queue(tx: &mut TenantTx, queue: &str) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT platform_purge_queue($1)")
        .bind(queue)
        .fetch_one(&mut **tx)
        .await?)
}
