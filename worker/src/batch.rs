//! The worker's claims and outcomes, coalesced ([`ferro_db::coalesce`]).
//!
//! Each running job asks for its claim and, later, for its outcome to be
//! recorded, and waits for the answer. Requests that arrive while earlier
//! ones are in the database are taken together, claims and outcomes alike:
//! one transaction per tenant and user, with one statement for all the
//! outcomes and one for all the claims, so a busy worker pays one commit for
//! many jobs while an idle one still answers a single job at once. If a
//! batch's transaction fails, each of its requests is tried again alone, so
//! one bad job cannot fail its neighbours.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferro_db::coalesce::{self, Coalescer};
use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs::{self, Claimed, Finish, JobState, NotClaimed};
use uuid::Uuid;

/// Most requests in one batch.
const MAX_BATCH: usize = 128;
/// Batches in the database at once.
const IN_FLIGHT: usize = 2;
/// How long a batch waits for more requests while jobs arrive quickly (see
/// [`Coalescer::spawn`]); a job on an idle worker is not held up.
const LINGER: Duration = Duration::from_millis(3);

/// A claim's answer: the claimed job, or why it was not claimed.
pub type ClaimAnswer = Result<Result<Claimed, NotClaimed>, DbError>;

/// What a running job asks to have recorded.
enum Request {
    /// Claim the job for one attempt.
    Claim { ctx: TenantCtx, job_id: Uuid },
    /// End the job with its outcome.
    Finish { ctx: TenantCtx, end: Finish },
}

impl Request {
    fn ctx(&self) -> TenantCtx {
        match self {
            Request::Claim { ctx, .. } | Request::Finish { ctx, .. } => *ctx,
        }
    }
}

/// What was recorded for one request.
enum Recorded {
    Claim(Result<Claimed, NotClaimed>),
    /// The job's final state, or `None` if it had already ended.
    Finish(Option<JobState>),
}

/// The worker's batched access to its jobs' rows: the claims and the
/// outcomes that are waiting at the same time share one transaction (per
/// tenant), so a busy worker pays one commit for both.
#[derive(Clone)]
pub struct Recorder {
    batches: Coalescer<Request, Result<Recorded, DbError>>,
}

impl Recorder {
    pub fn new(db: Db, worker_id: String, lease: Duration) -> Self {
        let worker_id = Arc::new(worker_id);
        let batches = Coalescer::spawn("jobs", MAX_BATCH, IN_FLIGHT, LINGER, move |requests| {
            let (db, worker_id) = (db.clone(), worker_id.clone());
            async move { record_batch(&db, &worker_id, lease, requests).await }
        });
        Self { batches }
    }

    /// Claims the job for one attempt (the guarded UPDATE of [`jobs::claim_many`]).
    pub async fn claim(&self, ctx: TenantCtx, job_id: Uuid) -> ClaimAnswer {
        match self.batches.record(Request::Claim { ctx, job_id }).await? {
            Recorded::Claim(answer) => Ok(answer),
            Recorded::Finish(_) => unreachable!("a claim is answered as a claim"),
        }
    }

    /// Ends the job and records its results ([`jobs::finish_many`]); its
    /// final state, or `None` if it had already ended. Committed when this
    /// returns.
    pub async fn finish(&self, ctx: TenantCtx, end: Finish) -> Result<Option<JobState>, DbError> {
        match self.batches.record(Request::Finish { ctx, end }).await? {
            Recorded::Finish(state) => Ok(state),
            Recorded::Claim(_) => unreachable!("an outcome is answered as an outcome"),
        }
    }
}

/// Records the batch in one transaction per tenant group.
async fn record_batch(
    db: &Db,
    worker_id: &str,
    lease: Duration,
    requests: Vec<Request>,
) -> Vec<Result<Recorded, DbError>> {
    coalesce::by_tenant(&requests, Request::ctx, |ctx, group| {
        record_group(db, ctx, group, worker_id, lease)
    })
    .await
}

/// One transaction for one tenant's requests: first every outcome at once,
/// each job once and in id order (the order rows are locked in), then the
/// guarded claim of every job at once; the jobs the claim did not take (and a
/// second request for the same job) are looked at one by one. A second
/// outcome for the same job (it cannot be, short of a bug) finds the job
/// ended, as it would alone.
async fn record_group(
    db: &Db,
    ctx: TenantCtx,
    group: Vec<&Request>,
    worker_id: &str,
    lease: Duration,
) -> Result<Vec<Recorded>, DbError> {
    let mut ends: Vec<&Finish> = Vec::new();
    let mut claims: Vec<Uuid> = Vec::new();
    for request in &group {
        match request {
            Request::Finish { end, .. } => ends.push(end),
            Request::Claim { job_id, .. } => claims.push(*job_id),
        }
    }
    ends.sort_by_key(|e| e.id);
    ends.dedup_by_key(|e| e.id);
    claims.sort_unstable();
    claims.dedup();

    let mut tx = db.begin(ctx).await?;
    let mut ended: HashMap<Uuid, JobState> = if ends.is_empty() {
        HashMap::new()
    } else {
        let states = jobs::finish_many(&mut tx, &ends).await?;
        states.into_iter().map(|s| (s.id, s)).collect()
    };
    let mut claimed: HashMap<Uuid, Claimed> = if claims.is_empty() {
        HashMap::new()
    } else {
        jobs::claim_many(&mut tx, &claims, worker_id, lease)
            .await?
            .into_iter()
            .collect()
    };
    let mut answers = Vec::with_capacity(group.len());
    for request in &group {
        answers.push(match request {
            Request::Finish { end, .. } => Recorded::Finish(ended.remove(&end.id)),
            Request::Claim { job_id, .. } => Recorded::Claim(match claimed.remove(job_id) {
                Some(c) => Ok(c),
                None => Err(jobs::why_not_claimed(&mut tx, *job_id).await?),
            }),
        });
    }
    tx.commit().await?;
    Ok(answers)
}
