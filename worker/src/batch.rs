//! Claims and outcomes coalesced into few transactions.
//!
//! Each running job asks for its claim and, later, for its outcome to be
//! recorded, and waits for the answer. Requests that arrive while earlier
//! ones are in the database are taken together, claims and outcomes alike:
//! one transaction per tenant and user, with one statement for all the
//! outcomes and one for all the claims, so a busy worker pays one commit for
//! many jobs while an idle one still answers a single job at once (a batch of
//! one). If a batch's transaction fails, each of its
//! requests is tried again alone, so one bad job cannot fail its neighbours.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs::{self, Claimed, Finish, JobState, NotClaimed};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Most requests in one batch.
const MAX_BATCH: usize = 128;
/// Batches in the database at once.
const IN_FLIGHT: usize = 2;

/// Hands requests to a background task that runs them in batches.
struct Coalescer<Req, Resp> {
    sender: mpsc::UnboundedSender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// `run` answers a batch with one response per request, in order;
    /// `what` names the batches in the logs.
    fn spawn<F, Fut>(what: &'static str, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<(Req, oneshot::Sender<Resp>)>();
        let run = Arc::new(run);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            loop {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let Some(first) = receiver.recv().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    let (size, started) = (requests.len(), std::time::Instant::now());
                    let answers = run(requests).await;
                    tracing::debug!(
                        what,
                        size,
                        took_us = started.elapsed().as_micros() as u64,
                        "batch recorded"
                    );
                    debug_assert_eq!(answers.len(), replies.len());
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(answer);
                    }
                    drop(permit);
                });
            }
        });
        Self { sender }
    }

    /// Runs `request` in the next batch; `None` if the batch task died
    /// (a panic), which the caller treats as a database failure.
    async fn call(&self, request: Req) -> Option<Resp> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((request, reply)).ok()?;
        answer.await.ok()
    }
}

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
    batches: Arc<Coalescer<Request, Result<Recorded, DbError>>>,
}

impl Recorder {
    pub fn new(db: Db, worker_id: String, lease: Duration) -> Self {
        let worker_id = Arc::new(worker_id);
        let batches = Coalescer::spawn("jobs", move |requests| {
            let (db, worker_id) = (db.clone(), worker_id.clone());
            async move { record_batch(&db, &worker_id, lease, requests).await }
        });
        Self {
            batches: Arc::new(batches),
        }
    }

    async fn call(&self, request: Request) -> Result<Recorded, DbError> {
        self.batches
            .call(request)
            .await
            .unwrap_or_else(|| Err(lost()))
    }

    /// Claims the job for one attempt (the guarded UPDATE of [`jobs::claim_many`]).
    pub async fn claim(&self, ctx: TenantCtx, job_id: Uuid) -> ClaimAnswer {
        match self.call(Request::Claim { ctx, job_id }).await? {
            Recorded::Claim(answer) => Ok(answer),
            Recorded::Finish(_) => unreachable!("a claim is answered as a claim"),
        }
    }

    /// Ends the job and records its results ([`jobs::finish_many`]); its
    /// final state, or `None` if it had already ended. Committed when this
    /// returns.
    pub async fn finish(&self, ctx: TenantCtx, end: Finish) -> Result<Option<JobState>, DbError> {
        match self.call(Request::Finish { ctx, end }).await? {
            Recorded::Finish(state) => Ok(state),
            Recorded::Claim(_) => unreachable!("an outcome is answered as an outcome"),
        }
    }
}

fn lost() -> DbError {
    // The batch task panicked: as if the database had gone away.
    DbError::Unavailable(sqlx::Error::WorkerCrashed)
}

/// Positions of the requests, grouped by who they act for.
fn by_ctx(requests: &[Request]) -> Vec<(TenantCtx, Vec<usize>)> {
    let mut groups: Vec<(TenantCtx, Vec<usize>)> = Vec::new();
    let mut index: HashMap<TenantCtx, usize> = HashMap::new();
    for (i, request) in requests.iter().enumerate() {
        let ctx = request.ctx();
        let group = *index.entry(ctx).or_insert_with(|| {
            groups.push((ctx, Vec::new()));
            groups.len() - 1
        });
        groups[group].1.push(i);
    }
    groups
}

/// Records the batch in one transaction per tenant group (answers one per
/// request, in order). If a group of several fails, each of its requests is
/// recorded again alone, so one bad job cannot fail its neighbours.
async fn record_batch(
    db: &Db,
    worker_id: &str,
    lease: Duration,
    requests: Vec<Request>,
) -> Vec<Result<Recorded, DbError>> {
    let mut answers: Vec<Option<Result<Recorded, DbError>>> =
        requests.iter().map(|_| None).collect();
    for (ctx, members) in by_ctx(&requests) {
        let group: Vec<&Request> = members.iter().map(|&i| &requests[i]).collect();
        match record_group(db, ctx, &group, worker_id, lease).await {
            Ok(recorded) => {
                for (&i, answer) in members.iter().zip(recorded) {
                    answers[i] = Some(Ok(answer));
                }
            }
            Err(err) if members.len() > 1 => {
                tracing::warn!(error = %err, jobs = members.len(), "batch failed; recording one job at a time");
                for &i in &members {
                    let alone = record_group(db, ctx, &[&requests[i]], worker_id, lease).await;
                    answers[i] = Some(alone.map(|mut a| a.remove(0)));
                }
            }
            Err(err) => answers[members[0]] = Some(Err(err)),
        }
    }
    answers
        .into_iter()
        .map(|a| a.expect("every request answered"))
        .collect()
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
    group: &[&Request],
    worker_id: &str,
    lease: Duration,
) -> Result<Vec<Recorded>, DbError> {
    let mut ends: Vec<&Finish> = Vec::new();
    let mut claims: Vec<Uuid> = Vec::new();
    for request in group {
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
    for request in group {
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
