//! The task broker: the one interface the api, the worker and the scheduler
//! use to move [`TaskEnvelope`]s.
//!
//! RabbitMQ backend (lapin), per name prefix `P` (so that stacks and tests can
//! share one RabbitMQ):
//!
//! - exchange `P.jobs` (direct, durable) and queue `P.jobs` (durable), bound
//!   with routing key `jobs`; messages are persistent and every publish waits
//!   for the broker's confirm;
//! - dead letters: queue `P.jobs` names `P.jobs.dead` (fanout) as its
//!   dead-letter exchange, bound to queue `P.jobs.dead`; a rejected delivery
//!   goes there;
//! - delayed retries: queues `P.jobs.retry.{N}s` with a fixed TTL of N seconds
//!   whose dead-letter exchange is `P.jobs`: a message published there comes
//!   back to `P.jobs` after N seconds. One queue per delay avoids head-of-line
//!   blocking, since RabbitMQ expires messages only at the head of a queue;
//! - consumers ack manually, with a prefetch equal to the worker's concurrency.
//!
//! Both publisher and consumer reconnect with backoff after the broker goes
//! away, and log when they do.
//!
//! The outbox relay ([`relay`]) publishes what transactions enqueued.
//!
//! The Redis Streams backend is not written yet (issue 4).

mod rabbit;
pub mod relay;

pub use rabbit::{Delivery, RETRY_DELAYS, RabbitBroker, RabbitConsumer};

use ferro_tasks::TaskEnvelope;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("the broker refused the message")]
    Nacked,
    #[error("broker protocol error: {0}")]
    Protocol(#[from] lapin::Error),
}

impl BrokerError {
    pub fn is_transient(&self) -> bool {
        !matches!(self, BrokerError::Nacked)
    }
}

/// What a consumer hands back for one delivery.
pub type Envelope = Result<TaskEnvelope, ferro_tasks::EnvelopeError>;
