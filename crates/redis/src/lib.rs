//! The Redis pool every service uses.
//!
//! A deadpool pool whose objects are redis's `ConnectionManager`s:
//! multiplexed connections that reconnect by themselves after Redis restarts.
//! Because they heal themselves, a checkout needs no health check, unlike
//! deadpool-redis's default manager, which sends `UNWATCH` + `PING` (one
//! extra round trip) on every `get()`. Commands are bounded by a response
//! timeout, so a dead Redis gives an error in seconds, not a hang.

pub mod control;
pub mod heartbeat;
pub mod limits;

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use redis::aio::ConnectionManager as Connection;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `REDIS_URL` is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] RedisError),
    /// The pool could not be built (no Tokio runtime).
    #[error("cannot build the Redis pool: {0}")]
    Build(#[from] managed::BuildError),
    /// No connection within the timeout: Redis is down or unreachable.
    #[error("Redis unavailable: {0}")]
    Unavailable(#[from] managed::PoolError<RedisError>),
    /// A command failed (or timed out) on an open connection.
    #[error("Redis command failed: {0}")]
    Command(#[from] RedisError),
}

pub type RedisPool = managed::Pool<RedisManager>;

pub struct RedisManager {
    client: redis::Client,
    timeout: Duration,
}

impl managed::Manager for RedisManager {
    type Type = ConnectionManager;
    type Error = RedisError;

    async fn create(&self) -> Result<ConnectionManager, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        ConnectionManager::new_with_config(self.client.clone(), config).await
    }

    async fn recycle(&self, _: &mut ConnectionManager, _: &Metrics) -> RecycleResult<RedisError> {
        // The connection manager reconnects on its own; nothing to check.
        Ok(())
    }
}

/// Builds the pool (connects lazily, on first use).
pub fn create_pool(url: &str, max_size: usize, timeout: Duration) -> Result<RedisPool, Error> {
    let client = redis::Client::open(url).map_err(Error::InvalidUrl)?;
    Ok(managed::Pool::builder(RedisManager { client, timeout })
        .max_size(max_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// A connection from the pool. `ConnectionManager` is a cheap handle onto a
/// multiplexed connection, so it is cloned out and the pool slot returned at once.
pub async fn connection(pool: &RedisPool) -> Result<Connection, Error> {
    Ok(pool.get().await?.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn talks_to_redis_and_fails_fast_when_it_is_down() {
        let pool = create_pool("redis://127.0.0.1:6379/0", 2, Duration::from_secs(2)).unwrap();
        let mut conn = connection(&pool).await.unwrap();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(pong, "PONG");

        let dead = create_pool("redis://127.0.0.1:1/0", 2, Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        assert!(connection(&dead).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// Publishes `payload` on a pub/sub channel; returns how many subscribers got it.
pub async fn publish(pool: &RedisPool, channel: &str, payload: &str) -> Result<i64, Error> {
    let mut conn = connection(pool).await?;
    Ok(redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut conn)
        .await?)
}

/// Publishes every `(channel, payload)` in one pipeline, in order (one
/// round trip for all of them).
pub async fn publish_many(pool: &RedisPool, messages: &[(String, String)]) -> Result<(), Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut conn = connection(pool).await?;
    let mut pipe = redis::pipe();
    for (channel, payload) in messages {
        pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
    }
    Ok(pipe.query_async::<()>(&mut conn).await?)
}

#[cfg(test)]
mod pubsub_tests {
    use std::time::Duration;

    #[tokio::test]
    async fn a_subscriber_receives_what_is_published() {
        use futures_util::StreamExt;
        let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        let channel = format!("ferro-redis-test:{}", std::process::id());
        pubsub.subscribe(&channel).await.unwrap();
        let (_sink, mut stream) = pubsub.split();
        let pool =
            super::create_pool("redis://127.0.0.1:6379/0", 1, Duration::from_secs(2)).unwrap();
        let receivers = super::publish(&pool, &channel, "hello").await.unwrap();
        assert_eq!(receivers, 1);
        let msg = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("a message")
            .unwrap();
        assert_eq!(msg.get_payload::<String>().unwrap(), "hello");

        let many: Vec<(String, String)> = (1..=3)
            .map(|n| (channel.clone(), format!("message {n}")))
            .collect();
        super::publish_many(&pool, &many).await.unwrap();
        for n in 1..=3 {
            let msg = tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .expect("a message")
                .unwrap();
            assert_eq!(msg.get_payload::<String>().unwrap(), format!("message {n}"));
        }
    }
}

/// A connection of its own (not from a pool), for a client that blocks on
/// the server (`XREADGROUP ... BLOCK`, say) and so must not share its
/// multiplexed connection. `response_timeout` must exceed the longest block.
pub async fn dedicated(url: &str, response_timeout: Duration) -> Result<Connection, Error> {
    let client = redis::Client::open(url).map_err(Error::InvalidUrl)?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}
