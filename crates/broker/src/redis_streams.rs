//! The Redis Streams backend.
//!
//! Per name prefix `P`:
//! - stream `P:jobs`, read by consumer group `workers`; every worker process
//!   is one consumer of the group (named by its worker id);
//! - an entry is acknowledged (`XACK`) and deleted (`XDEL`) in one `MULTI`
//!   after the job's outcome committed, so the stream holds only work that
//!   is waiting or in flight; the acks of one moment share that `MULTI`;
//! - entries a consumer read but did not settle within the visibility
//!   timeout (its process died) are taken over by another consumer with
//!   `XAUTOCLAIM` and delivered again, marked redelivered. A live consumer
//!   keeps its in-flight entries fresh by re-claiming them for itself
//!   (`XCLAIM ... JUSTID`, which does not count as a delivery), so a long job
//!   is never taken away from a worker that is still running it;
//! - dead letters go to stream `P:jobs:dead` (capped at about 100,000 entries);
//! - delayed retries wait in sorted set `P:jobs:delayed`, scored by due time
//!   in Redis's own clock; consumers move due members to the stream with a
//!   script, so no message is lost between the two.
//!
//! Redis keeps the stream only as well as it is configured to: run it with
//! an append-only file (as the compose file does) for jobs to survive a
//! restart of Redis itself.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{RedisError, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::delivery::{BrokerError, Delivery, Envelope};
use ferro_redis::{Connection, RedisPool};
use ferro_tasks::TaskEnvelope;

const GROUP: &str = "workers";
const FIELD: &str = "envelope";
const REDELIVERED: &str = "redelivered";
/// How long one `XREADGROUP` blocks waiting for entries; also bounds how
/// late a due delayed retry is moved into the stream.
const BLOCK: Duration = Duration::from_millis(500);
const DEAD_LETTERS_KEPT: usize = 100_000;
/// How long a read waits for more entries while they trickle in: when the
/// last read took all there was (and not nothing), the next one waits this
/// long after it. Jobs then reach the worker in small batches whose claims,
/// commits, acks and events are shared, instead of each paying for its own
/// read, wake-ups and round trips; an idle consumer's first entry and a
/// backlog are not held up. Side by side on the jobs benchmark's end to end
/// (BENCHMARKS.md), 5 ms took the worker's own CPU from about 100 to 60 µs
/// a job. (RabbitMQ pushes deliveries, so there is no read to save; the
/// same wait there slowed the drain by 8%.)
const READ_LINGER: Duration = Duration::from_millis(5);

#[derive(Clone)]
struct Keys {
    stream: String,
    dead: String,
    delayed: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{prefix}:jobs"),
            dead: format!("{prefix}:jobs:dead"),
            delayed: format!("{prefix}:jobs:delayed"),
        }
    }
}

/// Adds ARGV[2] to the delayed set, due ARGV[1] ms from now by Redis's clock.
const DELAY_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
";

/// Moves up to ARGV[1] due members of the delayed set (KEYS[1]) to the stream (KEYS[2]).
const PROMOTE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'envelope', member)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
";

