//! The consumer: reads entries for one consumer of the group, takes over
//! the entries of consumers that died, keeps its own entries visible while
//! their jobs run, and hands back what it holds when it leaves.

use crate::delivery::{BrokerError, Delivery};
use ferro_redis::{Connection, RedisPool};
use ferro_tasks::TaskEnvelope;
use redis::RedisError;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

use super::keys::*;
use super::receipt::*;

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

pub(super) fn is_missing_group(err: &RedisError) -> bool {
    // From a script the code comes inside the script's error.
    err.code() == Some("NOGROUP") || err.to_string().contains("NOGROUP")
}

impl RedisConsumer {
    pub(super) fn new(
        url: String,
        pool: RedisPool,
        keys: Keys,
        name: &str,
        prefetch: u16,
        visibility: Duration,
    ) -> Self {
        RedisConsumer {
            url,
            pool,
            keys,
            name: name.to_owned(),
            prefetch: prefetch.max(1) as usize,
            visibility,
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
                        tracing::info!(stream = %self.keys.stream(0), "consumer reconnected to the broker");
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
                        tracing::warn!(stream = %self.keys.stream(0), "consumer group gone; creating it again");
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

    /// One round: create the groups if needed, move due retries into the
    /// streams, take over abandoned entries, then read new ones, highest
    /// priority first.
    async fn fill(&mut self) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        if !self.group_ready {
            redis::Script::new(GROUPS_SCRIPT)
                .key(&self.keys.streams)
                .arg(GROUP)
                .invoke_async::<i64>(&mut conn)
                .await?;
            self.group_ready = true;
        }
        if self.toucher.is_none() {
            self.toucher = Some(tokio::spawn(touch(
                self.pool.clone(),
                self.keys.clone(),
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
                .key(&self.keys.streams)
                .arg(100)
                .invoke_async::<i64>(&mut conn)
                .await?;
            self.last_promote = Some(Instant::now());
        }

        if self
            .last_claim
            .is_none_or(|t| t.elapsed() >= self.visibility / 2)
        {
            let mut pipe = redis::pipe();
            for stream in self.keys.by_priority() {
                pipe.cmd("XAUTOCLAIM")
                    .arg(stream)
                    .arg(GROUP)
                    .arg(&self.name)
                    .arg(self.visibility.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(room);
            }
            let replies: Vec<StreamAutoClaimReply> = pipe.query_async(&mut conn).await?;
            self.last_claim = Some(Instant::now());
            let mut taken = 0;
            for (reply, priority) in replies.into_iter().zip((0..PRIORITIES as u8).rev()) {
                for entry in reply.claimed {
                    self.accept(priority, entry, true);
                    taken += 1;
                }
            }
            if taken > 0 {
                tracing::info!(
                    entries = taken,
                    "took over entries another consumer left unsettled"
                );
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
        let reply: StreamReadReply = redis::Script::new(READ_SCRIPT)
            .key(self.keys.by_priority().collect::<Vec<_>>())
            .arg(GROUP)
            .arg(&self.name)
            .arg(room)
            .invoke_async(&mut conn)
            .await?;
        drop(conn);
        let read = self.accept_read(reply);
        if read > 0 {
            if read < room {
                self.trickle_since = Some(Instant::now());
            }
            return Ok(());
        }
        // Nothing waiting: block until an entry arrives in any stream.
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
            .arg(self.keys.by_priority().collect::<Vec<_>>())
            .arg(&[">"; PRIORITIES][..])
            .query_async(reader)
            .await?;
        if let Some(reply) = reply {
            let read = self.accept_read(reply);
            if (1..room).contains(&read) {
                self.trickle_since = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Accepts what a read returned, highest priority first; how many.
    fn accept_read(&mut self, reply: StreamReadReply) -> usize {
        let mut keys = reply.keys;
        keys.sort_by_key(|k| std::cmp::Reverse(self.keys.priority_of(&k.key)));
        let mut read = 0;
        for key in keys {
            let priority = self.keys.priority_of(&key.key).unwrap_or(0);
            for entry in key.ids {
                let redelivered = entry.contains_key(REDELIVERED);
                self.accept(priority, entry, redelivered);
                read += 1;
            }
        }
        read
    }

    pub(super) fn accept(&mut self, priority: u8, entry: StreamId, redelivered: bool) {
        let payload = payload(&entry);
        self.in_flight.ids().insert((priority, entry.id.clone()));
        let receipt = Receipt {
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            priority,
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
                .key(&self.keys.streams)
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
pub(super) async fn touch(
    pool: RedisPool,
    keys: Keys,
    name: String,
    in_flight: std::sync::Weak<InFlightSet>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let Some(in_flight) = in_flight.upgrade() else {
            return;
        };
        let mut by_stream: [Vec<String>; PRIORITIES] = Default::default();
        for (priority, id) in in_flight.ids().iter() {
            by_stream[(*priority as usize).min(PRIORITIES - 1)].push(id.clone());
        }
        drop(in_flight);
        if by_stream.iter().all(Vec::is_empty) {
            continue;
        }
        let touched = async {
            let mut conn = connection(&pool).await?;
            let mut pipe = redis::pipe();
            for (priority, ids) in by_stream.iter().enumerate() {
                if ids.is_empty() {
                    continue;
                }
                pipe.cmd("XCLAIM")
                    .arg(keys.stream(priority as u8))
                    .arg(GROUP)
                    .arg(&name)
                    .arg(0)
                    .arg(ids)
                    .arg("JUSTID")
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
            Ok::<_, BrokerError>(())
        }
        .await;
        if let Err(err) = touched {
            tracing::warn!(error = %err, "could not keep in-flight entries claimed");
        }
    }
}
