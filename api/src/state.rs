use std::sync::Arc;

use ferro_auth::jwt::JwtKeys;
use ferro_auth::sessions::SessionStore;
use ferro_auth::throttle::{LoginThrottle, ThrottleLimits};
use ferro_db::Db;

use crate::config::ApiConfig;
use crate::metrics::Metrics;

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: ApiConfig,
    pub db: Db,
    pub redis: ferro_redis::RedisPool,
    pub sessions: SessionStore,
    pub throttle: LoginThrottle,
    pub jwt: JwtKeys,
    pub metrics: Metrics,
    /// Publishes jobs right after they commit (the outbox relay in the
    /// worker publishes whatever this could not).
    pub broker: Arc<ferro_broker::Broker>,
    /// Audit rows and outbox marks, coalesced across requests.
    pub after: crate::after_request::AfterRequest,
    /// Job submissions, written together ([`crate::submissions`]).
    pub submissions: crate::submissions::Submissions,
    /// Mutating requests, which run on their own tasks to the end even when
    /// their client goes away; [`crate::serve`] waits for them at shutdown.
    pub requests: tokio_util::task::TaskTracker,
    /// Cancelled when shutdown begins: event streams (SSE, WebSocket) end
    /// then, so that an open stream does not hold every shutdown for its
    /// whole grace period (the client reconnects, to another instance).
    pub stopping: tokio_util::sync::CancellationToken,
    /// Uploaded files' bytes (`UPLOADS_DIR`).
    pub files: ferro_files::Storage,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        config: ApiConfig,
        db: Db,
        redis: ferro_redis::RedisPool,
        broker: ferro_broker::Broker,
        metrics: Metrics,
    ) -> Self {
        let prefix = config.redis.key_prefix.clone();
        let sessions = SessionStore::new(
            redis.clone(),
            prefix.clone(),
            config.http.refresh_expires_in,
        );
        let throttle = LoginThrottle::new(
            redis.clone(),
            prefix,
            ThrottleLimits {
                per_user: config.http.login_max_failures_per_user,
                per_ip: config.http.login_max_failures_per_ip,
                window: config.http.login_throttle_window,
            },
        );
        let broker = Arc::new(broker);
        let jwt = JwtKeys::new(
            config.http.jwt_secret_bytes(),
            config.http.jwt_expires_in.as_secs() as i64,
        );
        let after = crate::after_request::AfterRequest::new(db.clone());
        let submissions =
            crate::submissions::Submissions::new(db.clone(), broker.clone(), after.clone());
        let files = ferro_files::Storage::new(&config.uploads);
        Self(Arc::new(Inner {
            files,
            config,
            db,
            redis,
            sessions,
            throttle,
            jwt,
            metrics,
            broker,
            after,
            submissions,
            requests: tokio_util::task::TaskTracker::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
        }))
    }
}
