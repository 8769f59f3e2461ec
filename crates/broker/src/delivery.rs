//! What the broker's backends and its users share: the error, and one
//! delivery with its receipt. Each backend settles its own deliveries
//! through [`Receipt`], so this module needs neither of them.

use ferro_tasks::TaskEnvelope;
use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("the broker refused the message")]
    Nacked,
    #[error("broker protocol error: {0}")]
    Protocol(#[from] lapin::Error),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl From<ferro_redis::Error> for BrokerError {
    fn from(err: ferro_redis::Error) -> Self {
        match err {
            ferro_redis::Error::Command(err) => BrokerError::Redis(err),
            other => BrokerError::Unavailable(other.to_string()),
        }
    }
}

impl BrokerError {
    pub fn is_transient(&self) -> bool {
        !matches!(self, BrokerError::Nacked)
    }
}

/// What a consumer hands back for one delivery.
pub type Envelope = Result<TaskEnvelope, ferro_tasks::EnvelopeError>;

/// One delivery: the envelope (or why it could not be read) and its receipt.
pub struct Delivery {
    pub envelope: Envelope,
    /// The broker delivered it before (a worker died or gave it back).
    pub redelivered: bool,
    receipt: Box<dyn Receipt>,
}

/// How a backend settles one of its deliveries.
pub(crate) trait Receipt: Send + Sync {
    fn ack(&self) -> BoxFuture<'_, Result<(), BrokerError>>;
    fn requeue(&self) -> BoxFuture<'_, Result<(), BrokerError>>;
    fn dead_letter(&self) -> BoxFuture<'_, Result<(), BrokerError>>;
}

impl Delivery {
    pub(crate) fn new(envelope: Envelope, redelivered: bool, receipt: Box<dyn Receipt>) -> Self {
        Self {
            envelope,
            redelivered,
            receipt,
        }
    }

    /// Done with it (after its outcome committed): the broker forgets it.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.receipt.ack().await
    }

    /// Gives it back for another consumer (e.g. on shutdown).
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        self.receipt.requeue().await
    }

    /// Sends it to the dead letters.
    pub async fn dead_letter(&self) -> Result<(), BrokerError> {
        self.receipt.dead_letter().await
    }
}

/// One job queue's consumer, as [`crate::MergedConsumer`] drives it.
pub(crate) trait Source: Send {
    fn next(&mut self) -> BoxFuture<'_, Delivery>;
    fn close(&mut self) -> BoxFuture<'_, ()>;
}
