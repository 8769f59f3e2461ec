//! While a job runs: renew its lease and watch for a cancel request.

use std::time::Duration;

use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why the watcher signalled a running job to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Cancellation was requested.
    Cancelled,
    /// The job is no longer this worker's: its lease ran out and another
    /// worker claimed it.
    Lost,
}

/// Every half second, looks whether the job's cancellation was requested,
/// and every third of `lease` renews the lease; cancels `cancel` and returns
/// why when the job must stop. Runs until then (the caller aborts it when
/// the job ends).
pub async fn watch(
    db: Db,
    ctx: TenantCtx,
    job_id: Uuid,
    worker_id: String,
    lease: Duration,
    cancel: CancellationToken,
) -> Stop {
    let tick = Duration::from_millis(500);
    let mut since_renewal = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        since_renewal += tick;
        let renew = since_renewal >= lease / 3;
        let checked = async {
            let mut tx = db.begin(ctx).await?;
            let cancelled = jobs::cancel_requested(&mut tx, job_id).await?;
            let ours = if renew {
                jobs::renew_lease(&mut tx, job_id, &worker_id, lease).await?
            } else {
                true
            };
            tx.commit().await?;
            Ok::<_, DbError>((cancelled, ours))
        }
        .await;
        match checked {
            Ok((cancelled, ours)) => {
                if renew {
                    since_renewal = Duration::ZERO;
                }
                if cancelled || !ours {
                    cancel.cancel();
                    return if ours { Stop::Cancelled } else { Stop::Lost };
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not check on the running job"),
        }
    }
}
