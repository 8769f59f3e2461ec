//! Settling a delivery: its receipt (ack, requeue, dead-letter) and the
//! set of entries a consumer holds, whose acknowledgements go to Redis in
//! batches.

use crate::delivery::BrokerError;
use ferro_redis::RedisPool;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

use super::keys::*;

/// Entries read and not yet settled; settling one wakes a consumer waiting
/// for room under its prefetch.
#[derive(Default)]
pub(super) struct InFlightSet {
    /// Each entry by its priority (which names its stream) and id.
    pub(super) ids: Mutex<HashSet<(u8, String)>>,
    pub(super) freed: tokio::sync::Notify,
    /// The consumer's acknowledger, started by the first ack.
    pub(super) acks: std::sync::OnceLock<mpsc::UnboundedSender<AckRequest>>,
}

/// An entry to acknowledge (its priority and id), and who waits for the answer.
pub(super) type AckRequest = ((u8, String), oneshot::Sender<Result<(), String>>);

/// Most entries acknowledged in one round trip.
pub(super) const ACKS_PER_BATCH: usize = 512;

/// The acknowledger task: the entries whose acks arrive while the previous
/// batch is with Redis are acknowledged and deleted together, one `XACK`
/// and one `XDEL` per stream for all of them in a `MULTI`. An idle
/// worker's ack goes alone and at once.
pub(super) fn start_acknowledger(pool: RedisPool, keys: Keys) -> mpsc::UnboundedSender<AckRequest> {
    let (sender, mut requests) = mpsc::unbounded_channel::<AckRequest>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(ACKS_PER_BATCH);
        while requests.recv_many(&mut batch, ACKS_PER_BATCH).await > 0 {
            let mut by_stream: [Vec<&str>; PRIORITIES] = Default::default();
            for ((priority, id), _) in &batch {
                by_stream[(*priority as usize).min(PRIORITIES - 1)].push(id.as_str());
            }
            let result = async {
                let mut conn = connection(&pool).await?;
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (priority, ids) in by_stream.iter().enumerate() {
                    if ids.is_empty() {
                        continue;
                    }
                    let stream = keys.stream(priority as u8);
                    pipe.cmd("XACK").arg(stream).arg(GROUP).arg(ids).ignore();
                    pipe.cmd("XDEL").arg(stream).arg(ids).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
                Ok::<_, BrokerError>(())
            }
            .await
            .map_err(|err| err.to_string());
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(result.clone());
            }
        }
    });
    sender
}

impl InFlightSet {
    pub(super) fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<(u8, String)>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) type InFlight = Arc<InFlightSet>;

/// The receipt of one entry: settles it in the stream.
pub(super) struct Receipt {
    pub(super) pool: RedisPool,
    pub(super) keys: Keys,
    pub(super) priority: u8,
    pub(super) id: String,
    pub(super) payload: Vec<u8>,
    pub(super) in_flight: InFlight,
}

impl crate::delivery::Receipt for Receipt {
    fn ack(&self) -> futures_util::future::BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(Receipt::ack(self))
    }

    fn requeue(&self) -> futures_util::future::BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(Receipt::requeue(self))
    }

    fn dead_letter(&self) -> futures_util::future::BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(Receipt::dead_letter(self))
    }
}

impl Receipt {
    pub(super) fn forget(&self) {
        self.in_flight
            .ids()
            .remove(&(self.priority, self.id.clone()));
        self.in_flight.freed.notify_one();
    }

    /// Acknowledges and deletes the entry (batched with the consumer's
    /// other acks of the moment: see [`start_acknowledger`]).
    async fn ack(&self) -> Result<(), BrokerError> {
        let acks = self
            .in_flight
            .acks
            .get_or_init(|| start_acknowledger(self.pool.clone(), self.keys.clone()));
        let (reply, answer) = oneshot::channel();
        let stopped = || "the acknowledger stopped".to_owned();
        let result = match acks.send(((self.priority, self.id.clone()), reply)) {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        }
        .map_err(BrokerError::Unavailable);
        // Settled or not, stop keeping it fresh: if the ack was lost, the
        // entry is delivered again after the visibility timeout and the
        // worker's guarded claim skips it.
        self.forget();
        result
    }

    async fn requeue(&self) -> Result<(), BrokerError> {
        let result = async {
            let mut conn = connection(&self.pool).await?;
            redis::Script::new(HAND_BACK_SCRIPT)
                .key(self.keys.stream(self.priority))
                .arg(GROUP)
                .arg(&self.id)
                .invoke_async::<i64>(&mut conn)
                .await?;
            Ok(())
        }
        .await;
        self.forget();
        result
    }

    async fn dead_letter(&self) -> Result<(), BrokerError> {
        let result = async {
            let mut conn = connection(&self.pool).await?;
            redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(&self.keys.dead)
                .arg("MAXLEN")
                .arg("~")
                .arg(DEAD_LETTERS_KEPT)
                .arg("*")
                .arg(FIELD)
                .arg(&self.payload)
                .ignore()
                .cmd("XACK")
                .arg(self.keys.stream(self.priority))
                .arg(GROUP)
                .arg(&self.id)
                .ignore()
                .cmd("XDEL")
                .arg(self.keys.stream(self.priority))
                .arg(&self.id)
                .ignore()
                .query_async::<()>(&mut conn)
                .await?;
            Ok(())
        }
        .await;
        self.forget();
        result
    }
}
