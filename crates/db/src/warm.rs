//! Connections kept between tenant transactions.
//!
//! sqlx's pool runs a query on every connection it gets back (its check on
//! release), a round trip per transaction. [`Warm`] keeps connections that
//! [`TenantTx`](crate::TenantTx) is done with, still checked out of sqlx's
//! pool, and hands them straight to the next transaction. A transaction
//! that ended without COMMIT or ROLLBACK (a read-only one, or one dropped on
//! an error) leaves its connection marked: the next `BEGIN` on it is sent
//! as `ROLLBACK; BEGIN; ...`, in the same round trip. A janitor rolls back
//! marked connections that wait longer than [`ROLLBACK_AFTER`], so that no
//! abandoned transaction holds its locks or snapshot for long, and gives
//! connections idle for [`RETURN_AFTER`] back to sqlx's pool, whose own
//! idle handling and lifetimes then apply. Tenant transactions own at most
//! `cap` connections (in use or kept), leaving the rest of the pool to the
//! callers that use it directly.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection whose transaction was left open waits at most this long
/// before the janitor rolls it back.
pub(crate) const ROLLBACK_AFTER: Duration = Duration::from_millis(100);
/// How long the rollback of an abandoned transaction waits for a query of it
/// that is still running before the connection is closed instead.
pub(crate) const ABANDONED_WAIT: Duration = Duration::from_secs(1);
/// A connection unused for this long goes back to sqlx's pool.
pub(crate) const RETURN_AFTER: Duration = Duration::from_secs(10);

pub(crate) struct Idle {
    pub conn: PoolConnection<Postgres>,
    /// Its transaction is still open: `ROLLBACK` before anything else.
    pub needs_rollback: bool,
    since: Instant,
}

pub(crate) struct Warm {
    idle: Mutex<Vec<Idle>>,
    cap: usize,
    /// `cap` slots, handed out first come, first served: a transaction holds
    /// one for its life, so the connections this layer owns (in use or kept)
    /// never exceed `cap`, and a kept connection goes to whoever waited
    /// longest instead of being taken by a newcomer while earlier callers
    /// starve in sqlx's queue.
    slots: Arc<Semaphore>,
}

impl Warm {
    /// Keeps at most `cap` connections (0: none, every transaction goes
    /// through sqlx's pool as it is).
    pub fn new(cap: usize) -> Arc<Self> {
        let warm = Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            cap,
            slots: Arc::new(Semaphore::new(cap)),
        });
        if cap > 0
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(janitor(Arc::downgrade(&warm)));
        }
        warm
    }

    /// Waits for a slot (none needed when nothing is kept).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.cap == 0 {
            return None;
        }
        Some(
            self.slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        )
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used connection, if any (its pages are the warmest).
    pub fn take(&self) -> Option<Idle> {
        self.idle().pop()
    }

    pub fn len(&self) -> usize {
        self.idle().len()
    }

    /// Keeps `conn` for the next transaction. Past the cap, a clean
    /// connection goes back to sqlx's pool; one with an open transaction is
    /// rolled back first (on a task), or closed when there is no runtime.
    pub fn put(&self, conn: PoolConnection<Postgres>, needs_rollback: bool) {
        let mut idle = self.idle();
        if idle.len() < self.cap {
            idle.push(Idle {
                conn,
                needs_rollback,
                since: Instant::now(),
            });
            return;
        }
        drop(idle);
        release(conn, needs_rollback);
    }

    /// Takes back the connection of a transaction dropped without an end. Its
    /// future may have been cancelled in the middle of a query (a client that
    /// went away, a job that was cancelled), and the next transaction given
    /// the connection would wait for that query, which may be stuck behind a
    /// lock. So a task rolls it back first, holding the transaction's slot,
    /// and keeps it; if the rollback takes longer than [`ABANDONED_WAIT`]
    /// or fails, the connection is closed (the server then ends whatever it
    /// was running when it next writes to it).
    pub fn abandon(
        self: &Arc<Self>,
        conn: PoolConnection<Postgres>,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let mut conn = conn;
            conn.close_on_drop();
            return;
        };
        let warm = self.clone();
        runtime.spawn(async move {
            let _slot = slot;
            let mut conn = conn;
            match tokio::time::timeout(ABANDONED_WAIT, rollback(&mut conn)).await {
                Ok(true) => warm.put(conn, false),
                Ok(false) => {}
                Err(_) => {
                    tracing::debug!(
                        "an abandoned transaction is still running a query; closing its connection"
                    );
                    conn.close_on_drop();
                }
            }
        });
    }

    /// Gives every kept connection back (rolled back where needed); for
    /// closing the pool.
    pub async fn drain(&self) {
        let all: Vec<Idle> = std::mem::take(&mut *self.idle());
        for mut idle in all {
            if idle.needs_rollback {
                rollback(&mut idle.conn).await;
            }
        }
    }
}

/// Hands a connection back to sqlx's pool, never with a transaction open.
fn release(mut conn: PoolConnection<Postgres>, needs_rollback: bool) {
    if !needs_rollback {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                rollback(&mut conn).await;
            });
        }
        // Closing the session ends the transaction too.
        Err(_) => conn.close_on_drop(),
    }
}

/// Rolls back an abandoned transaction; false (and the connection closes
/// when dropped) if it could not.
async fn rollback(conn: &mut PoolConnection<Postgres>) -> bool {
    match sqlx::raw_sql("ROLLBACK").execute(&mut **conn).await {
        Ok(_) => true,
        Err(err) => {
            tracing::warn!(error = %err, "could not roll back an abandoned transaction; closing its connection");
            conn.close_on_drop();
            false
        }
    }
}

async fn janitor(warm: Weak<Warm>) {
    let mut tick = tokio::time::interval(ROLLBACK_AFTER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(warm) = warm.upgrade() else { return };
        let now = Instant::now();
        let (stale, waiting): (Vec<Idle>, Vec<Idle>) = {
            let mut idle = warm.idle();
            std::mem::take(&mut *idle).into_iter().partition(|i| {
                let waited = now - i.since;
                waited >= RETURN_AFTER || (i.needs_rollback && waited >= ROLLBACK_AFTER)
            })
        };
        // Put the others back first: the cleaning below awaits.
        warm.idle().splice(0..0, waiting);
        for mut idle in stale {
            let usable = !idle.needs_rollback || rollback(&mut idle.conn).await;
            if usable && now - idle.since < RETURN_AFTER {
                warm.put(idle.conn, false);
            }
            // Otherwise dropped here: back to sqlx's pool (or closed).
        }
    }
}