/// The Lua function both hand-back scripts share: entry `id` of `stream` is
/// copied to the end of the stream, marked redelivered, then acknowledged
/// and deleted, all at once.
macro_rules! hand_back_function {
    () => {
        r"
local function hand_back(stream, group, id)
  local found = redis.call('XRANGE', stream, id, id)
  if #found > 0 then
    local fields = found[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'envelope' then
        redis.call('XADD', stream, '*', 'envelope', fields[j + 1], 'redelivered', '1')
      end
    end
  end
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
end
"
    };
}

/// Hands entries ARGV[2..] of stream KEYS[1] back to group ARGV[1].
const HAND_BACK_SCRIPT: &str = concat!(
    hand_back_function!(),
    r"
for i = 2, #ARGV do
  hand_back(KEYS[1], ARGV[1], ARGV[i])
end
return #ARGV - 1
"
);

/// A consumer's leaving: every entry Redis holds as pending for consumer
/// ARGV[2] of group ARGV[1] on stream KEYS[1] is handed back, then the
/// consumer is deleted; returns how many entries were handed back. Redis's
/// own list is the one that counts, not the consumer's: a read whose answer
/// never reached the worker (its shutdown dropped the read midway) still
/// left its entries pending here, and deleting a consumer with pending
/// entries would leave them to nobody.
const CLOSE_SCRIPT: &str = concat!(
    hand_back_function!(),
    r"
local handed = 0
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
  if #pending == 0 then
    break
  end
  for _, entry in ipairs(pending) do
    hand_back(KEYS[1], ARGV[1], entry[1])
    handed = handed + 1
  end
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return handed
"
);

fn unavailable(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}

async fn connection(pool: &RedisPool) -> Result<Connection, BrokerError> {
    ferro_redis::connection(pool).await.map_err(unavailable)
}

/// Publishes envelopes to a stream and hands out consumers of its group.
pub struct RedisBroker {
    url: String,
    pool: RedisPool,
    keys: Keys,
    visibility: Duration,
}

impl RedisBroker {
    /// A broker on the Redis at `url` (connects on first use). Entries a
    /// consumer has not settled `visibility` after it last touched them are
    /// delivered again to another consumer.
    pub fn new(url: &str, prefix: &str, visibility: Duration) -> Result<Self, BrokerError> {
        let pool = ferro_redis::create_pool(url, 8, Duration::from_secs(3)).map_err(unavailable)?;
        Ok(Self {
            url: url.to_owned(),
            pool,
            keys: Keys::new(prefix),
            visibility,
        })
    }

    /// Appends the envelope to the stream; returns once Redis has it.
    pub async fn publish(&self, envelope: &TaskEnvelope) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        redis::cmd("XADD")
            .arg(&self.keys.stream)
            .arg("*")
            .arg(FIELD)
            .arg(envelope.to_bytes())
            .query_async::<String>(&mut conn)
            .await?;
        Ok(())
    }

    /// Publishes to enter the stream after `delay`.
    pub async fn publish_delayed(
        &self,
        envelope: &TaskEnvelope,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        redis::Script::new(DELAY_SCRIPT)
            .key(&self.keys.delayed)
            .arg(delay.as_millis() as u64)
            .arg(envelope.to_bytes())
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// A consumer named `name` (unique per process) with at most `prefetch`
    /// entries read and not yet settled.
    pub fn consumer(&self, prefetch: u16, name: &str) -> RedisConsumer {
        RedisConsumer {
            url: self.url.clone(),
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            name: name.to_owned(),
            prefetch: prefetch.max(1) as usize,
            visibility: self.visibility,
            reader: None,
            group_ready: false,
            buffer: VecDeque::new(),
            in_flight: Arc::default(),
            toucher: None,
            last_promote: None,
            last_claim: None,
            trickle_since: None,
        }
    }

    /// Entries in the stream (waiting or in flight) and dead letters.
    pub async fn check(&self) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    pub async fn depths(&self) -> Result<(u32, u32), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let (main, dead): (u32, u32) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.keys.stream)
            .cmd("XLEN")
            .arg(&self.keys.dead)
            .query_async(&mut conn)
            .await?;
        Ok((main, dead))
    }

    /// Takes the oldest dead letter off its stream (operators, tests).
    pub async fn take_dead_letter(&self) -> Result<Option<Envelope>, BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let Some(entry) = reply.ids.into_iter().next() else {
            return Ok(None);
        };
        redis::cmd("XDEL")
            .arg(&self.keys.dead)
            .arg(&entry.id)
            .query_async::<i64>(&mut conn)
            .await?;
        Ok(Some(TaskEnvelope::from_bytes(&payload(&entry))))
    }

    /// Deletes this prefix's stream, dead letters and delayed set.
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        redis::cmd("DEL")
            .arg(&self.keys.stream)
            .arg(&self.keys.dead)
            .arg(&self.keys.delayed)
            .query_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }
}

fn payload(entry: &StreamId) -> Vec<u8> {
    entry.get::<Vec<u8>>(FIELD).unwrap_or_default()
}

/// Entries read and not yet settled; settling one wakes a consumer waiting
/// for room under its prefetch.
#[derive(Default)]
struct InFlightSet {
    ids: Mutex<HashSet<String>>,
    freed: tokio::sync::Notify,
    /// The consumer's acknowledger, started by the first ack.
    acks: std::sync::OnceLock<mpsc::UnboundedSender<AckRequest>>,
}

/// An entry to acknowledge, and who waits for the answer.
type AckRequest = (String, oneshot::Sender<Result<(), String>>);

/// Most entries acknowledged in one round trip.
const ACKS_PER_BATCH: usize = 512;

