//! Jobs in PostgreSQL. Every function takes a tenant-bound transaction, so
//! row-level security confines it to the caller's tenant.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

mod enqueue;
mod job;
mod lifecycle;
mod operations;
mod search;
mod stats;

pub use enqueue::{
    Enqueued, JobOptions, NewJob, PUBLISHED_BY_WRITER, Uniqueness, WorkflowStep, enqueue,
    enqueue_many, enqueue_unique, mark_published,
};

pub use lifecycle::{
    Claimed, EXHAUSTED_ERROR, EXPIRED_ERROR, Finish, JobState, NotClaimed, cancel_requested,
    claim_many, expire, finish, finish_many, hand_back, renew_lease, retry_later, set_progress,
    why_not_claimed,
};

use crate::JobStatus;
pub(crate) use job::COLUMNS;
pub use job::{Job, get};
pub use operations::{
    Attempt, BULK_LIMIT, BulkAction, DiscardOutcome, QueueCounts, RetryOutcome, attempts,
    bulk_targets, discard, purge_queue, queue_counts, retry,
};
pub use search::{COUNT_CAP, Cursor, JobFilter, JobPage, JobSort, PageAt, list};
pub use stats::{Bucket, KindSeries, Point, Window, stats};

/// One result row a job attempt recorded.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobResult {
    pub id: Uuid,
    pub attempt: i32,
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
}

/// How many of the tenant's jobs are in each status (statuses with none are
/// left out).
pub async fn count_by_status(tx: &mut TenantTx) -> Result<Vec<(String, i64)>, DbError> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status")
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// A page of a job's results, oldest first, and the total.
pub async fn results(
    tx: &mut TenantTx,
    job_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobResult>, i64), DbError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM job_results WHERE job_id = $1")
        .bind(job_id)
        .fetch_one(&mut **tx)
        .await?;
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, attempt, data, created_at FROM job_results WHERE job_id = $1 \
         ORDER BY created_at, id {}",
        ferro_db::limit_offset(limit, offset)
    )))
    .bind(job_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok((rows, total))
}

/// A file a job produced (today: the CSV of `devices.export`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobFile {
    pub file_name: String,
    pub content_type: &'static str,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    File(JobFile),
    NotFound,
    /// The job has not succeeded (yet): nothing to download.
    NotReady(String),
    /// The job succeeded but its kind makes no file.
    NoFile,
}

/// The file the job's latest result carries (`{"format": "csv", "csv": ...}`).
pub async fn file(tx: &mut TenantTx, job_id: Uuid) -> Result<FileOutcome, DbError> {
    let Some(job) = get(tx, job_id).await? else {
        return Ok(FileOutcome::NotFound);
    };
    if job.status != JobStatus::Succeeded.as_str() {
        return Ok(FileOutcome::NotReady(job.status));
    }
    let csv: Option<String> = sqlx::query_scalar(
        "SELECT data->>'csv' FROM job_results \
         WHERE job_id = $1 AND data->>'format' = 'csv' AND data ? 'csv' \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match csv {
        Some(body) => FileOutcome::File(JobFile {
            file_name: format!("{}-{}.csv", job.kind.replace('.', "-"), job.id),
            content_type: "text/csv; charset=utf-8",
            body,
        }),
        None => FileOutcome::NoFile,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Scheduled, queued or retrying: cancelled now; it will never start.
    Cancelled(Job),
    /// Running: asked to stop; it ends `cancelled` when the worker notices.
    Requested(Job),
    /// Already succeeded, failed or cancelled.
    AlreadyFinished(Job),
    NotFound,
}

pub async fn cancel(tx: &mut TenantTx, id: Uuid) -> Result<CancelOutcome, DbError> {
    let sql = format!(
        "UPDATE jobs SET \
           status = CASE WHEN status IN ('scheduled', 'queued', 'retrying') THEN 'cancelled' \
                         ELSE status END, \
           finished_at = CASE WHEN status IN ('scheduled', 'queued', 'retrying') THEN now() \
                              ELSE finished_at END, \
           error = CASE WHEN status IN ('scheduled', 'queued') THEN 'cancelled before it ran' \
                        WHEN status = 'retrying' THEN coalesce(error, '') || ' (then cancelled)' ELSE error END, \
           cancel_requested_at = coalesce(cancel_requested_at, now()) \
         WHERE id = $1 AND status IN ('scheduled', 'queued', 'running', 'retrying') \
         RETURNING {COLUMNS}"
    );
    let updated: Option<Job> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if updated
        .as_ref()
        .is_some_and(|j| j.status == JobStatus::Cancelled.as_str())
    {
        // Nothing left to deliver: keep the relay from publishing it.
        sqlx::query(
            "UPDATE job_outbox SET published_at = now(), last_error = 'cancelled' \
             WHERE job_id = $1 AND published_at IS NULL",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(match updated {
        Some(job) if job.status == JobStatus::Cancelled.as_str() => CancelOutcome::Cancelled(job),
        Some(job) => CancelOutcome::Requested(job),
        None => match get(tx, id).await? {
            Some(job) => CancelOutcome::AlreadyFinished(job),
            None => CancelOutcome::NotFound,
        },
    })
}
