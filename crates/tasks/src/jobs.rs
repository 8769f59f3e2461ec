//! Jobs in PostgreSQL. Every function takes a tenant-bound transaction, so
//! row-level security confines it to the caller's tenant.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{JobKind, JobStatus, TaskEnvelope};

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Job {
    pub id: Uuid,
    #[schema(example = "snmp.get")]
    pub kind: String,
    #[schema(required = true)]
    pub device_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub params: Value,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// 0 to 100.
    pub progress: i16,
    pub attempts: i32,
    pub max_attempts: i32,
    #[schema(required = true)]
    pub error: Option<String>,
    #[schema(required = true)]
    pub schedule_id: Option<Uuid>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub scheduled_for: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub cancel_requested_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, device_id, params, status, progress, attempts, max_attempts, error, \
    schedule_id, scheduled_for, cancel_requested_at, created_at, started_at, finished_at";

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

/// How long the outbox relay leaves a new job's record to a writer that
/// publishes the envelope itself right after commit (the api, the
/// scheduler). Longer than their publish timeout (2 s), so the relay takes
/// over only when that fast path failed or its process died, instead of
/// publishing a second copy of a record whose mark is on its way.
pub const PUBLISHED_BY_WRITER: std::time::Duration = std::time::Duration::from_secs(5);

/// A job to enqueue. `params` must already be validated for `kind`.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub device_id: Option<Uuid>,
    pub params: Value,
    pub idempotency_key: Option<String>,
    pub schedule_id: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When the relay may publish the outbox record: [`PUBLISHED_BY_WRITER`]
    /// for a writer that publishes it itself, zero to leave it to the relay.
    pub relay_after: std::time::Duration,
    /// The trace of the request or schedule that enqueued it, carried in its
    /// envelope to the worker.
    pub trace: Option<crate::TraceContext>,
    /// A job not started by then is not started at all (it ends `cancelled`).
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// A new job; `envelope` is what its outbox record (`outbox_id`) will
    /// publish.
    Created {
        job: Job,
        envelope: TaskEnvelope,
        outbox_id: i64,
    },
    /// The tenant already used this idempotency key for this same job.
    Existing(Job),
    /// The tenant already used this idempotency key for a different job.
    KeyReused(Job),
    /// The schedule already has a job for this slot (another scheduler fired it).
    SlotTaken,
}

/// Writes the job (status `queued`) and its outbox record in the caller's
/// transaction: both commit or neither does. Publishing happens after commit
/// (the outbox relay), so a broker outage delays jobs but loses none.
pub async fn enqueue(tx: &mut TenantTx, new: NewJob) -> Result<Enqueued, DbError> {
    // One arbiter per insert: a scheduled job is unique by its slot, an
    // api job by its idempotency key.
    let conflict = if new.schedule_id.is_some() {
        "ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING"
    } else {
        "ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO jobs (tenant_id, kind, device_id, params, max_attempts, idempotency_key, \
         schedule_id, scheduled_for, created_by) \
         VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6, $7, app_current_user()) \
         {conflict} RETURNING {COLUMNS}"
    );
    let inserted: Option<Job> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new.kind.as_str())
        .bind(new.device_id)
        .bind(&new.params)
        .bind(new.kind.max_attempts())
        .bind(&new.idempotency_key)
        .bind(new.schedule_id)
        .bind(new.scheduled_for)
        .fetch_optional(&mut **tx)
        .await?;
    if inserted.is_none() && new.schedule_id.is_some() {
        return Ok(Enqueued::SlotTaken);
    }
    let Some(job) = inserted else {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = $1");
        let existing: Job = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&new.idempotency_key)
            .fetch_one(&mut **tx)
            .await?;
        let same = existing.kind == new.kind.as_str()
            && existing.device_id == new.device_id
            && existing.params == new.params;
        return Ok(if same {
            Enqueued::Existing(existing)
        } else {
            Enqueued::KeyReused(existing)
        });
    };
    let mut envelope = TaskEnvelope::new(job.id, new.kind.as_str(), tx.tenant_id(), tx.user_id());
    envelope.trace = new.trace;
    envelope.deadline = new.deadline;
    let outbox_id: i64 = sqlx::query_scalar(
        "INSERT INTO job_outbox (tenant_id, job_id, payload, available_at) \
         VALUES (app_current_tenant(), $1, $2, now() + make_interval(secs => $3)) RETURNING id",
    )
    .bind(job.id)
    .bind(envelope.to_json())
    .bind(new.relay_after.as_secs_f64())
    .fetch_one(&mut **tx)
    .await?;
    Ok(Enqueued::Created {
        job,
        envelope,
        outbox_id,
    })
}

/// Marks these outbox records published (the fast path of the api and the
/// scheduler, after they published the envelopes themselves); the relay
/// skips them from then on. By record, not by job: by the time the mark
/// runs, a worker may have run the job, failed it and written the record of
/// its retry, which only the relay will publish.
pub async fn mark_published(tx: &mut TenantTx, outbox_ids: &[i64]) -> Result<(), DbError> {
    // One UPDATE by primary key per record inside the function.
    sqlx::query("SELECT app_mark_published_records($1)")
        .bind(outbox_ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Job>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Filters of `GET /jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub device_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
}

/// A page of the tenant's jobs, newest first, and the total.
pub async fn list(
    tx: &mut TenantTx,
    filter: &JobFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Job>, i64), DbError> {
    let filter_sql = "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) \
                      AND ($3::uuid IS NULL OR device_id = $3) AND ($4::uuid IS NULL OR schedule_id = $4)";
    let status = filter.status.map(JobStatus::as_str);
    // One statement: the page, each row carrying the total from a scalar
    // subquery, so both come from one snapshot (a job created between two
    // statements made the total disagree with the page). Only an empty page
    // needs a separate count.
    let rows: Vec<CountedJob> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM jobs {filter_sql}) AS total, {COLUMNS} FROM jobs {filter_sql} \
         ORDER BY created_at DESC, id DESC {page}",
        page = ferro_db::limit_offset(limit, offset)
    )))
    .bind(status)
    .bind(&filter.kind)
    .bind(filter.device_id)
    .bind(filter.schedule_id)
    .fetch_all(&mut **tx)
    .await?;
    let total = match rows.first() {
        Some(row) => row.total,
        None => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM jobs {filter_sql}"
            )))
            .bind(status)
            .bind(&filter.kind)
            .bind(filter.device_id)
            .bind(filter.schedule_id)
            .fetch_one(&mut **tx)
            .await?
        }
    };
    Ok((rows.into_iter().map(|r| r.job).collect(), total))
}

#[derive(sqlx::FromRow)]
struct CountedJob {
    total: i64,
    #[sqlx(flatten)]
    job: Job,
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
    /// Queued or retrying: cancelled now; it will never start.
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
           status = CASE WHEN status IN ('queued', 'retrying') THEN 'cancelled' ELSE status END, \
           finished_at = CASE WHEN status IN ('queued', 'retrying') THEN now() ELSE finished_at END, \
           error = CASE WHEN status = 'queued' THEN 'cancelled before it ran' \
                        WHEN status = 'retrying' THEN coalesce(error, '') || ' (then cancelled)' ELSE error END, \
           cancel_requested_at = coalesce(cancel_requested_at, now()) \
         WHERE id = $1 AND status IN ('queued', 'running', 'retrying') RETURNING {COLUMNS}"
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
}

impl Claimed {
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
        "SELECT id, kind, device_id, params, attempts, max_attempts, error \
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
