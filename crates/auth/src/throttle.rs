//! Login throttling in Redis: failed attempts are counted per user name and
//! per client address in fixed windows; at the limit, further attempts are
//! refused (429 with `Retry-After`) until the window ends. A success clears
//! the user-name counter.

use std::time::Duration;

use ferro_redis::RedisPool as Pool;
use redis::AsyncCommands;

use crate::StoreError;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    pub per_user: u32,
    pub per_ip: u32,
    pub window: Duration,
}

#[derive(Clone)]
pub struct LoginThrottle {
    pool: Pool,
    prefix: String,
    limits: ThrottleLimits,
}

impl LoginThrottle {
    pub fn new(pool: Pool, prefix: impl Into<String>, limits: ThrottleLimits) -> Self {
        Self {
            pool,
            prefix: prefix.into(),
            limits,
        }
    }

    fn keys(&self, username: &str, ip: &str) -> (String, String) {
        (
            format!("{}throttle:user:{}", self.prefix, username.to_lowercase()),
            format!("{}throttle:ip:{ip}", self.prefix),
        )
    }

    /// `Some(retry_after)` when either counter is at its limit.
    pub async fn check(&self, username: &str, ip: &str) -> Result<Option<Duration>, StoreError> {
        let (ukey, ikey) = self.keys(username, ip);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let (u, i, uttl, ittl): (Option<u32>, Option<u32>, i64, i64) = redis::pipe()
            .get(&ukey)
            .get(&ikey)
            .ttl(&ukey)
            .ttl(&ikey)
            .query_async(&mut conn)
            .await?;
        let mut wait = None;
        if u.unwrap_or(0) >= self.limits.per_user {
            wait = Some(uttl.max(1));
        }
        if i.unwrap_or(0) >= self.limits.per_ip {
            wait = Some(wait.unwrap_or(0).max(ittl.max(1)));
        }
        Ok(wait.map(|s| Duration::from_secs(s as u64)))
    }

    /// Counts a failed attempt against both the user name and the address.
    pub async fn record_failure(&self, username: &str, ip: &str) -> Result<(), StoreError> {
        let (ukey, ikey) = self.keys(username, ip);
        let window = self.limits.window.as_secs() as i64;
        let mut conn = ferro_redis::connection(&self.pool).await?;
        redis::pipe()
            .atomic()
            .incr(&ukey, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&ukey)
            .arg(window)
            .arg("NX")
            .ignore()
            .incr(&ikey, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&ikey)
            .arg(window)
            .arg("NX")
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn record_success(&self, username: &str, ip: &str) -> Result<(), StoreError> {
        let (ukey, _) = self.keys(username, ip);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let _: () = conn.del(ukey).await?;
        Ok(())
    }
}
