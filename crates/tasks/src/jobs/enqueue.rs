//! Writing new jobs: each job row and its outbox record in the caller's
//! transaction, so both commit or neither does. Publishing happens after
//! commit (the writer's fast path, else the outbox relay), so a broker
//! outage delays jobs but loses none.
//!
//! A deferred job (`run_at`) is written `scheduled` with its record due at
//! `run_at`: the relay's claim of the record releases it (`queued`) and
//! publishes it. A unique job is written only when no live job holds its
//! key ([`enqueue_unique`]).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde_json::Value;
use uuid::Uuid;

use super::job::{COLUMNS, Job};
use crate::queues::DEFAULT_QUEUE;
use crate::{JobKind, JobStatus, TaskEnvelope, TraceContext};

/// How long the outbox relay leaves a new job's record to a writer that
/// publishes the envelope itself right after commit (the api, the
/// scheduler). Longer than their publish timeout (2 s), so the relay takes
/// over only when that fast path failed or its process died, instead of
/// publishing a second copy of a record whose mark is on its way.
pub const PUBLISHED_BY_WRITER: Duration = Duration::from_secs(5);

/// What a submission may ask beyond kind, device and parameters; all
/// optional, checked by [`crate::submission::check_options`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    /// The queue it goes to; `None`: [`DEFAULT_QUEUE`]. Submissions and
    /// schedules put the kind's route here when they name none.
    pub queue: Option<String>,
    /// 0 to 9, higher first within its queue.
    pub priority: u8,
    /// Not to run before then: `scheduled` until due, published by the relay.
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts instead of the kind's default.
    pub max_attempts: Option<i32>,
    /// One attempt's time limit instead of the kind's.
    pub timeout_seconds: Option<i32>,
    pub unique: Option<Uniqueness>,
}

/// A unique submission: no new job while a job with the same key is in one
/// of `states` and younger than `period` (any age when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Uniqueness {
    /// The key (stored as its sha256): the caller's, or [`Uniqueness::job_key`].
    pub key: String,
    pub period: Option<Duration>,
    pub states: Vec<JobStatus>,
}

impl Uniqueness {
    /// The states a unique job is looked for in when none are given: the
    /// ones that have not ended.
    pub const LIVE: [JobStatus; 4] = [
        JobStatus::Scheduled,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
    ];

    /// A caller's key.
    pub fn key(key: &str) -> String {
        format!("key\n{key}")
    }

    /// The key of a job when the caller gives none: its kind, device and
    /// parameters (objects with their keys sorted, so the order a client
    /// wrote them in does not matter).
    pub fn job_key(kind: JobKind, device_id: Option<Uuid>, params: &Value) -> String {
        let device = device_id.map(|d| d.to_string()).unwrap_or_default();
        let mut out = format!("job\n{kind}\n{device}\n");
        canonical(params, &mut out);
        out
    }
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (at, key) in keys.into_iter().enumerate() {
                if at > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

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
    /// A deferred job's record is due at its `run_at` instead.
    pub relay_after: Duration,
    /// The trace of the request or schedule that enqueued it, carried in its
    /// envelope to the worker.
    pub trace: Option<TraceContext>,
    /// A job not started by then is not started at all (it ends
    /// `cancelled`); shown as the job's `expires_at`.
    pub deadline: Option<DateTime<Utc>>,
    pub options: JobOptions,
    /// The workflow it is a step of.
    pub step: Option<WorkflowStep>,
}

/// A job's place in its workflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkflowStep {
    pub workflow_id: Uuid,
    /// 0-based, in the order given.
    pub index: i32,
    /// It waits for other steps: written `waiting`, its record held back
    /// until a step before it releases it.
    pub waits: bool,
}

impl NewJob {
    /// `waiting` for a step that waits, `scheduled` for a deferred job,
    /// else `queued`.
    pub fn status(&self) -> JobStatus {
        if self.step.is_some_and(|s| s.waits) {
            JobStatus::Waiting
        } else if self.options.run_at.is_some() {
            JobStatus::Scheduled
        } else {
            JobStatus::Queued
        }
    }

    pub fn queue(&self) -> &str {
        self.options.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    fn max_attempts(&self) -> i32 {
        self.options
            .max_attempts
            .unwrap_or_else(|| self.kind.max_attempts())
    }

    fn envelope(&self, id: Uuid, tx: &TenantTx) -> TaskEnvelope {
        let mut envelope = TaskEnvelope::new(id, self.kind.as_str(), tx.tenant_id(), tx.user_id());
        envelope.trace = self.trace.clone();
        envelope.deadline = self.deadline;
        envelope.queue = self.queue().to_owned();
        envelope.priority = self.options.priority;
        envelope
    }
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
    /// A unique submission found this live job with its key: nothing new.
    Duplicate(Job),
    /// The schedule already has a job for this slot (another scheduler fired it).
    SlotTaken,
}

impl Enqueued {
    /// Whether the submission is answered 202 (a new job, or the one its
    /// idempotency key already made): the answers whose audit row is
    /// written with the job.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Enqueued::Created { .. } | Enqueued::Existing(_))
    }
}

