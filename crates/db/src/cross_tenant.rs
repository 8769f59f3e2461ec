//! The narrow paths across tenants. Each method calls one SECURITY DEFINER
//! function from the migrations and returns only what its caller needs; none
//! takes SQL or a table name. See ARCHITECTURE.md ("Crossing tenants").

use std::net::IpAddr;

use uuid::Uuid;

use crate::{Db, DbError};

/// What login needs to know about a user, found by name in any tenant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginUser {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub is_active: bool,
    pub is_platform_admin: bool,
    pub home_tenant_id: Uuid,
}

/// A tenant a user may enter: an active membership, or any active tenant for
/// a platform administrator (`is_member` false then).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserTenant {
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    pub is_member: bool,
}

/// Outcome of a login attempt, as stored in `login_logs.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    Failure,
    Throttled,
}

impl LoginOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
            LoginOutcome::Throttled => "throttled",
        }
    }
}

/// One row of the login log.
#[derive(Debug, Clone)]
pub struct LoginRecord<'a> {
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub username: &'a str,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub outcome: LoginOutcome,
    pub reason: Option<&'a str>,
}

impl Db {
    /// Login: the user with this name (case-insensitive), in any tenant.
    pub async fn lookup_login_user(&self, username: &str) -> Result<Option<LoginUser>, DbError> {
        // A name no user can have matches none, even where PostgreSQL's
        // case folding would make it equal to one (`lower('İ')` is `i`).
        if !ferro_config::valid_username(username) {
            return Ok(None);
        }
        sqlx::query_as::<_, LoginUser>("SELECT * FROM auth_lookup_user($1)")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Login and switch-tenant: the tenants this user may enter.
    pub async fn user_tenants(&self, user_id: Uuid) -> Result<Vec<UserTenant>, DbError> {
        sqlx::query_as::<_, UserTenant>("SELECT * FROM auth_user_tenants($1)")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Writes a login-log row (before any tenant is bound).
    pub async fn record_login(&self, record: &LoginRecord<'_>) -> Result<(), DbError> {
        sqlx::query("SELECT auth_record_login($1, $2, $3, $4, $5, $6, $7)")
            .bind(record.tenant_id)
            .bind(record.user_id)
            .bind(record.username)
            .bind(record.ip)
            .bind(record.user_agent)
            .bind(record.outcome.as_str())
            .bind(record.reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// An outbox row claimed for publishing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub payload: serde_json::Value,
}

impl Db {
    /// Relay: claims up to `limit` due, unpublished outbox rows of every
    /// tenant; they become due again after `lease` unless marked published.
    pub async fn outbox_claim(
        &self,
        limit: i32,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxRow>, DbError> {
        sqlx::query_as::<_, OutboxRow>("SELECT * FROM outbox_claim($1, $2)")
            .bind(limit)
            .bind(lease.as_secs().clamp(1, 3600) as i32)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Relay: these rows reached the broker; each is checked after
    /// `check_after` ([`Db::outbox_recheck`]).
    pub async fn outbox_mark_published(
        &self,
        ids: &[i64],
        check_after: std::time::Duration,
    ) -> Result<i32, DbError> {
        sqlx::query_scalar("SELECT outbox_mark_published($1, $2)")
            .bind(ids)
            .bind(check_after.as_secs_f64())
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Relay: checks up to `limit` published records whose check is due
    /// (migration `redeliver_lost_jobs`): a job that has still not started
    /// from its record is published again when `broker_idle` (no message
    /// waits in the jobs queue) or ten `period`s after its publish, and
    /// checked again after `period` otherwise. Returns how many records are
    /// due for publishing again.
    pub async fn outbox_recheck(
        &self,
        limit: i32,
        broker_idle: bool,
        period: std::time::Duration,
    ) -> Result<i32, DbError> {
        sqlx::query_scalar("SELECT outbox_recheck($1, $2, $3)")
            .bind(limit)
            .bind(broker_idle)
            .bind(period.as_secs_f64())
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Relay: why this row could not be published (it stays pending).
    pub async fn outbox_mark_failed(&self, id: i64, error: &str) -> Result<(), DbError> {
        sqlx::query("SELECT outbox_mark_failed($1, $2)")
            .bind(id)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Db {
    /// Maintenance (`sessions.cleanup`): deletes audit and login log rows
    /// older than `retention_days` (at least 7) in every tenant; returns how
    /// many of each.
    pub async fn purge_logs(&self, retention_days: i32) -> Result<(i64, i64), DbError> {
        sqlx::query_as("SELECT * FROM maintenance_purge_logs($1)")
            .bind(retention_days)
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Maintenance (`jobs.prune`): deletes up to `limit` jobs in the final
    /// `status` that finished more than `age` ago (at least an hour), in
    /// every tenant, with their results and outbox records; how many.
    pub async fn prune_jobs(
        &self,
        status: &str,
        age: std::time::Duration,
        limit: i32,
    ) -> Result<i32, DbError> {
        sqlx::query_scalar("SELECT maintenance_prune_jobs($1, $2, $3)")
            .bind(status)
            .bind(age.as_secs_f64())
            .bind(limit)
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Deletes up to `limit` workflows, in every tenant, whose jobs have
    /// all been pruned (and that are over an hour old); how many.
    pub async fn prune_workflows(&self, limit: i32) -> Result<i32, DbError> {
        sqlx::query_scalar("SELECT maintenance_prune_workflows($1)")
            .bind(limit)
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }
}

/// A schedule whose next run has come, in whichever tenant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueSchedule {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub next_run_at: chrono::DateTime<chrono::Utc>,
}

/// A line of `scheduler list`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduleOverview {
    pub id: Uuid,
    pub tenant_slug: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    pub enabled: bool,
    pub misfire_policy: String,
    pub next_run_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Db {
    /// Scheduler: up to `limit` enabled schedules that are due, oldest first.
    pub async fn scheduler_due(&self, limit: i32) -> Result<Vec<DueSchedule>, DbError> {
        sqlx::query_as("SELECT * FROM scheduler_due($1)")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// Scheduler: when the earliest enabled schedule comes due.
    pub async fn scheduler_next_due(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, DbError> {
        sqlx::query_scalar("SELECT scheduler_next_due()")
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// `scheduler list`: every schedule of every tenant.
    pub async fn scheduler_overview(&self) -> Result<Vec<ScheduleOverview>, DbError> {
        sqlx::query_as("SELECT * FROM scheduler_overview()")
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)
    }
}

/// An SNMP device to poll, in whichever tenant (`devices.poll`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SnmpDevice {
    pub id: Uuid,
    pub host: String,
    pub port: i32,
    pub snmp_version: Option<String>,
    pub snmp_community: Option<String>,
}

impl Db {
    /// `devices.poll`: the SNMP devices of every active tenant.
    pub async fn maintenance_snmp_devices(&self) -> Result<Vec<SnmpDevice>, DbError> {
        sqlx::query_as("SELECT * FROM maintenance_snmp_devices()")
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)
    }

    /// `devices.poll`: what polling device `id` saw (`up`: it answered).
    pub async fn maintenance_device_polled(&self, id: Uuid, up: bool) -> Result<(), DbError> {
        sqlx::query("SELECT maintenance_device_polled($1, $2)")
            .bind(id)
            .bind(up)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    }

    /// Scheduler: the id of tenant `default`, home of the built-in schedules.
    pub async fn scheduler_default_tenant(&self) -> Result<Option<Uuid>, DbError> {
        sqlx::query_scalar("SELECT scheduler_default_tenant()")
            .fetch_one(&self.pool)
            .await
            .map_err(DbError::from)
    }
}
