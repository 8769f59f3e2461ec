//! Schedules in PostgreSQL, and firing one. Every function takes a
//! tenant-bound transaction, so row-level security confines it to the
//! caller's tenant; the scheduler finds due schedules across tenants through
//! `ferro_db`'s `scheduler_*` functions and fires each inside its tenant.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::cron::{CronSpec, FirePlan, MisfirePolicy, plan};
use crate::jobs::{self, Enqueued, Job, NewJob};
use crate::{JobKind, TaskEnvelope};

/// A schedule as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub name: String,
    /// 5 fields, or 6 with seconds first.
    #[schema(example = "*/5 * * * *")]
    pub cron: String,
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    #[schema(example = "snmp.get")]
    pub kind: String,
    #[schema(required = true)]
    pub device_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub params: Value,
    pub enabled: bool,
    /// `fire_once` (after downtime, one job for what was missed) or `skip`.
    pub misfire_policy: String,
    /// `api`, or `config` for the built-ins from the scheduler's file (read-only).
    pub source: String,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub last_run_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, cron, timezone, kind, device_id, params, enabled, misfire_policy, \
    source, last_run_at, next_run_at, created_at, updated_at";

/// A schedule's settings, already validated (kind, params, device, cron, zone).
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: JobKind,
    pub device_id: Option<Uuid>,
    pub params: Value,
    pub enabled: bool,
    pub misfire_policy: MisfirePolicy,
}

impl ScheduleSpec {
    /// When it fires next, counted from `now`: `None` when disabled.
    fn next_run_at(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DbError> {
        if !self.enabled {
            return Ok(None);
        }
        let spec =
            CronSpec::parse(&self.cron, &self.timezone).map_err(|e| DbError::InvalidValue {
                message: format!("{}: {}", e[0].0, e[0].1),
            })?;
        Ok(spec.next_after(now))
    }
}

pub async fn create(
    tx: &mut TenantTx,
    spec: &ScheduleSpec,
    source: &str,
) -> Result<Schedule, DbError> {
    let next = spec.next_run_at(Utc::now())?;
    let sql = format!(
        "INSERT INTO schedules (tenant_id, name, cron, timezone, kind, device_id, params, enabled, \
         misfire_policy, source, next_run_at, created_by) \
         VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, app_current_user()) \
         RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(spec.name.trim())
        .bind(&spec.cron)
        .bind(&spec.timezone)
        .bind(spec.kind.as_str())
        .bind(spec.device_id)
        .bind(&spec.params)
        .bind(spec.enabled)
        .bind(spec.misfire_policy.as_str())
        .bind(source)
        .bind(next)
        .fetch_one(&mut **tx)
        .await?)
}

/// Replaces the schedule's settings; `next_run_at` is computed afresh, so a
/// change takes effect at the scheduler's next look (within a second).
pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    spec: &ScheduleSpec,
) -> Result<Option<Schedule>, DbError> {
    let next = spec.next_run_at(Utc::now())?;
    let sql = format!(
        "UPDATE schedules SET name = $2, cron = $3, timezone = $4, kind = $5, device_id = $6, \
         params = $7, enabled = $8, misfire_policy = $9, next_run_at = $10, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(spec.name.trim())
        .bind(&spec.cron)
        .bind(&spec.timezone)
        .bind(spec.kind.as_str())
        .bind(spec.device_id)
        .bind(&spec.params)
        .bind(spec.enabled)
        .bind(spec.misfire_policy.as_str())
        .bind(next)
        .fetch_optional(&mut **tx)
        .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Schedule>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The schedule, locked until the transaction ends: for a change computed
/// from its current values (an edit merges into them), so that two edits at
/// once are applied one after the other instead of one undoing the other.
pub async fn get_for_update(tx: &mut TenantTx, id: Uuid) -> Result<Option<Schedule>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE id = $1 FOR UPDATE");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A page of the tenant's schedules, oldest first, and the total.
pub async fn list(
    tx: &mut TenantTx,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Schedule>, i64), DbError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM schedules")
        .fetch_one(&mut **tx)
        .await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules ORDER BY created_at, id {}",
        ferro_db::limit_offset(limit, offset)
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut **tx)
        .await?;
    Ok((rows, total))
}

/// Deletes it; its past jobs stay (their `schedule_id` becomes null).
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM schedules WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// What one attempt to fire a schedule did.
#[derive(Debug)]
pub enum Fired {
    /// A job for `slot`; publish `envelope` after commit.
    Job {
        job: Box<Job>,
        envelope: Box<TaskEnvelope>,
        /// The outbox record that publishes `envelope`.
        outbox_id: i64,
        slot: DateTime<Utc>,
    },
    /// Slots were missed and, by the schedule's policy, not fired.
    Skipped,
    /// Another scheduler fired this slot first (the slot key refused a second job).
    AlreadyFired,
    /// Not due (any more), disabled, deleted, or its settings no longer valid.
    NotDue,
}