/// The acknowledger task: the entries whose acks arrive while the previous
/// batch is with Redis are acknowledged and deleted together, one `XACK`
/// and one `XDEL` for all of them in a `MULTI`. An idle worker's ack goes
/// alone and at once.
fn start_acknowledger(pool: RedisPool, keys: Keys) -> mpsc::UnboundedSender<AckRequest> {
    let (sender, mut requests) = mpsc::unbounded_channel::<AckRequest>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(ACKS_PER_BATCH);
        while requests.recv_many(&mut batch, ACKS_PER_BATCH).await > 0 {
            let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
            let result = async {
                let mut conn = connection(&pool).await?;
                redis::pipe()
                    .atomic()
                    .cmd("XACK")
                    .arg(&keys.stream)
                    .arg(GROUP)
                    .arg(&ids)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&keys.stream)
                    .arg(&ids)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await?;
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
    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type InFlight = Arc<InFlightSet>;

/// The receipt of one entry: settles it in the stream.
struct Receipt {
    pool: RedisPool,
    keys: Keys,
    id: String,
    payload: Vec<u8>,
    in_flight: InFlight,
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
    fn forget(&self) {
        self.in_flight.ids().remove(&self.id);
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
        let result = match acks.send((self.id.clone(), reply)) {
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
                .key(&self.keys.stream)
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
                .arg(&self.keys.stream)
                .arg(GROUP)
                .arg(&self.id)
                .ignore()
                .cmd("XDEL")
                .arg(&self.keys.stream)
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

/// Entries of the group's stream for one consumer; reconnects by itself.
pub struct RedisConsumer {
    url: String,
    pool: RedisPool,
    keys: Keys,
    name: String,
    prefetch: usize,
    visibility: Duration,
    /// A connection of its own for the blocking reads.
    reader: Option<Connection>,
    group_ready: bool,
    buffer: VecDeque<Delivery>,
    in_flight: InFlight,
    toucher: Option<JoinHandle<()>>,
    last_promote: Option<Instant>,
    last_claim: Option<Instant>,
    /// When the last read answered with entries but fewer than it asked
    /// for: the stream is being fed as fast as it is read.
    trickle_since: Option<Instant>,
}

fn is_missing_group(err: &RedisError) -> bool {
    err.code() == Some("NOGROUP")
}

impl RedisConsumer {
    /// The next entry. Waits (reconnecting with backoff from 100 ms to 5 s,
    /// logging each failure) while Redis is away.
    pub async fn next(&mut self) -> Delivery {
        let mut delay = Duration::from_millis(100);
        let mut lost = false;
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return delivery;
            }
            if self.in_flight.ids().len() >= self.prefetch {
                // As many unsettled as allowed: wait for one to be settled.
                let _ = tokio::time::timeout(BLOCK, self.in_flight.freed.notified()).await;
                continue;
            }
            match self.fill().await {
                Ok(()) => {
                    if lost {
                        tracing::info!(stream = %self.keys.stream, "consumer reconnected to the broker");
                        lost = false;
                    }
                    delay = Duration::from_millis(100);
                }
                Err(err) => {
                    if let BrokerError::Redis(e) = &err
                        && is_missing_group(e)
                    {
                        // Redis lost the group (restarted without its data):
                        // create it again at once.
                        tracing::warn!(stream = %self.keys.stream, "consumer group gone; creating it again");
                        self.group_ready = false;
                        continue;
                    }
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "broker unavailable");
                    lost = true;
                    self.reader = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One round: create the group if needed, move due retries into the
    /// stream, take over abandoned entries, then read new ones.
    async fn fill(&mut self) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        if !self.group_ready {
            let created = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.keys.stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut conn)
                .await;
            match created {
                Ok(()) => {}
                Err(err) if err.code() == Some("BUSYGROUP") => {}
                Err(err) => return Err(err.into()),
            }
            self.group_ready = true;
        }
        if self.toucher.is_none() {
            self.toucher = Some(tokio::spawn(touch(
                self.pool.clone(),
                self.keys.stream.clone(),
                self.name.clone(),
                Arc::downgrade(&self.in_flight),
                self.visibility / 3,
            )));
        }
        let room = self
            .prefetch
            .saturating_sub(self.in_flight.ids().len())
            .max(1);

        if self.last_promote.is_none_or(|t| t.elapsed() >= BLOCK) {
            redis::Script::new(PROMOTE_SCRIPT)
                .key(&self.keys.delayed)
                .key(&self.keys.stream)
                .arg(100)
                .invoke_async::<i64>(&mut conn)
                .await?;
            self.last_promote = Some(Instant::now());
        }

        if self
            .last_claim
            .is_none_or(|t| t.elapsed() >= self.visibility / 2)
        {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.keys.stream)
                .arg(GROUP)
                .arg(&self.name)
                .arg(self.visibility.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(room)
                .query_async(&mut conn)
                .await?;
            self.last_claim = Some(Instant::now());
            if !reply.claimed.is_empty() {
                tracing::info!(
                    entries = reply.claimed.len(),
                    "took over entries another consumer left unsettled"
                );
                for entry in reply.claimed {
                    self.accept(entry, true);
                }
                return Ok(());
            }
        }

        // While jobs trickle in (the last read took all there was, and it
        // was not nothing), the next read waits a moment for more
        // (`READ_LINGER`). An idle consumer's first job, and a
        // backlog, are read at once.
        if let Some(since) = self.trickle_since.take() {
            tokio::time::sleep_until((since + READ_LINGER).into()).await;
        }
        if self.reader.is_none() {
            self.reader =
                Some(ferro_redis::dedicated(&self.url, BLOCK + Duration::from_secs(3)).await?);
        }
        let reader = self.reader.as_mut().expect("just connected");
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(room)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(">")
            .query_async(reader)
            .await?;
        let mut read = 0;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                let redelivered = entry.contains_key(REDELIVERED);
                self.accept(entry, redelivered);
                read += 1;
            }
        }
        if (1..room).contains(&read) {
            self.trickle_since = Some(Instant::now());
        }
        Ok(())
    }

    fn accept(&mut self, entry: StreamId, redelivered: bool) {
        let payload = payload(&entry);
        self.in_flight.ids().insert(entry.id.clone());
        let receipt = Receipt {
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            id: entry.id,
            payload: payload.clone(),
            in_flight: self.in_flight.clone(),
        };
        self.buffer.push_back(Delivery::new(
            TaskEnvelope::from_bytes(&payload),
            redelivered,
            Box::new(receipt),
        ));
    }

    /// Stops consuming: hands every entry this consumer holds and has not
    /// settled back to the group (at the end of the stream, marked
    /// redelivered) and leaves it. The blocking reader goes first, so Redis
    /// delivers nothing more to a consumer that is leaving; an entry Redis
    /// gave a read the worker dropped at shutdown is handed back too.
    pub async fn close(&mut self) {
        if let Some(toucher) = self.toucher.take() {
            toucher.abort();
        }
        self.reader = None;
        self.buffer.clear();
        self.in_flight.ids().clear();
        let result = async {
            let mut conn = connection(&self.pool).await?;
            let handed = redis::Script::new(CLOSE_SCRIPT)
                .key(&self.keys.stream)
                .arg(GROUP)
                .arg(&self.name)
                .invoke_async::<i64>(&mut conn)
                .await?;
            if handed > 0 {
                tracing::info!(entries = handed, "handed unsettled entries back");
            }
            Ok::<_, BrokerError>(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not hand entries back; they are taken over after the visibility timeout");
        }
    }
}

impl Drop for RedisConsumer {
    fn drop(&mut self) {
        if let Some(toucher) = self.toucher.take() {
            toucher.abort();
        }
    }
}

/// Every `every`: re-claims this consumer's in-flight entries for itself,
/// which resets their idle time, so that no other consumer takes them over
/// while this one is alive. Ends when the consumer is gone.
async fn touch(
    pool: RedisPool,
    stream: String,
    name: String,
    in_flight: std::sync::Weak<InFlightSet>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let Some(in_flight) = in_flight.upgrade() else {
            return;
        };
        let ids: Vec<String> = in_flight.ids().iter().cloned().collect();
        drop(in_flight);
        if ids.is_empty() {
            continue;
        }
        let touched = async {
            let mut conn = connection(&pool).await?;
            redis::cmd("XCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(&name)
                .arg(0)
                .arg(&ids)
                .arg("JUSTID")
                .query_async::<Value>(&mut conn)
                .await?;
            Ok::<_, BrokerError>(())
        }
        .await;
        if let Err(err) = touched {
            tracing::warn!(error = %err, "could not keep in-flight entries claimed");
        }
    }
}
