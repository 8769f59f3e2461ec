//! A job as clients see it, the columns it is read from, and reading one.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

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
    /// `waiting` (a workflow step), `scheduled`, `queued`, `running`,
    /// `retrying`, `succeeded`, `failed` or `cancelled`.
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
    /// A deferred job's due time: `scheduled` until then.
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub run_at: Option<DateTime<Utc>>,
    /// Not started by then, it ends `cancelled` without running.
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// One attempt's time limit, when the job has its own.
    #[schema(required = true)]
    pub timeout_seconds: Option<i32>,
    /// The queue it waits in (see `deploy/queues.json`).
    #[schema(example = "default")]
    pub queue: String,
    /// 0 to 9, higher first within its queue.
    pub priority: i16,
    /// The workflow it is a step of.
    #[schema(required = true)]
    pub workflow_id: Option<Uuid>,
    /// The failed or cancelled job this one retries.
    #[schema(required = true)]
    pub retry_of: Option<Uuid>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
}

pub(crate) const COLUMNS: &str = "id, kind, device_id, params, status, progress, attempts, max_attempts, error, \
    schedule_id, scheduled_for, cancel_requested_at, run_at, expires_at, timeout_seconds, queue, priority, \
    workflow_id, retry_of, created_at, \
    started_at, finished_at";

/// The tenant's job with this id.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Job>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}