#[derive(sqlx::FromRow)]
struct Due {
    cron: String,
    timezone: String,
    kind: String,
    device_id: Option<Uuid>,
    params: Value,
    misfire_policy: String,
    next_run_at: Option<DateTime<Utc>>,
}

/// Fires schedule `id` if it is due at `now`: locks its row, plans the fire
/// ([`plan`]), writes the job and its outbox record keyed by (schedule,
/// slot), and moves `next_run_at` on, all in the caller's transaction. Two
/// schedulers firing the same schedule at once serialise on the row lock,
/// and the slot key would refuse a second job even without it. The job
/// goes to its kind's queue in `queues`.
pub async fn fire(
    tx: &mut TenantTx,
    id: Uuid,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    queues: &crate::queues::QueueTable,
) -> Result<Fired, DbError> {
    let due: Option<Due> = sqlx::query_as(
        "SELECT cron, timezone, kind, device_id, params, misfire_policy, next_run_at \
         FROM schedules WHERE id = $1 AND enabled FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(due) = due else {
        return Ok(Fired::NotDue);
    };
    let Some(next_run_at) = due.next_run_at.filter(|n| *n <= now) else {
        return Ok(Fired::NotDue);
    };
    let (Ok(spec), Some(kind)) = (
        CronSpec::parse(&due.cron, &due.timezone),
        JobKind::parse(&due.kind),
    ) else {
        // Settings that no longer parse (a kind removed by an upgrade):
        // stop the schedule rather than fail every second.
        sqlx::query("UPDATE schedules SET next_run_at = NULL, updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        return Ok(Fired::NotDue);
    };
    let policy = MisfirePolicy::parse(&due.misfire_policy).unwrap_or(MisfirePolicy::FireOnce);
    let FirePlan { fire, next, .. } = plan(&spec, next_run_at, now, grace, policy);
    let outcome = match fire {
        None => Fired::Skipped,
        Some(slot) => {
            let enqueued = jobs::enqueue(
                tx,
                NewJob {
                    kind,
                    device_id: due.device_id,
                    params: due.params,
                    idempotency_key: None,
                    schedule_id: Some(id),
                    scheduled_for: Some(slot),
                    // The leader publishes it after commit.
                    relay_after: jobs::PUBLISHED_BY_WRITER,
                    // Each firing starts a trace of its own.
                    trace: Some(crate::TraceContext::root(0)),
                    // A slot's job that has not started when the next slot
                    // is due is stale; the next one takes its place.
                    deadline: next,
                    options: jobs::JobOptions {
                        queue: Some(queues.route(kind).to_owned()),
                        ..Default::default()
                    },
                    step: None,
                },
            )
            .await?;
            match enqueued {
                Enqueued::Created {
                    job,
                    envelope,
                    outbox_id,
                } => Fired::Job {
                    job: Box::new(job),
                    envelope: Box::new(envelope),
                    outbox_id,
                    slot,
                },
                _ => Fired::AlreadyFired,
            }
        }
    };
    sqlx::query(
        "UPDATE schedules SET next_run_at = $2, \
         last_run_at = CASE WHEN $3::timestamptz IS NULL THEN last_run_at ELSE $3 END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(next)
    .bind(fire)
    .execute(&mut **tx)
    .await?;
    Ok(outcome)
}

/// What running a schedule now did.
#[derive(Debug)]
pub enum RanNow {
    /// The job, queued; the relay publishes it.
    Job(Box<Job>),
    /// No such schedule in the tenant.
    NotFound,
    /// Its kind is no longer one this build knows.
    UnknownKind(String),
}

/// Runs schedule `id` now, enabled or not, outside its cron: a job like
/// its fires (its kind, device, parameters and queue route, linked to
/// it), but for no slot, so the next fire is unchanged. `last_run_at`
/// moves to now.
pub async fn run_now(
    tx: &mut TenantTx,
    id: Uuid,
    queues: &crate::queues::QueueTable,
) -> Result<RanNow, DbError> {
    let Some(schedule) = get_for_update(tx, id).await? else {
        return Ok(RanNow::NotFound);
    };
    let Some(kind) = JobKind::parse(&schedule.kind) else {
        return Ok(RanNow::UnknownKind(schedule.kind));
    };
    let new = NewJob {
        kind,
        device_id: schedule.device_id,
        params: schedule.params,
        idempotency_key: None,
        schedule_id: Some(id),
        scheduled_for: None,
        relay_after: std::time::Duration::ZERO,
        trace: Some(crate::TraceContext::root(0)),
        deadline: None,
        options: jobs::JobOptions {
            queue: Some(queues.route(kind).to_owned()),
            ..Default::default()
        },
        step: None,
    };
    let Enqueued::Created { job, .. } = jobs::enqueue(tx, new).await? else {
        unreachable!("a job for no slot is always created")
    };
    sqlx::query("UPDATE schedules SET last_run_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(RanNow::Job(Box::new(job)))
}

/// The scheduler's configuration file: `{"schedules": [...]}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    schedules: Vec<ConfigSchedule>,
}

/// One built-in schedule of the configuration file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSchedule {
    name: String,
    cron: String,
    #[serde(default = "utc")]
    timezone: String,
    kind: String,
    #[serde(default = "empty_object")]
    params: Value,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "fire_once")]
    misfire_policy: String,
}

