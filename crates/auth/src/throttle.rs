//! Login throttling in Redis: attempts are counted per user name and per
//! client address in fixed windows, atomically and before the password is
//! checked; past the limit, attempts are refused (429 with `Retry-After`)
//! until the window ends. A success clears the user-name counter and takes
//! its own attempt off the address counter, so only failures accumulate.

use std::time::Duration;

use ferro_redis::RedisPool as Pool;

use crate::StoreError;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    pub per_user: u32,
    pub per_ip: u32,
    pub window: Duration,
}

const ATTEMPT: &str = r#"
local u = redis.call('INCR', KEYS[1])
if u == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local i = redis.call('INCR', KEYS[2])
if i == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return {u, i, redis.call('TTL', KEYS[1]), redis.call('TTL', KEYS[2])}
"#;

const SUCCESS: &str = r#"
redis.call('DEL', KEYS[1])
local i = tonumber(redis.call('GET', KEYS[2]) or '0')
if i > 0 then redis.call('DECR', KEYS[2]) end
"#;

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
            // User names are ASCII and matched without regard to ASCII case.
            format!(
                "{}throttle:user:{}",
                self.prefix,
                username.to_ascii_lowercase()
            ),
            format!("{}throttle:ip:{ip}", self.prefix),
        )
    }

    /// Counts this attempt against the user name and the address, atomically
    /// and before the password is checked (so parallel guesses cannot all
    /// slip under the limit). `Some(retry_after)` when either is over its limit.
    pub async fn attempt(&self, username: &str, ip: &str) -> Result<Option<Duration>, StoreError> {
        let (ukey, ikey) = self.keys(username, ip);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let (u, i, uttl, ittl): (u32, u32, i64, i64) = redis::Script::new(ATTEMPT)
            .key(&ukey)
            .key(&ikey)
            .arg(self.limits.window.as_secs())
            .invoke_async(&mut conn)
            .await?;
        let mut wait: Option<i64> = None;
        if u > self.limits.per_user {
            wait = Some(uttl.max(1));
        }
        if i > self.limits.per_ip {
            wait = Some(wait.unwrap_or(0).max(ittl.max(1)));
        }
        Ok(wait.map(|s| Duration::from_secs(s as u64)))
    }

    /// A successful login: its attempt no longer counts against the user
    /// name or the address.
    pub async fn record_success(&self, username: &str, ip: &str) -> Result<(), StoreError> {
        let (ukey, ikey) = self.keys(username, ip);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        redis::Script::new(SUCCESS)
            .key(&ukey)
            .key(&ikey)
            .invoke_async::<()>(&mut conn)
            .await?;
        Ok(())
    }
}
