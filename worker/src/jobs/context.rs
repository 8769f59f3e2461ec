//! What a job handler gets ([`JobContext`]) and how an attempt ends badly
//! ([`JobError`]).

use std::fmt::Display;

use ferro_db::{Db, DbError, TenantCtx};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SmtpConfig;
use crate::events::Events;
use crate::recorder::Recorder;

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

impl JobError {
    /// A failure worth another attempt, described by `err`.
    pub fn transient(err: impl Display) -> Self {
        JobError::Transient(err.to_string())
    }

    /// A failure another attempt would repeat, described by `err`.
    pub fn permanent(err: impl Display) -> Self {
        JobError::Permanent(err.to_string())
    }
}

/// A database error fails the attempt: for another try when the database
/// was away, busy or broke the transaction off (a serialization failure, a
/// deadlock), for good when it refused what the job asked (a value it cannot
/// store, a constraint, a policy, a missing row), since asking again would
/// be refused again.
impl From<DbError> for JobError {
    fn from(err: DbError) -> Self {
        if worth_retrying(&err) {
            JobError::transient(&err)
        } else {
            JobError::permanent(&err)
        }
    }
}

fn worth_retrying(err: &DbError) -> bool {
    if err.is_transient() {
        return true;
    }
    match err {
        DbError::Other(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            // connection exception, transaction rollback, insufficient
            // resources, operator intervention, system error
            ["08", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        DbError::Other(sqlx::Error::Protocol(_)) => true,
        _ => false,
    }
}

/// What a handler may use.
pub struct JobContext {
    pub db: Db,
    pub job_id: Uuid,
    pub ctx: TenantCtx,
    pub attempt: i32,
    pub device_id: Option<Uuid>,
    pub cancel: CancellationToken,
    /// Where its progress is recorded.
    pub recorder: Recorder,
    pub events: Option<Events>,
    /// The session store, for `sessions.cleanup`.
    pub sessions: Option<ferro_auth::sessions::SessionStore>,
    /// Where `email.send` sends.
    pub smtp: Option<SmtpConfig>,
    /// What `jobs.prune` keeps.
    pub retention: ferro_tasks::retention::JobRetention,
    /// The workflow it is a step of, and which step.
    pub workflow: Option<(Uuid, i32)>,
    /// Uploaded files (`mib.compile` reads them).
    pub files: ferro_files::Storage,
}

impl JobContext {
    /// The results of the steps this workflow step waited for, in step
    /// order (none for a job outside a workflow).
    pub async fn upstream(&self) -> Result<Vec<serde_json::Value>, JobError> {
        let Some((workflow, step)) = self.workflow else {
            return Ok(Vec::new());
        };
        let mut tx = self.db.begin(self.ctx).await?;
        let results = ferro_tasks::workflows::upstream(&mut tx, workflow, step).await?;
        tx.end_read_only();
        Ok(results)
    }

    /// Records progress (0-100); failures to record are only logged.
    pub async fn progress(&self, percent: u8) {
        match self.recorder.progress(self.ctx, self.job_id, percent).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_retried_only_when_asking_again_can_help() {
        let transient = DbError::Unavailable(sqlx::Error::PoolTimedOut);
        assert!(matches!(JobError::from(transient), JobError::Transient(_)));
        let refused = DbError::InvalidValue {
            message: "value too long".into(),
        };
        assert!(matches!(JobError::from(refused), JobError::Permanent(_)));
        assert!(matches!(
            JobError::from(DbError::NotFound),
            JobError::Permanent(_)
        ));
        let protocol = DbError::Other(sqlx::Error::Protocol("unexpected message".into()));
        assert!(matches!(JobError::from(protocol), JobError::Transient(_)));
    }
}