fn utc() -> String {
    "UTC".into()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

fn fire_once() -> String {
    "fire_once".into()
}

/// Reads and checks the configuration file's text; an error names the entry
/// and the field at fault.
pub fn parse_config(text: &str) -> Result<Vec<ScheduleSpec>, String> {
    let file: ConfigFile =
        serde_json::from_str(text).map_err(|e| format!("not a schedules file: {e}"))?;
    let mut specs = Vec::with_capacity(file.schedules.len());
    let mut names = std::collections::HashSet::new();
    for s in file.schedules {
        let at = |field: &str, message: &str| format!("schedule {:?}: {field} {message}", s.name);
        if !(1..=200).contains(&s.name.trim().chars().count()) {
            return Err(at("name", "must be 1 to 200 characters"));
        }
        if !names.insert(s.name.trim().to_owned()) {
            return Err(at("name", "appears twice"));
        }
        if let Err(errors) = CronSpec::parse(&s.cron, &s.timezone) {
            let (field, message) = &errors[0];
            return Err(at(field, message));
        }
        let kind = JobKind::parse(&s.kind).ok_or_else(|| at("kind", "is not a job kind"))?;
        if kind.device_need() != crate::kinds::DeviceNeed::None {
            return Err(at("kind", "needs a device; built-in schedules have none"));
        }
        let params = kind.validate(&s.params).map_err(|errors| {
            let e = &errors[0];
            at(&e.field, &e.message)
        })?;
        let misfire_policy = MisfirePolicy::parse(&s.misfire_policy)
            .ok_or_else(|| at("misfire_policy", "must be fire_once or skip"))?;
        specs.push(ScheduleSpec {
            name: s.name.trim().to_owned(),
            cron: s.cron.trim().to_owned(),
            timezone: s.timezone,
            kind,
            device_id: None,
            params,
            enabled: s.enabled,
            misfire_policy,
        });
    }
    Ok(specs)
}

/// What [`sync_config`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub upserted: usize,
    /// Built-ins no longer in the file, now disabled.
    pub disabled: u64,
    /// Names held by schedules made through the api, left alone.
    pub conflicts: Vec<String>,
}

/// Makes the tenant's `config` schedules match `specs` (run in tenant
/// `default`): new ones are added, changed ones updated (their next run
/// recomputed only when their timing changed), and those no longer in the
/// file disabled. Schedules made through the api are never touched.
pub async fn sync_config(tx: &mut TenantTx, specs: &[ScheduleSpec]) -> Result<SyncReport, DbError> {
    let mut report = SyncReport::default();
    let now = Utc::now();
    for spec in specs {
        let next = spec.next_run_at(now)?;
        let kept: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO schedules (tenant_id, name, cron, timezone, kind, params, enabled, \
             misfire_policy, source, next_run_at) \
             VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6, $7, 'config', $8) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET \
               next_run_at = CASE WHEN schedules.cron <> EXCLUDED.cron \
                   OR schedules.timezone <> EXCLUDED.timezone \
                   OR schedules.enabled <> EXCLUDED.enabled OR schedules.next_run_at IS NULL \
                 THEN EXCLUDED.next_run_at ELSE schedules.next_run_at END, \
               cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, kind = EXCLUDED.kind, \
               params = EXCLUDED.params, enabled = EXCLUDED.enabled, \
               misfire_policy = EXCLUDED.misfire_policy, updated_at = now() \
             WHERE schedules.source = 'config' \
             RETURNING id",
        )
        .bind(&spec.name)
        .bind(&spec.cron)
        .bind(&spec.timezone)
        .bind(spec.kind.as_str())
        .bind(&spec.params)
        .bind(spec.enabled)
        .bind(spec.misfire_policy.as_str())
        .bind(next)
        .fetch_optional(&mut **tx)
        .await?;
        match kept {
            Some(_) => report.upserted += 1,
            None => report.conflicts.push(spec.name.clone()),
        }
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    report.disabled = sqlx::query(
        "UPDATE schedules SET enabled = false, next_run_at = NULL, updated_at = now() \
         WHERE source = 'config' AND enabled AND NOT (name = ANY($1))",
    )
    .bind(&names)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(report)
}
