//! Leader election by a PostgreSQL advisory lock held on a connection of its
//! own: the lock lives exactly as long as that session, so a leader that dies
//! (even by SIGKILL) releases it as soon as the server sees the connection
//! close, and a standby's next try takes it.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::DbError;

/// How long a lock query may take before the session is presumed lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct LeaderLock {
    options: PgConnectOptions,
    key: i64,
    conn: Option<PgConnection>,
    leading: bool,
}

impl LeaderLock {
    /// A lock named by `key` (one key per kind of singleton).
    pub fn new(options: PgConnectOptions, key: i64) -> Self {
        Self {
            options,
            key,
            conn: None,
            leading: false,
        }
    }

    pub fn is_leading(&self) -> bool {
        self.leading
    }

    /// Leader: checks that the session (and so the lock) is still there.
    /// Standby: tries to take the lock. Returns whether this process leads.
    /// A lost session ends leadership at once.
    pub async fn refresh(&mut self) -> Result<bool, DbError> {
        if self.conn.is_none() {
            self.leading = false;
            let conn =
                tokio::time::timeout(CHECK_TIMEOUT, PgConnection::connect_with(&self.options))
                    .await
                    .map_err(|_| DbError::Other(sqlx::Error::PoolTimedOut))??;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("just connected");
        let query = if self.leading {
            // The session still exists, so the lock is still ours.
            sqlx::query_scalar::<_, bool>("SELECT true")
        } else {
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)").bind(self.key)
        };
        match tokio::time::timeout(CHECK_TIMEOUT, query.fetch_one(&mut *conn)).await {
            Ok(Ok(got)) => {
                self.leading = got;
                Ok(got)
            }
            Ok(Err(err)) => {
                self.lose();
                Err(err.into())
            }
            Err(_) => {
                self.lose();
                Err(DbError::Other(sqlx::Error::PoolTimedOut))
            }
        }
    }

    fn lose(&mut self) {
        self.leading = false;
        self.conn = None;
    }

    /// Gives the lock up (on shutdown), so a standby takes over at once.
    pub async fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
        self.leading = false;
    }
}
