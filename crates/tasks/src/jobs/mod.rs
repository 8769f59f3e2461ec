//! Jobs in PostgreSQL. Every function takes a tenant-bound transaction, so
//! row-level security confines it to the caller's tenant.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

mod lifecycle;

pub use lifecycle::{
    Claimed, EXHAUSTED_ERROR, EXPIRED_ERROR, Finish, JobState, NotClaimed, cancel_requested,
    claim_many, expire, finish, finish_many, hand_back, renew_lease, retry_later, set_progress,
    why_not_claimed,
};

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

/// Writes many jobs (from the api: no schedule slots) and their outbox
/// records in the caller's transaction, with one multi-row `INSERT` for the
/// jobs and one for the records: what [`enqueue`] does for each, in the
/// order given. A job whose idempotency key the tenant already used (before,
/// or earlier in `new`) is answered with the job that holds it.
pub async fn enqueue_many(tx: &mut TenantTx, new: &[NewJob]) -> Result<Vec<Enqueued>, DbError> {
    debug_assert!(new.iter().all(|n| n.schedule_id.is_none()));
    let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let kinds: Vec<&str> = new.iter().map(|n| n.kind.as_str()).collect();
    let devices: Vec<Option<Uuid>> = new.iter().map(|n| n.device_id).collect();
    let params: Vec<&Value> = new.iter().map(|n| &n.params).collect();
    let attempts: Vec<i32> = new.iter().map(|n| n.kind.max_attempts()).collect();
    let keys: Vec<Option<&str>> = new.iter().map(|n| n.idempotency_key.as_deref()).collect();
    let sql = format!(
        "INSERT INTO jobs (id, tenant_id, kind, device_id, params, max_attempts, idempotency_key, \
         created_by) \
         SELECT t.id, app_current_tenant(), t.kind, t.device_id, t.params, t.max_attempts, t.key, \
           app_current_user() \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::int[], $6::text[]) \
           WITH ORDINALITY AS t(id, kind, device_id, params, max_attempts, key, n) \
         ORDER BY t.n \
         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let inserted: Vec<Job> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&kinds)
        .bind(&devices)
        .bind(&params)
        .bind(&attempts)
        .bind(&keys)
        .fetch_all(&mut **tx)
        .await?;
    let mut created: std::collections::HashMap<Uuid, Job> =
        inserted.into_iter().map(|j| (j.id, j)).collect();
    // The records of the new jobs, in one statement.
    let mut envelopes = Vec::with_capacity(created.len());
    for (at, n) in new.iter().enumerate() {
        if created.contains_key(&ids[at]) {
            let mut envelope =
                TaskEnvelope::new(ids[at], n.kind.as_str(), tx.tenant_id(), tx.user_id());
            envelope.trace = n.trace.clone();
            envelope.deadline = n.deadline;
            envelopes.push((at, envelope));
        }
    }
    let job_ids: Vec<Uuid> = envelopes.iter().map(|(at, _)| ids[*at]).collect();
    let payloads: Vec<Value> = envelopes.iter().map(|(_, e)| e.to_json()).collect();
    let relay_after: Vec<f64> = envelopes
        .iter()
        .map(|(at, _)| new[*at].relay_after.as_secs_f64())
        .collect();
    let records: Vec<(i64, Uuid)> = sqlx::query_as(
        "INSERT INTO job_outbox (tenant_id, job_id, payload, available_at) \
         SELECT app_current_tenant(), t.job_id, t.payload, now() + make_interval(secs => t.after) \
         FROM unnest($1::uuid[], $2::jsonb[], $3::float8[]) AS t(job_id, payload, after) \
         RETURNING id, job_id",
    )
    .bind(&job_ids)
    .bind(&payloads)
    .bind(&relay_after)
    .fetch_all(&mut **tx)
    .await?;
    let outbox: std::collections::HashMap<Uuid, i64> =
        records.into_iter().map(|(id, job)| (job, id)).collect();
    let mut envelopes: std::collections::HashMap<usize, TaskEnvelope> =
        envelopes.into_iter().collect();
    let mut answers = Vec::with_capacity(new.len());
    for (at, n) in new.iter().enumerate() {
        if let Some(job) = created.remove(&ids[at]) {
            answers.push(Enqueued::Created {
                outbox_id: outbox[&job.id],
                envelope: envelopes.remove(&at).expect("an envelope per new job"),
                job,
            });
            continue;
        }
        // Its key was taken: by an earlier job, or by one of this batch.
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = $1");
        let existing: Job = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&n.idempotency_key)
            .fetch_one(&mut **tx)
            .await?;
        let same = existing.kind == n.kind.as_str()
            && existing.device_id == n.device_id
            && existing.params == n.params;
        answers.push(if same {
            Enqueued::Existing(existing)
        } else {
            Enqueued::KeyReused(existing)
        });
    }
    Ok(answers)
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
