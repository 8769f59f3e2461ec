//! Publishing to the streams, and handing out consumers.

use crate::delivery::{BrokerError, Envelope};
use ferro_redis::RedisPool;
use ferro_tasks::TaskEnvelope;
use std::time::Duration;

use super::consumer::*;
use super::keys::*;

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

    /// Appends every envelope in one pipeline (one round trip); one answer
    /// per envelope, in order.
    pub async fn publish_many(&self, envelopes: &[&TaskEnvelope]) -> Vec<Result<(), BrokerError>> {
        let appended = async {
            let mut conn = connection(&self.pool).await?;
            let mut pipe = redis::pipe();
            for envelope in envelopes {
                pipe.cmd("XADD")
                    .arg(&self.keys.stream)
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
        RedisConsumer::new(
            self.url.clone(),
            self.pool.clone(),
            self.keys.clone(),
            name,
            prefetch,
            self.visibility,
        )
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
