//! The one writer of job state in the worker: claims, progress, outcomes,
//! retries, expiries and hand-backs all go through the [`Recorder`], which
//! coalesces them ([`ferro_db::coalesce`]).
//!
//! Each running job asks for its claim and, later, for its outcome to be
//! recorded, and waits for the answer. Requests that arrive while earlier
//! ones are in the database are taken together: one transaction per tenant
//! and user, with one statement for all the outcomes and one for all the
//! claims, so a busy worker pays one commit for many jobs while an idle one
//! still answers a single job at once. If a batch's transaction fails, each
//! of its requests is tried again alone, so one bad job cannot fail its
//! neighbours.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferro_db::coalesce::{self, Coalescer};
use ferro_db::{Db, DbError, TenantCtx, TenantTx};
use ferro_tasks::TaskEnvelope;
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

/// What a job asks to have recorded.
enum Request {
    /// Claim the job for one attempt.
    Claim { ctx: TenantCtx, job_id: Uuid },
    /// End the job with its outcome.
    Finish { ctx: TenantCtx, end: Finish },
    /// Send the job to another attempt after `delay` (`envelope` is the one
    /// of the attempt that failed).
    Retry {
        ctx: TenantCtx,
        envelope: Box<TaskEnvelope>,
        error: String,
        delay: Duration,
    },
    /// End a job that was not started before its deadline.
    Expire { ctx: TenantCtx, job_id: Uuid },
    /// Record a running job's progress.
    Progress {
        ctx: TenantCtx,
        job_id: Uuid,
        percent: u8,
    },
    /// Give back a job whose run the shutdown grace cut short.
    HandBack { ctx: TenantCtx, job_id: Uuid },
}

impl Request {
    fn ctx(&self) -> TenantCtx {
        match self {
            Request::Claim { ctx, .. }
            | Request::Finish { ctx, .. }
            | Request::Retry { ctx, .. }
            | Request::Expire { ctx, .. }
            | Request::Progress { ctx, .. }
            | Request::HandBack { ctx, .. } => *ctx,
        }
    }
}

/// What was recorded for one request.
enum Recorded {
    Claim(Result<Claimed, NotClaimed>),
    /// The job's new state, or `None` if the change no longer applied (the
    /// job had ended, or was not in the state the change needs).
    State(Option<JobState>),
    /// Whether a hand-back applied.
    HandedBack(bool),
}

/// The worker's batched access to its jobs' rows. Clones share the batches.
#[derive(Clone)]
pub struct Recorder {
    batches: Coalescer<Request, Result<Recorded, DbError>>,
}

