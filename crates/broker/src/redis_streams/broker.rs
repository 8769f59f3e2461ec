//! Publishing to the streams, and handing out consumers.

use crate::delivery::{BrokerError, Envelope};
use crate::known::KnownQueues;
use ferro_redis::RedisPool;
use ferro_tasks::TaskEnvelope;
use std::time::Duration;

use super::consumer::*;
use super::keys::*;

/// Publishes envelopes to a stream and hands out consumers of its group.
pub struct RedisBroker {
    url: String,
    pool: RedisPool,
    prefix: String,
    visibility: Duration,
    queues: KnownQueues,
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
            prefix: prefix.to_owned(),
            visibility,
            queues: KnownQueues::default(),
        })
    }

    /// Adds `queues` to the job queues this handle knows of (for depths
    /// and deleting the topology); the default queue is always one of them.
    pub fn with_queues(self, queues: &[String]) -> Self {
        for queue in queues {
            self.queues.note(queue);
        }
        self
    }

    fn stream_of(&self, envelope: &TaskEnvelope) -> String {
        self.queues.note(&envelope.queue);
        stream_key(&self.prefix, &envelope.queue, envelope.priority)
    }

    /// Appends the envelope to the stream; returns once Redis has it.
    pub async fn publish(&self, envelope: &TaskEnvelope) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        redis::cmd("XADD")
            .arg(self.stream_of(envelope))
            .arg("*")
            .arg(FIELD)
            .arg(envelope.to_bytes())
            .query_async::<String>(&mut conn)
            .await?;
        Ok(())
    }

    /// Appends every envelope in one pipeline (one round trip); one answer
    /// per envelope, in order.
    pub async fn publish_many(&self, envelopes: &[&TaskEnvelope]) -> Vec<Result<(), BrokerError>> {
        let appended = async {
            let mut conn = connection(&self.pool).await?;
            let mut pipe = redis::pipe();
            for envelope in envelopes {
                pipe.cmd("XADD")
                    .arg(self.stream_of(envelope))
                    .arg("*")
                    .arg(FIELD)
                    .arg(envelope.to_bytes());
            }
            pipe.query_async::<Vec<String>>(&mut conn).await?;
            Ok::<_, BrokerError>(())
        }
        .await;
        match appended {
            Ok(()) => envelopes.iter().map(|_| Ok(())).collect(),
            Err(err) => {
                let text = err.to_string();
                envelopes
                    .iter()
                    .map(|_| Err(BrokerError::Unavailable(text.clone())))
                    .collect()
            }
        }
    }

    /// Publishes to enter the stream after `delay`.
    pub async fn publish_delayed(
        &self,
        envelope: &TaskEnvelope,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        self.queues.note(&envelope.queue);
        let mut member = vec![b'0' + envelope.priority.min(PRIORITIES as u8 - 1)];
        member.extend(envelope.to_bytes());
        let mut conn = connection(&self.pool).await?;
        redis::Script::new(DELAY_SCRIPT)
            .key(delayed_key(&self.prefix, &envelope.queue))
            .arg(delay.as_millis() as u64)
            .arg(member)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// A consumer of job queue `queue` named `name` (unique per process)
    /// with at most `prefetch` entries read and not yet settled.
    pub fn consumer(&self, queue: &str, prefetch: u16, name: &str) -> RedisConsumer {
        self.queues.note(queue);
        RedisConsumer::new(
            self.url.clone(),
            self.pool.clone(),
            Keys::new(&self.prefix, queue),
            name,
            prefetch,
            self.visibility,
        )
    }

    pub async fn check(&self) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Entries in job queue `queue`'s streams (waiting or in flight).
    pub async fn depth(&self, queue: &str) -> Result<u32, BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let mut pipe = redis::pipe();
        for stream in Keys::new(&self.prefix, queue).streams {
            pipe.cmd("XLEN").arg(stream);
        }
        let lengths: Vec<u32> = pipe.query_async(&mut conn).await?;
        Ok(lengths.into_iter().sum())
    }

    /// Entries in all known job queues (waiting or in flight), and dead letters.
    pub async fn depths(&self) -> Result<(u32, u32), BrokerError> {
        let mut waiting = 0;
        for queue in self.queues.list() {
            waiting += self.depth(&queue).await?;
        }
        let mut conn = connection(&self.pool).await?;
        let dead: u32 = redis::cmd("XLEN")
            .arg(dead_key(&self.prefix))
            .query_async(&mut conn)
            .await?;
        Ok((waiting, dead))
    }

    /// Takes the oldest dead letter off its stream (operators, tests).
    pub async fn take_dead_letter(&self) -> Result<Option<Envelope>, BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(dead_key(&self.prefix))
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
            .arg(dead_key(&self.prefix))
            .arg(&entry.id)
            .query_async::<i64>(&mut conn)
            .await?;
        Ok(Some(TaskEnvelope::from_bytes(&payload(&entry))))
    }

    /// Deletes the streams and delayed sets of the known job queues, and
    /// the dead letters.
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        let mut conn = connection(&self.pool).await?;
        let mut doomed = vec![dead_key(&self.prefix)];
        for queue in self.queues.list() {
            let keys = Keys::new(&self.prefix, &queue);
            doomed.extend(keys.streams);
            doomed.push(keys.delayed);
        }
        redis::cmd("DEL")
            .arg(doomed)
            .query_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }
}
