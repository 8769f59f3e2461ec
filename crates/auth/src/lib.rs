//! Authentication building blocks shared by the services: argon2id password
//! hashing, HS256 access tokens, sessions in Redis with rotating refresh
//! tokens, login throttling, and the permission catalog.

pub mod jwt;
pub mod password;
mod permissions;
pub mod sessions;
pub mod throttle;

pub use permissions::Permission;

/// Errors talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis unavailable")]
    Unavailable(#[source] ferro_redis::Error),
    #[error("redis command failed")]
    Redis(#[source] ferro_redis::Error),
    #[error("corrupt session record: {0}")]
    Corrupt(&'static str),
}

impl From<ferro_redis::Error> for StoreError {
    fn from(err: ferro_redis::Error) -> Self {
        match err {
            ferro_redis::Error::Command(_) => StoreError::Redis(err),
            _ => StoreError::Unavailable(err),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        StoreError::Redis(ferro_redis::Error::Command(err))
    }
}

/// `n` random bytes from the OS, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random number generator is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `s`, as lowercase hex.
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
