//! Claims and outcomes coalesced into few transactions.
//!
//! Each running job asks for its claim and, later, for its outcome to be
//! recorded, and waits for the answer. Requests that arrive while earlier
//! ones are in the database are taken together: one transaction per tenant
//! and user, with one statement for all of them, so a busy worker
//! pays one commit for many jobs while an idle one still answers a single job
//! at once (a batch of one). If a batch's transaction fails, each of its
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
/// Batches of one kind in the database at once.
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

struct ClaimRequest {
    ctx: TenantCtx,
    job_id: Uuid,
}

struct FinishRequest {
    ctx: TenantCtx,
    end: Finish,
}

/// The worker's batched access to its jobs' rows.
#[derive(Clone)]
pub struct Recorder {
    claims: Arc<Coalescer<ClaimRequest, ClaimAnswer>>,
    finishes: Arc<Coalescer<FinishRequest, Result<Option<JobState>, DbError>>>,
}

impl Recorder {
    pub fn new(db: Db, worker_id: String, lease: Duration) -> Self {
        let claim_db = db.clone();
        let worker_id = Arc::new(worker_id);
        let claims = Coalescer::spawn("claims", move |requests| {
            let (db, worker_id) = (claim_db.clone(), worker_id.clone());
            async move { claim_batch(&db, &worker_id, lease, requests).await }
        });
        let finishes = Coalescer::spawn("outcomes", move |requests| {
            let db = db.clone();
            async move { finish_batch(&db, requests).await }
        });
        Self {
            claims: Arc::new(claims),
            finishes: Arc::new(finishes),
        }
    }

    /// Claims the job for one attempt (the guarded UPDATE of [`jobs::claim_many`]).
    pub async fn claim(&self, ctx: TenantCtx, job_id: Uuid) -> ClaimAnswer {
        self.claims
            .call(ClaimRequest { ctx, job_id })
            .await
            .unwrap_or_else(|| Err(lost()))
    }

    /// Ends the job and records its results ([`jobs::finish_many`]); its
    /// final state, or `None` if it had already ended. Committed when this
    /// returns.
    pub async fn finish(&self, ctx: TenantCtx, end: Finish) -> Result<Option<JobState>, DbError> {
        self.finishes
            .call(FinishRequest { ctx, end })
            .await
            .unwrap_or_else(|| Err(lost()))
    }
}

fn lost() -> DbError {
    // The batch task panicked: as if the database had gone away.
    DbError::Unavailable(sqlx::Error::WorkerCrashed)
}

/// Positions of the requests, grouped by who they act for.
fn by_ctx<T>(requests: &[T], ctx: impl Fn(&T) -> TenantCtx) -> Vec<(TenantCtx, Vec<usize>)> {
    let mut groups: Vec<(TenantCtx, Vec<usize>)> = Vec::new();
    let mut index: HashMap<TenantCtx, usize> = HashMap::new();
    for (i, request) in requests.iter().enumerate() {
        let ctx = ctx(request);
        let group = *index.entry(ctx).or_insert_with(|| {
            groups.push((ctx, Vec::new()));
            groups.len() - 1
        });
        groups[group].1.push(i);
    }
    groups
}

/// Runs `run` once per tenant group with the group's requests (it answers
/// one per request, in order). If a group of several fails, each of its
/// requests is run again alone, so one bad job cannot fail its neighbours.
async fn in_groups<'a, R, A, F, Fut>(
    what: &'static str,
    requests: &'a [R],
    ctx: fn(&R) -> TenantCtx,
    run: F,
) -> Vec<Result<A, DbError>>
where
    F: Fn(TenantCtx, Vec<&'a R>) -> Fut,
    Fut: Future<Output = Result<Vec<A>, DbError>>,
{
    let mut answers: Vec<Option<Result<A, DbError>>> = requests.iter().map(|_| None).collect();
    for (ctx, members) in by_ctx(requests, ctx) {
        let group = members.iter().map(|&i| &requests[i]).collect();
        match run(ctx, group).await {
            Ok(group) => {
                for (&i, answer) in members.iter().zip(group) {
                    answers[i] = Some(Ok(answer));
                }
            }
            Err(err) if members.len() > 1 => {
                tracing::warn!(error = %err, jobs = members.len(), what, "batch failed; recording one job at a time");
                for &i in &members {
                    let alone = run(ctx, vec![&requests[i]]).await;
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

async fn claim_batch(
    db: &Db,
    worker_id: &str,
    lease: Duration,
    requests: Vec<ClaimRequest>,
) -> Vec<ClaimAnswer> {
    in_groups(
        "claims",
        &requests,
        |r| r.ctx,
        |ctx, group| {
            let ids: Vec<Uuid> = group.iter().map(|r| r.job_id).collect();
            async move { claim_group(db, ctx, &ids, worker_id, lease).await }
        },
    )
    .await
}

/// One transaction: the guarded claim of every job at once; those it did not
/// take (and a second request for the same job) are looked at one by one.
async fn claim_group(
    db: &Db,
    ctx: TenantCtx,
    ids: &[Uuid],
    worker_id: &str,
    lease: Duration,
) -> Result<Vec<Result<Claimed, NotClaimed>>, DbError> {
    let mut tx = db.begin(ctx).await?;
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut claimed: HashMap<Uuid, Claimed> = jobs::claim_many(&mut tx, &unique, worker_id, lease)
        .await?
        .into_iter()
        .collect();
    let mut answers = Vec::with_capacity(ids.len());
    for id in ids {
        answers.push(match claimed.remove(id) {
            Some(c) => Ok(c),
            None => Err(jobs::why_not_claimed(&mut tx, *id).await?),
        });
    }
    tx.commit().await?;
    Ok(answers)
}

async fn finish_batch(
    db: &Db,
    requests: Vec<FinishRequest>,
) -> Vec<Result<Option<JobState>, DbError>> {
    in_groups(
        "outcomes",
        &requests,
        |r| r.ctx,
        |ctx, group| {
            let ends: Vec<&Finish> = group.iter().map(|r| &r.end).collect();
            async move { finish_group(db, ctx, &ends).await }
        },
    )
    .await
}

/// One transaction: every outcome at once, each job once and in id order
/// (the order rows are locked in). A second outcome for the same job (it
/// cannot be, short of a bug) finds the job ended, as it would alone.
async fn finish_group(
    db: &Db,
    ctx: TenantCtx,
    ends: &[&Finish],
) -> Result<Vec<Option<JobState>>, DbError> {
    let mut unique = ends.to_vec();
    unique.sort_by_key(|e| e.id);
    unique.dedup_by_key(|e| e.id);
    let mut tx = db.begin(ctx).await?;
    let states = jobs::finish_many(&mut tx, &unique).await?;
    tx.commit().await?;
    let mut states: HashMap<Uuid, JobState> = states.into_iter().map(|s| (s.id, s)).collect();
    Ok(ends.iter().map(|e| states.remove(&e.id)).collect())
}