impl Recorder {
    /// A recorder writing as worker `worker_id`, whose claims hold for `lease`.
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
            _ => unreachable!("a claim is answered as a claim"),
        }
    }

    /// Ends the job and records its results ([`jobs::finish_many`]); its
    /// final state, or `None` if it had already ended. Committed when this
    /// returns.
    pub async fn finish(&self, ctx: TenantCtx, end: Finish) -> Result<Option<JobState>, DbError> {
        self.state(Request::Finish { ctx, end }).await
    }

    /// Sends the job whose attempt `envelope` failed with `error` to another
    /// attempt after `delay` ([`jobs::retry_later`]); its new state, or
    /// `None` if it was no longer running.
    pub async fn retry(
        &self,
        ctx: TenantCtx,
        envelope: TaskEnvelope,
        error: String,
        delay: Duration,
    ) -> Result<Option<JobState>, DbError> {
        let envelope = Box::new(envelope);
        self.state(Request::Retry {
            ctx,
            envelope,
            error,
            delay,
        })
        .await
    }

    /// Ends a job that was not started before its deadline ([`jobs::expire`]);
    /// its new state, or `None` if it had started or ended meanwhile.
    pub async fn expire(&self, ctx: TenantCtx, job_id: Uuid) -> Result<Option<JobState>, DbError> {
        self.state(Request::Expire { ctx, job_id }).await
    }

    /// Records a running job's progress (0-100); its new state, or `None`
    /// if it is no longer running.
    pub async fn progress(
        &self,
        ctx: TenantCtx,
        job_id: Uuid,
        percent: u8,
    ) -> Result<Option<JobState>, DbError> {
        let request = Request::Progress {
            ctx,
            job_id,
            percent,
        };
        self.state(request).await
    }

    /// Gives back a job this worker was running ([`jobs::hand_back`]): its
    /// attempt does not count. False if it was no longer this worker's.
    pub async fn hand_back(&self, ctx: TenantCtx, job_id: Uuid) -> Result<bool, DbError> {
        match self
            .batches
            .record(Request::HandBack { ctx, job_id })
            .await?
        {
            Recorded::HandedBack(given) => Ok(given),
            _ => unreachable!("a hand-back is answered as one"),
        }
    }

    async fn state(&self, request: Request) -> Result<Option<JobState>, DbError> {
        match self.batches.record(request).await? {
            Recorded::State(state) => Ok(state),
            _ => unreachable!("a change of state is answered with the state"),
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

/// One transaction for one tenant's requests, in an order that locks rows
/// the same way in every batch: first every outcome at once, each job once
/// and in id order, then the other changes of running jobs (retries, expiries,
/// progress, hand-backs), one by one in id order, and last the guarded claim
/// of every job at once; the jobs the claim did not take (and a second
/// request for the same job) are looked at one by one. A second outcome for
/// the same job (it cannot be, short of a bug) finds the job ended, as it
/// would alone.
async fn record_group(
    db: &Db,
    ctx: TenantCtx,
    group: Vec<&Request>,
    worker_id: &str,
    lease: Duration,
) -> Result<Vec<Recorded>, DbError> {
    let mut ends: Vec<&Finish> = Vec::new();
    let mut claims: Vec<Uuid> = Vec::new();
    let mut changes: Vec<(Uuid, usize)> = Vec::new();
    for (at, request) in group.iter().enumerate() {
        match request {
            Request::Finish { end, .. } => ends.push(end),
            Request::Claim { job_id, .. } => claims.push(*job_id),
            Request::Retry { envelope, .. } => changes.push((envelope.job_id, at)),
            Request::Expire { job_id, .. }
            | Request::Progress { job_id, .. }
            | Request::HandBack { job_id, .. } => changes.push((*job_id, at)),
        }
    }
    ends.sort_by_key(|e| e.id);
    ends.dedup_by_key(|e| e.id);
    claims.sort_unstable();
    claims.dedup();
    changes.sort_unstable();

    let mut tx = db.begin(ctx).await?;
    let mut ended: HashMap<Uuid, JobState> = if ends.is_empty() {
        HashMap::new()
    } else {
        let states = jobs::finish_many(&mut tx, &ends).await?;
        states.into_iter().map(|s| (s.id, s)).collect()
    };
    let mut changed: HashMap<usize, Recorded> = HashMap::with_capacity(changes.len());
    for (_, at) in changes {
        changed.insert(at, change(&mut tx, group[at], worker_id).await?);
    }
    let mut claimed: HashMap<Uuid, Claimed> = if claims.is_empty() {
        HashMap::new()
    } else {
        jobs::claim_many(&mut tx, &claims, worker_id, lease)
            .await?
            .into_iter()
            .collect()
    };
    let mut answers = Vec::with_capacity(group.len());
    for (at, request) in group.iter().enumerate() {
        answers.push(match request {
            Request::Finish { end, .. } => Recorded::State(ended.remove(&end.id)),
            Request::Claim { job_id, .. } => Recorded::Claim(match claimed.remove(job_id) {
                Some(c) => Ok(c),
                None => Err(jobs::why_not_claimed(&mut tx, *job_id).await?),
            }),
            _ => changed
                .remove(&at)
                .expect("every change was recorded above"),
        });
    }
    tx.commit().await?;
    Ok(answers)
}

/// One change of a job other than its claim or outcome.
async fn change(
    tx: &mut TenantTx,
    request: &Request,
    worker_id: &str,
) -> Result<Recorded, DbError> {
    Ok(match request {
        Request::Retry {
            envelope,
            error,
            delay,
            ..
        } => Recorded::State(jobs::retry_later(tx, envelope, error, *delay).await?),
        Request::Expire { job_id, .. } => Recorded::State(jobs::expire(tx, *job_id).await?),
        Request::Progress {
            job_id, percent, ..
        } => Recorded::State(jobs::set_progress(tx, *job_id, *percent).await?),
        Request::HandBack { job_id, .. } => {
            Recorded::HandedBack(jobs::hand_back(tx, *job_id, worker_id).await?)
        }
        Request::Claim { .. } | Request::Finish { .. } => {
            unreachable!("claims and outcomes are recorded in bulk")
        }
    })
}
