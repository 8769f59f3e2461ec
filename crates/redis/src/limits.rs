//! Rate limits shared by every worker: one bucket per limited key
//! (`{prefix}rate:{key}`), checked and taken with GCRA in one script, and
//! the run-time overrides a platform administrator sets
//! (`{prefix}rate_limits`, a hash of `scope:name` to a limit or `none`).

use std::collections::HashMap;
use std::time::Duration;

use crate::{Error, RedisPool, connection};

/// GCRA over every bucket in KEYS at once, by Redis's clock. ARGV holds,
/// per key, its emission interval and its burst tolerance (both in
/// microseconds: the period over the count, and the period less one
/// interval, so that `count` may go at once and then one per interval, as
/// from a token bucket of `count` tokens). A job may go when every bucket
/// has room; then each bucket's theoretical arrival time moves on by its
/// interval. Otherwise nothing changes, and the answer is how long (µs)
/// until the fullest bucket has room.
const ACQUIRE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local after = tat + interval - burst - now
  if after > wait then wait = after end
  tats[i] = tat + interval
end
if wait > 0 then
  return wait
end
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i])
  redis.call('SET', key, tats[i], 'PX', math.ceil((tats[i] - now + burst) / 1000) + 1000)
end
return 0
";

/// Takes one job's room in every bucket of `limits` (key, count, period),
/// or answers how long to wait before trying again (nothing taken).
pub async fn acquire(
    pool: &RedisPool,
    prefix: &str,
    limits: &[(String, u32, Duration)],
) -> Result<Option<Duration>, Error> {
    if limits.is_empty() {
        return Ok(None);
    }
    let script = redis::Script::new(ACQUIRE_SCRIPT);
    let mut script = script.prepare_invoke();
    for (key, count, period) in limits {
        let period = period.as_micros() as u64;
        let interval = period / u64::from((*count).max(1));
        script
            .key(format!("{prefix}rate:{key}"))
            .arg(interval)
            .arg(period - interval);
    }
    let mut conn = connection(pool).await?;
    let wait: u64 = script.invoke_async(&mut conn).await?;
    Ok((wait > 0).then(|| Duration::from_micros(wait)))
}

fn overrides_key(prefix: &str) -> String {
    format!("{prefix}rate_limits")
}

/// The run-time overrides: `scope:name` to a limit or `none`.
pub async fn overrides(pool: &RedisPool, prefix: &str) -> Result<HashMap<String, String>, Error> {
    let mut conn = connection(pool).await?;
    Ok(redis::cmd("HGETALL")
        .arg(overrides_key(prefix))
        .query_async(&mut conn)
        .await?)
}

/// Sets (`Some`) or removes (`None`) the override of `field`.
pub async fn set_override(
    pool: &RedisPool,
    prefix: &str,
    field: &str,
    value: Option<&str>,
) -> Result<(), Error> {
    let mut conn = connection(pool).await?;
    let cmd = match value {
        Some(value) => {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(overrides_key(prefix)).arg(field).arg(value);
            cmd
        }
        None => {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(overrides_key(prefix)).arg(field);
            cmd
        }
    };
    cmd.query_async::<i64>(&mut conn).await?;
    Ok(())
}
