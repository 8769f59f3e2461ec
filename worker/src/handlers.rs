//! What each job kind does. A handler gets the job's context and returns its
//! result rows, or says whether its failure is worth retrying.

use std::time::Duration;

use ferro_db::{Db, TenantCtx};
use ferro_tasks::JobKind;
use ferro_tasks::kinds::{DevicesExportParams, NoopParams, SessionsCleanupParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How a job attempt ended badly.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network, timeouts, a busy peer).
    #[error("{0}")]
    Transient(String),
    /// Another attempt would fail the same way.
    #[error("{0}")]
    Permanent(String),
    #[error("cancelled")]
    Cancelled,
}

/// What a handler may use.
pub struct JobContext {
    pub db: Db,
    pub job_id: Uuid,
    pub ctx: TenantCtx,
    pub attempt: i32,
    pub device_id: Option<Uuid>,
    pub cancel: CancellationToken,
    pub events: Option<crate::Events>,
    /// The session store, for `sessions.cleanup`.
    pub sessions: Option<ferro_auth::sessions::SessionStore>,
    /// Where `email.send` sends.
    pub smtp: Option<ferro_config::SmtpConfig>,
}

impl JobContext {
    /// Records progress (0-100); failures to record are only logged.
    pub async fn progress(&self, percent: u8) {
        let result = async {
            let mut tx = self.db.begin(self.ctx).await?;
            let state = ferro_tasks::jobs::set_progress(&mut tx, self.job_id, percent).await?;
            tx.commit().await?;
            Ok::<_, ferro_db::DbError>(state)
        }
        .await;
        match result {
            Ok(Some(state)) => {
                if let Some(events) = &self.events {
                    events.publish(self.ctx.tenant_id, &state).await;
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not record progress"),
        }
    }
}

fn params<P: serde::de::DeserializeOwned>(value: &Value) -> Result<P, JobError> {
    // The api validated them; a failure here means the row was changed since.
    serde_json::from_value(value.clone())
        .map_err(|e| JobError::Permanent(format!("bad parameters: {e}")))
}

/// Runs one attempt of `kind`.
pub async fn run(
    kind: JobKind,
    params_json: &Value,
    job: &JobContext,
) -> Result<Vec<Value>, JobError> {
    match kind {
        JobKind::Noop => noop(params(params_json)?, job).await,
        JobKind::DevicesExport => devices_export(params(params_json)?, job).await,
        JobKind::DevicesPoll => Box::pin(crate::snmp::poll(params(params_json)?, job)).await,
        // Boxed: SNMP sessions make large futures.
        JobKind::SnmpGet => Box::pin(crate::snmp::get(params(params_json)?, job)).await,
        JobKind::SnmpWalk => Box::pin(crate::snmp::walk(params(params_json)?, job)).await,
        JobKind::SessionsCleanup => sessions_cleanup(params(params_json)?, job).await,
        JobKind::EmailSend => crate::email::send(params(params_json)?, job).await,
    }
}

async fn noop(p: NoopParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    if p.fail_attempts.is_some_and(|n| job.attempt <= n as i32) {
        return Err(JobError::Transient(format!(
            "noop: failing attempt {} as asked",
            job.attempt
        )));
    }
    let total = Duration::from_millis(p.sleep_ms.unwrap_or(0));
    let steps = if total.is_zero() { 0 } else { 10 };
    for step in 1..=steps {
        tokio::select! {
            _ = job.cancel.cancelled() => return Err(JobError::Cancelled),
            _ = tokio::time::sleep(total / steps) => {}
        }
        if step < steps {
            job.progress((step * 10) as u8).await;
        }
    }
    Ok(vec![json!({"slept_ms": total.as_millis() as u64})])
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: Uuid,
    name: String,
    protocol: String,
    host: String,
    port: i32,
    tags: Vec<String>,
    status: String,
}

/// Platform maintenance: forgets expired session ids in Redis and deletes log
/// rows past retention (default 90 days) in every tenant. Only platform
/// administrators (and the scheduler) can submit it.
async fn sessions_cleanup(
    p: SessionsCleanupParams,
    job: &JobContext,
) -> Result<Vec<Value>, JobError> {
    let days = p.retention_days.unwrap_or(90) as i32;
    let (audit, login) = job
        .db
        .purge_logs(days)
        .await
        .map_err(|e| JobError::Transient(e.to_string()))?;
    job.progress(50).await;
    let sessions = match &job.sessions {
        Some(store) => store
            .cleanup_expired()
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?,
        None => 0,
    };
    tracing::info!(
        audit_logs = audit,
        login_logs = login,
        sessions,
        "cleanup done"
    );
    Ok(vec![
        json!({"retention_days": days, "audit_logs_deleted": audit, "login_logs_deleted": login,
                   "session_ids_forgotten": sessions}),
    ])
}

/// CSV of the tenant's devices (SNMP settings are never exported).
async fn devices_export(p: DevicesExportParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let mut tx = job
        .db
        .begin(job.ctx)
        .await
        .map_err(|e| JobError::Transient(e.to_string()))?;
    let rows: Vec<ExportRow> = sqlx::query_as(
        "SELECT id, name, protocol, host, port, tags, status FROM devices \
         WHERE ($1::text IS NULL OR tags @> ARRAY[$1::text]) ORDER BY name, id",
    )
    .bind(&p.tag)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| JobError::Transient(e.to_string()))?;
    tx.end_read_only();
    let mut csv = String::from("id,name,protocol,host,port,tags,status\n");
    for r in &rows {
        let fields = [
            r.id.to_string(),
            r.name.clone(),
            r.protocol.clone(),
            r.host.clone(),
            r.port.to_string(),
            r.tags.join(";"),
            r.status.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push('\n');
    }
    Ok(vec![
        json!({"format": "csv", "rows": rows.len(), "csv": csv}),
    ])
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas: a
/// field starting with any character OWASP lists for CSV injection (`=`,
/// `+`, `-`, `@`, tab, carriage return) gets a leading `'`.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
    }
}
