//! Writes coalesced into few transactions.
//!
//! Many tasks each ask for a small write and wait for its answer. A
//! [`Coalescer`] takes the requests that arrive while earlier batches are in
//! the database together, and [`by_tenant`] runs such a batch as one
//! transaction per tenant and user: a busy service pays one commit for many
//! writes, while an idle one still answers a single request at once (a batch
//! of one). If a group's transaction fails, each of its requests is tried
//! again alone, so one bad request cannot fail its neighbours.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{DbError, TenantCtx};

/// Hands requests to a background task that runs them in batches. Clones
/// share the task.
pub struct Coalescer<Req, Resp> {
    sender: mpsc::UnboundedSender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// Starts the batching task on the current runtime. `run` answers a
    /// batch of at most `max_batch` requests with one response per request,
    /// in order; at most `in_flight` batches run at once. `what` names the
    /// batches in the logs (`debug`: each batch's size and time).
    pub fn spawn<F, Fut>(what: &'static str, max_batch: usize, in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<(Req, oneshot::Sender<Resp>)>();
        let run = Arc::new(run);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(in_flight.max(1)));
            let mut taken = Vec::with_capacity(max_batch);
            loop {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                if receiver.recv_many(&mut taken, max_batch.max(1)).await == 0 {
                    return;
                }
                let batch = std::mem::replace(&mut taken, Vec::with_capacity(max_batch));
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

    /// Runs `request` in the next batch; `None` if the batching task died
    /// (a panic).
    async fn call(&self, request: Req) -> Option<Resp> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((request, reply)).ok()?;
        answer.await.ok()
    }
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<Req: Send + 'static, T: Send + 'static> Coalescer<Req, Result<T, DbError>> {
    /// Runs `request` in the next batch and returns its answer. A batch lost
    /// to a panic of its task answers as if the database had gone away.
    pub async fn record(&self, request: Req) -> Result<T, DbError> {
        self.call(request)
            .await
            .unwrap_or(Err(DbError::Unavailable(sqlx::Error::WorkerCrashed)))
    }
}

/// Runs `group` once per tenant and user among `requests` (grouped by
/// `ctx`, each group in the order its requests came), which answers one
/// value per request of the group, in order. If a group of several fails,
/// each of its requests is run again alone. The answers come back in the
/// order of `requests`.
pub async fn by_tenant<'a, R, A, F, Fut>(
    requests: &'a [R],
    ctx: impl Fn(&R) -> TenantCtx,
    group: F,
) -> Vec<Result<A, DbError>>
where
    F: Fn(TenantCtx, Vec<&'a R>) -> Fut,
    Fut: Future<Output = Result<Vec<A>, DbError>>,
{
    let mut groups: Vec<(TenantCtx, Vec<usize>)> = Vec::new();
    let mut index: HashMap<TenantCtx, usize> = HashMap::new();
    for (i, request) in requests.iter().enumerate() {
        let ctx = ctx(request);
        let at = *index.entry(ctx).or_insert_with(|| {
            groups.push((ctx, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(i);
    }
    let mut answers: Vec<Option<Result<A, DbError>>> = requests.iter().map(|_| None).collect();
    for (ctx, members) in groups {
        let together = members.iter().map(|&i| &requests[i]).collect();
        match group(ctx, together).await {
            Ok(answered) => {
                debug_assert_eq!(answered.len(), members.len());
                for (&i, answer) in members.iter().zip(answered) {
                    answers[i] = Some(Ok(answer));
                }
            }
            Err(err) if members.len() > 1 => {
                tracing::warn!(error = %err, requests = members.len(), "batch failed; recording one at a time");
                for &i in &members {
                    let alone = group(ctx, vec![&requests[i]]).await;
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
