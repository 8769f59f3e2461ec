//! What the broker's backends and its users share: the error, and what a
//! delivery carries.

use ferro_tasks::TaskEnvelope;

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