/// Writes one job and its outbox record. A scheduled job is unique by its
/// slot (another scheduler may have fired it), an api job by its
/// idempotency key.
pub async fn enqueue(tx: &mut TenantTx, new: NewJob) -> Result<Enqueued, DbError> {
    if new.schedule_id.is_none() {
        let mut answers = enqueue_many(tx, std::slice::from_ref(&new)).await?;
        return Ok(answers.pop().expect("one answer per job"));
    }
    let sql = format!(
        "INSERT INTO jobs (tenant_id, kind, device_id, params, max_attempts, schedule_id, \
         scheduled_for, expires_at, queue, priority, created_by) \
         VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6, $7, $8, $9, app_current_user()) \
         ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let inserted: Option<Job> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new.kind.as_str())
        .bind(new.device_id)
        .bind(&new.params)
        .bind(new.max_attempts())
        .bind(new.schedule_id)
        .bind(new.scheduled_for)
        .bind(new.deadline)
        .bind(new.queue())
        .bind(new.options.priority as i16)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(job) = inserted else {
        return Ok(Enqueued::SlotTaken);
    };
    let envelope = new.envelope(job.id, tx);
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
/// records, with one multi-row `INSERT` for the jobs and one for the
/// records, answering in the order given. A job whose idempotency key the
/// tenant already used (before, or earlier in `new`) is answered with the
/// job that holds it. Uniqueness is not looked at here: see
/// [`enqueue_unique`].
pub async fn enqueue_many(tx: &mut TenantTx, new: &[NewJob]) -> Result<Vec<Enqueued>, DbError> {
    debug_assert!(new.iter().all(|n| n.schedule_id.is_none()));
    let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let kinds: Vec<&str> = new.iter().map(|n| n.kind.as_str()).collect();
    let devices: Vec<Option<Uuid>> = new.iter().map(|n| n.device_id).collect();
    let params: Vec<&Value> = new.iter().map(|n| &n.params).collect();
    let attempts: Vec<i32> = new.iter().map(NewJob::max_attempts).collect();
    let keys: Vec<Option<&str>> = new.iter().map(|n| n.idempotency_key.as_deref()).collect();
    let statuses: Vec<&str> = new.iter().map(|n| n.status().as_str()).collect();
    let run_at: Vec<Option<DateTime<Utc>>> = new.iter().map(|n| n.options.run_at).collect();
    let expires: Vec<Option<DateTime<Utc>>> = new.iter().map(|n| n.deadline).collect();
    let timeouts: Vec<Option<i32>> = new.iter().map(|n| n.options.timeout_seconds).collect();
    let unique: Vec<Option<&str>> = new
        .iter()
        .map(|n| n.options.unique.as_ref().map(|u| u.key.as_str()))
        .collect();
    let queues: Vec<&str> = new.iter().map(NewJob::queue).collect();
    let priorities: Vec<i16> = new.iter().map(|n| n.options.priority as i16).collect();
    let workflows: Vec<Option<Uuid>> = new.iter().map(|n| n.step.map(|s| s.workflow_id)).collect();
    let steps: Vec<Option<i32>> = new.iter().map(|n| n.step.map(|s| s.index)).collect();
    let sql = format!(
        "INSERT INTO jobs (id, tenant_id, kind, device_id, params, max_attempts, idempotency_key, \
           status, run_at, expires_at, timeout_seconds, unique_key, queue, priority, workflow_id, \
           workflow_step, created_by) \
         SELECT t.id, app_current_tenant(), t.kind, t.device_id, t.params, t.max_attempts, t.key, \
           t.status, t.run_at, t.expires_at, t.timeout, \
           CASE WHEN t.ukey IS NOT NULL THEN encode(sha256(convert_to(t.ukey, 'UTF8')), 'hex') END, \
           t.queue, t.priority, t.workflow_id, t.step, app_current_user() \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::int[], $6::text[], \
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::int[], $11::text[], \
                     $12::text[], $13::int2[], $14::uuid[], $15::int[]) \
           WITH ORDINALITY AS t(id, kind, device_id, params, max_attempts, key, status, run_at, \
                                expires_at, timeout, ukey, queue, priority, workflow_id, step, n) \
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
        .bind(&statuses)
        .bind(&run_at)
        .bind(&expires)
        .bind(&timeouts)
        .bind(&unique)
        .bind(&queues)
        .bind(&priorities)
        .bind(&workflows)
        .bind(&steps)
        .fetch_all(&mut **tx)
        .await?;
    let mut created: HashMap<Uuid, Job> = inserted.into_iter().map(|j| (j.id, j)).collect();
    // The records of the new jobs, in one statement; a deferred job's is due
    // at its run_at.
    let mut envelopes = Vec::with_capacity(created.len());
    for (at, n) in new.iter().enumerate() {
        if created.contains_key(&ids[at]) {
            envelopes.push((at, n.envelope(ids[at], tx)));
        }
    }
    let job_ids: Vec<Uuid> = envelopes.iter().map(|(at, _)| ids[*at]).collect();
    let payloads: Vec<Value> = envelopes.iter().map(|(_, e)| e.to_json()).collect();
    let relay_after: Vec<f64> = envelopes
        .iter()
        .map(|(at, _)| new[*at].relay_after.as_secs_f64())
        .collect();
    let due: Vec<Option<DateTime<Utc>>> = envelopes
        .iter()
        .map(|(at, _)| new[*at].options.run_at)
        .collect();
    let held: Vec<bool> = envelopes
        .iter()
        .map(|(at, _)| new[*at].status() == JobStatus::Waiting)
        .collect();
    // A waiting step's record is held back (due at infinity) until the step
    // before it releases it.
    let records: Vec<(i64, Uuid)> = sqlx::query_as(
        "INSERT INTO job_outbox (tenant_id, job_id, payload, available_at) \
         SELECT app_current_tenant(), t.job_id, t.payload, \
           CASE WHEN t.held THEN 'infinity'::timestamptz \
                ELSE coalesce(t.due, now() + make_interval(secs => t.after)) END \
         FROM unnest($1::uuid[], $2::jsonb[], $3::float8[], $4::timestamptz[], $5::bool[]) \
           AS t(job_id, payload, after, due, held) \
         RETURNING id, job_id",
    )
    .bind(&job_ids)
    .bind(&payloads)
    .bind(&relay_after)
    .bind(&due)
    .bind(&held)
    .fetch_all(&mut **tx)
    .await?;
    let outbox: HashMap<Uuid, i64> = records.into_iter().map(|(id, job)| (job, id)).collect();
    let mut envelopes: HashMap<usize, TaskEnvelope> = envelopes.into_iter().collect();
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

/// Writes a unique job (any other as [`enqueue_many`] does) unless a job
/// with its key is in one of the given
/// states and within the period: then that job is the answer
/// ([`Enqueued::Duplicate`]). A transaction-scoped advisory lock on the
/// tenant and key makes concurrent submissions of the same key wait for
/// each other: the second one looks after the first committed (each
/// statement sees what committed before it), so it finds the first's job.
pub async fn enqueue_unique(tx: &mut TenantTx, new: NewJob) -> Result<Enqueued, DbError> {
    let Some(unique) = new.options.unique.clone() else {
        let mut answers = enqueue_many(tx, std::slice::from_ref(&new)).await?;
        return Ok(answers.pop().expect("one answer per job"));
    };
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(app_current_tenant()::text || $1, 23))",
    )
    .bind(&unique.key)
    .execute(&mut **tx)
    .await?;
    let states: Vec<&str> = unique.states.iter().map(|s| s.as_str()).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM jobs \
         WHERE tenant_id = app_current_tenant() \
           AND unique_key = encode(sha256(convert_to($1, 'UTF8')), 'hex') \
           AND status = ANY($2) \
           AND ($3::float8 IS NULL OR created_at > now() - make_interval(secs => $3)) \
         ORDER BY created_at DESC LIMIT 1"
    );
    let live: Option<Job> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&unique.key)
        .bind(&states)
        .bind(unique.period.map(|p| p.as_secs_f64()))
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(job) = live {
        return Ok(Enqueued::Duplicate(job));
    }
    let mut answers = enqueue_many(tx, std::slice::from_ref(&new)).await?;
    Ok(answers.pop().expect("one answer per job"))
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

#[cfg(test)]
mod tests {
    use super::Uniqueness;
    use crate::JobKind;
    use serde_json::json;

    #[test]
    fn a_job_key_does_not_depend_on_the_order_of_its_params() {
        let a = json!({"oids": ["1.3", "1.4"], "b": {"y": 1, "x": [true, null]}});
        let b = json!({"b": {"x": [true, null], "y": 1}, "oids": ["1.3", "1.4"]});
        assert_eq!(
            Uniqueness::job_key(JobKind::Noop, None, &a),
            Uniqueness::job_key(JobKind::Noop, None, &b)
        );
        let other = json!({"oids": ["1.4", "1.3"], "b": {"y": 1, "x": [true, null]}});
        assert_ne!(
            Uniqueness::job_key(JobKind::Noop, None, &a),
            Uniqueness::job_key(JobKind::Noop, None, &other)
        );
        assert_ne!(
            Uniqueness::job_key(JobKind::Noop, None, &a),
            Uniqueness::job_key(JobKind::EmailSend, None, &a)
        );
        assert_ne!(
            Uniqueness::key("x"),
            Uniqueness::job_key(JobKind::Noop, None, &json!({}))
        );
    }
}
