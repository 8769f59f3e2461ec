//! What platform administrators ask of this worker through the api
//! (`ferro_redis::control`), read every second: which queues are paused
//! (the consumers' gate), a graceful shutdown, another concurrency. And
//! the slots that hold the worker to its concurrency, which can change
//! while it runs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use ferro_redis::RedisPool;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// How often the requests are read.
const EVERY: Duration = Duration::from_secs(1);

/// How many jobs may run at once: at most `target`, which an operator may
/// change up to the concurrency the worker started with (its prefetch,
/// which stays as it was). Lowering it lets running jobs finish; no new
/// one starts until fewer than `target` run.
pub struct Slots {
    target: AtomicUsize,
    max: usize,
    active: AtomicUsize,
    freed: Notify,
}

impl Slots {
    pub fn new(concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            target: AtomicUsize::new(concurrency),
            max: concurrency,
            active: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    pub fn target(&self) -> usize {
        self.target.load(SeqCst)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Sets the target (kept within 1 and the maximum); returns it.
    pub fn set_target(&self, concurrency: usize) -> usize {
        let target = concurrency.clamp(1, self.max);
        self.target.store(target, SeqCst);
        self.freed.notify_one();
        target
    }

    /// Waits for a free slot and takes it until the guard is dropped. One
    /// caller at a time (the worker's loop).
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            if self.active.load(SeqCst) < self.target() {
                self.active.fetch_add(1, SeqCst);
                return Slot(self.clone());
            }
            freed.await;
        }
    }
}

/// A taken slot; dropping it frees the slot.
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
        self.0.freed.notify_one();
    }
}

/// Reads this worker's requests and the paused queues every second until
/// `stop`: passes the paused queues to `paused`, applies a concurrency
/// change to `slots`, and cancels `shutdown` when a shutdown is asked for.
pub async fn run(
    pool: RedisPool,
    prefix: String,
    worker_id: String,
    slots: Arc<Slots>,
    paused: watch::Sender<Arc<BTreeSet<String>>>,
    shutdown: CancellationToken,
    stop: CancellationToken,
) {
    loop {
        match ferro_redis::control::read(&pool, &prefix, &worker_id).await {
            Ok((control, queues)) => {
                paused.send_if_modified(|current| {
                    if **current == queues {
                        return false;
                    }
                    tracing::info!(paused = ?queues, "paused queues changed");
                    *current = Arc::new(queues);
                    true
                });
                if let Some(wanted) = control.concurrency
                    && wanted.clamp(1, slots.max()) != slots.target()
                {
                    let target = slots.set_target(wanted);
                    metrics::set_concurrency(target);
                    tracing::info!(concurrency = target, "concurrency changed through the api");
                }
                if control.shutdown && !shutdown.is_cancelled() {
                    tracing::info!("shutdown asked for through the api");
                    shutdown.cancel();
                }
            }
            Err(err) => tracing::debug!(error = %err, "could not read the worker's requests"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lower_target_holds_new_jobs_until_enough_end() {
        let slots = Slots::new(3);
        let (a, b) = (slots.acquire().await, slots.acquire().await);
        assert_eq!(slots.set_target(1), 1);
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiting.is_finished(), "one still runs, the target is 1");
        drop(b);
        let c = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(slots.set_target(10), 3, "never above the start");
        let d = slots.acquire().await;
        let e = slots.acquire().await;
        drop((c, d, e));
    }
}
