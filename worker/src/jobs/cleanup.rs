//! `sessions.cleanup`.

use ferro_tasks::kinds::SessionsCleanupParams;
use serde_json::{Value, json};

use super::context::{JobContext, JobError};

/// Platform maintenance: forgets expired session ids in Redis and deletes log
/// rows past retention (default 90 days) in every tenant. Only platform
/// administrators (and the scheduler) can submit it.
pub async fn run(p: SessionsCleanupParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let days = p.retention_days.unwrap_or(90) as i32;
    let (audit, login) = job.db.purge_logs(days).await?;
    job.progress(50).await;
    let sessions = match &job.sessions {
        Some(store) => store.cleanup_expired().await.map_err(JobError::transient)?,
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
