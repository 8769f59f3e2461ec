//! Heartbeats of the background services in Redis: one hash per process
//! (`{prefix}workers:{host}:{pid}`, `{prefix}schedulers:{host}:{pid}`) with
//! a `beat` field (Unix seconds) and a TTL, rewritten every few seconds and
//! deleted on a clean exit. `worker ping` and `scheduler ping` read them for
//! container health checks, the api's monitor lists them.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Error, RedisPool, connection};

/// Writes `key` with the fields `fields()` returns (plus `beat`) every
/// `every`, expiring after `ttl`, until `stop`; then deletes it.
pub async fn run(
    pool: RedisPool,
    key: String,
    every: Duration,
    ttl: Duration,
    fields: impl Fn() -> Vec<(&'static str, String)>,
    stop: CancellationToken,
) {
    loop {
        let mut values = fields();
        values.push(("beat", unix_now().to_string()));
        if let Err(err) = write(&pool, &key, &values, ttl).await {
            tracing::warn!(error = %err, "could not write the heartbeat");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    if let Ok(mut conn) = connection(&pool).await {
        let _: Result<(), _> = redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
    }
}

async fn write(
    pool: &RedisPool,
    key: &str,
    values: &[(&'static str, String)],
    ttl: Duration,
) -> Result<(), Error> {
    let mut conn = connection(pool).await?;
    Ok(redis::pipe()
        .hset_multiple(key, values)
        .ignore()
        .expire(key, ttl.as_secs() as i64)
        .ignore()
        .query_async::<()>(&mut conn)
        .await?)
}

/// Every heartbeat whose key matches `pattern` (a `SCAN MATCH` glob), as
/// field maps with the key under `key`, sorted by key.
pub async fn list(pool: &RedisPool, pattern: &str) -> Result<Vec<HashMap<String, String>>, Error> {
    let mut conn = connection(pool).await?;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    let mut beats = Vec::with_capacity(keys.len());
    for key in keys {
        let mut fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        // Expired between SCAN and HGETALL: gone.
        if fields.is_empty() {
            continue;
        }
        fields.insert("key".into(), key);
        beats.push(fields);
    }
    Ok(beats)
}

/// True if a heartbeat matching `pattern` beat within `fresh`.
pub async fn any_fresh(pool: &RedisPool, pattern: &str, fresh: Duration) -> Result<bool, Error> {
    let now = unix_now();
    Ok(list(pool, pattern).await?.iter().any(|beat| {
        beat.get("beat")
            .and_then(|b| b.parse::<i64>().ok())
            .is_some_and(|b| now - b <= fresh.as_secs() as i64)
    }))
}

/// This machine's host name, as heartbeats record it (`/etc/hostname`; in a
/// container, the container's).
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Unix seconds now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beats_are_listed_while_fresh_and_gone_after_stop() {
        let pool =
            crate::create_pool("redis://127.0.0.1:6379/0", 2, Duration::from_secs(2)).unwrap();
        let prefix = format!("ferro-hb-test-{}:", uuid_like());
        let key = format!("{prefix}workers:host-a:1");
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            pool.clone(),
            key.clone(),
            Duration::from_millis(100),
            Duration::from_secs(5),
            || vec![("active", "2".to_owned())],
            stop.clone(),
        ));
        let pattern = format!("{prefix}workers:host-a:*");
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !any_fresh(&pool, &pattern, Duration::from_secs(15))
            .await
            .unwrap()
        {
            assert!(std::time::Instant::now() < deadline, "no heartbeat");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let beats = list(&pool, &format!("{prefix}workers:*")).await.unwrap();
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[0]["active"], "2");
        assert_eq!(beats[0]["key"], key);
        assert!(
            !any_fresh(
                &pool,
                &format!("{prefix}workers:host-b:*"),
                Duration::from_secs(15)
            )
            .await
            .unwrap()
        );

        stop.cancel();
        task.await.unwrap();
        assert!(
            list(&pool, &pattern).await.unwrap().is_empty(),
            "deleted on stop"
        );
    }

    fn uuid_like() -> String {
        format!("{}-{}", std::process::id(), unix_now())
    }
}
