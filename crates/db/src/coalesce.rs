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

use std::time::{Duration, Instant};

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
    ///
    /// With a non-zero `linger`, a batch that is not full waits that long for
    /// more requests, but only while requests are arriving quickly (at least
    /// [`BUSY_REQUESTS`] in the last [`BUSY_WINDOW`]): a busy service then
    /// pays one transaction for more requests, while a request on an idle
    /// one is still taken at once.
    pub fn spawn<F, Fut>(
        what: &'static str,
        max_batch: usize,
        in_flight: usize,
        linger: Duration,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<(Req, oneshot::Sender<Resp>)>();
        let run = Arc::new(run);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(in_flight.max(1)));
            let mut taken = Vec::with_capacity(max_batch);
            let mut pace = Pace::new();
            loop {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                if receiver.recv_many(&mut taken, max_batch.max(1)).await == 0 {
                    return;
                }
                if !linger.is_zero() && taken.len() < max_batch && pace.busy(Instant::now()) {
                    tokio::time::sleep(linger).await;
                    while taken.len() < max_batch {
                        match receiver.try_recv() {
                            Ok(request) => taken.push(request),
                            Err(_) => break,
                        }
                    }
                }
                pace.taken(Instant::now(), taken.len());
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

/// How many requests in the last [`BUSY_WINDOW`] make a service busy enough
/// to linger for more.
pub const BUSY_REQUESTS: usize = 4;
/// The window over which [`BUSY_REQUESTS`] are counted.
pub const BUSY_WINDOW: Duration = Duration::from_millis(10);

/// Counts the requests taken in the current and the previous window of
/// [`BUSY_WINDOW`].
struct Pace {
    window_start: Instant,
    this_window: usize,
    last_window: usize,
}

impl Pace {
    fn new() -> Self {
        Self {
            window_start: Instant::now(),
            this_window: 0,
            last_window: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let gone = now.saturating_duration_since(self.window_start);
        if gone >= BUSY_WINDOW {
            // The previous window only counts if it ended just now.
            self.last_window = if gone < 2 * BUSY_WINDOW {
                self.this_window
            } else {
                0
            };
            self.this_window = 0;
            self.window_start = now;
        }
    }

    /// True if at least [`BUSY_REQUESTS`] were taken in the current window
    /// or the one before it.
    fn busy(&mut self, now: Instant) -> bool {
        self.roll(now);
        self.this_window.max(self.last_window) >= BUSY_REQUESTS
    }

    fn taken(&mut self, now: Instant, requests: usize) {
        self.roll(now);
        self.this_window += requests;
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::Coalescer;

    /// A coalescer whose batches take `work` each and record their sizes.
    fn recording(
        linger: Duration,
        work: Duration,
    ) -> (Coalescer<u32, u32>, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let coalescer = Coalescer::spawn("test", 128, 2, linger, move |batch: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(batch.len());
                tokio::time::sleep(work).await;
                batch.into_iter().map(|n| n * 2).collect()
            }
        });
        (coalescer, sizes)
    }

    /// Requests every `gap`, each answered before the next is counted done;
    /// returns the batch sizes.
    async fn steady(coalescer: &Coalescer<u32, u32>, requests: u32, gap: Duration) -> Vec<u32> {
        let mut waiting = Vec::new();
        for n in 0..requests {
            let c = coalescer.clone();
            waiting.push(tokio::spawn(async move { c.call(n).await.unwrap() }));
            tokio::time::sleep(gap).await;
        }
        let mut answers = Vec::new();
        for w in waiting {
            answers.push(w.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn every_request_gets_its_own_answer_in_order() {
        let (coalescer, _) = recording(Duration::from_millis(3), Duration::from_millis(1));
        let answers = steady(&coalescer, 200, Duration::from_micros(200)).await;
        assert_eq!(answers, (0..200).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_request_on_an_idle_coalescer_does_not_linger() {
        let (coalescer, sizes) = recording(Duration::from_millis(200), Duration::ZERO);
        for n in 0..3 {
            let started = Instant::now();
            assert_eq!(coalescer.call(n).await, Some(n * 2));
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "an idle request waited {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 1, 1]);
    }

    #[tokio::test]
    async fn a_busy_coalescer_lingers_for_fuller_batches() {
        // Requests every 0.5 ms, batches that take 0.1 ms: without lingering
        // nearly every request is a batch of its own.
        let work = Duration::from_micros(100);
        let (eager, eager_sizes) = recording(Duration::ZERO, work);
        let (lingering, lingering_sizes) = recording(Duration::from_millis(5), work);
        steady(&eager, 200, Duration::from_micros(500)).await;
        steady(&lingering, 200, Duration::from_micros(500)).await;
        let eager_batches = eager_sizes.lock().unwrap().len();
        let lingering_batches = lingering_sizes.lock().unwrap().len();
        assert_eq!(lingering_sizes.lock().unwrap().iter().sum::<usize>(), 200);
        assert!(
            lingering_batches * 3 < eager_batches,
            "lingering made {lingering_batches} batches, eager {eager_batches}"
        );
    }
}
