//! What platform administrators tell the workers through Redis, and the
//! workers read every second: which job queues are paused
//! (`{prefix}queues:paused`, a set), and per worker a request to shut
//! down or to run at another concurrency (`{prefix}worker-control:{id}`,
//! a hash that lives an hour).

use std::collections::{BTreeSet, HashMap};

use crate::{Error, RedisPool, connection};

/// How long a worker's control hash outlives its last change: a worker
/// that never reads it (gone) leaves nothing behind for long.
const CONTROL_TTL_SECS: i64 = 3600;

fn paused_key(prefix: &str) -> String {
    format!("{prefix}queues:paused")
}

fn control_key(prefix: &str, worker_id: &str) -> String {
    format!("{prefix}worker-control:{worker_id}")
}

/// Pauses (`true`) or resumes a queue for every worker.
pub async fn set_paused(
    pool: &RedisPool,
    prefix: &str,
    queue: &str,
    paused: bool,
) -> Result<(), Error> {
    let mut conn = connection(pool).await?;
    let command = if paused { "SADD" } else { "SREM" };
    Ok(redis::cmd(command)
        .arg(paused_key(prefix))
        .arg(queue)
        .query_async::<()>(&mut conn)
        .await?)
}

/// The paused queues.
pub async fn paused(pool: &RedisPool, prefix: &str) -> Result<BTreeSet<String>, Error> {
    let mut conn = connection(pool).await?;
    Ok(redis::cmd("SMEMBERS")
        .arg(paused_key(prefix))
        .query_async(&mut conn)
        .await?)
}

/// What a worker was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    pub shutdown: bool,
    pub concurrency: Option<usize>,
}

/// Asks worker `worker_id` to shut down gracefully.
pub async fn request_shutdown(
    pool: &RedisPool,
    prefix: &str,
    worker_id: &str,
) -> Result<(), Error> {
    write(pool, prefix, worker_id, "shutdown", "1").await
}

/// Asks worker `worker_id` to run at most `concurrency` jobs at once.
pub async fn request_concurrency(
    pool: &RedisPool,
    prefix: &str,
    worker_id: &str,
    concurrency: usize,
) -> Result<(), Error> {
    write(
        pool,
        prefix,
        worker_id,
        "concurrency",
        &concurrency.to_string(),
    )
    .await
}

async fn write(
    pool: &RedisPool,
    prefix: &str,
    worker_id: &str,
    field: &str,
    value: &str,
) -> Result<(), Error> {
    let key = control_key(prefix, worker_id);
    let mut conn = connection(pool).await?;
    Ok(redis::pipe()
        .hset(&key, field, value)
        .ignore()
        .expire(&key, CONTROL_TTL_SECS)
        .ignore()
        .query_async::<()>(&mut conn)
        .await?)
}

/// What worker `worker_id` was asked, and the paused queues, in one round
/// trip.
pub async fn read(
    pool: &RedisPool,
    prefix: &str,
    worker_id: &str,
) -> Result<(Control, BTreeSet<String>), Error> {
    let mut conn = connection(pool).await?;
    let (fields, paused): (HashMap<String, String>, BTreeSet<String>) = redis::pipe()
        .hgetall(control_key(prefix, worker_id))
        .smembers(paused_key(prefix))
        .query_async(&mut conn)
        .await?;
    let control = Control {
        shutdown: fields.get("shutdown").is_some_and(|v| v == "1"),
        concurrency: fields.get("concurrency").and_then(|v| v.parse().ok()),
    };
    Ok((control, paused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pauses_and_requests_reach_the_worker_they_name() {
        let pool = crate::create_pool(
            "redis://127.0.0.1:6379/0",
            2,
            std::time::Duration::from_secs(2),
        )
        .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("control-test:{}-{nanos}:", std::process::id());
        set_paused(&pool, &prefix, "snmp", true).await.unwrap();
        set_paused(&pool, &prefix, "email", true).await.unwrap();
        set_paused(&pool, &prefix, "email", false).await.unwrap();
        request_concurrency(&pool, &prefix, "host:1", 3)
            .await
            .unwrap();
        request_shutdown(&pool, &prefix, "host:2").await.unwrap();
        let (one, paused) = read(&pool, &prefix, "host:1").await.unwrap();
        assert_eq!(paused, BTreeSet::from(["snmp".to_owned()]));
        assert_eq!(
            one,
            Control {
                shutdown: false,
                concurrency: Some(3)
            }
        );
        let (two, _) = read(&pool, &prefix, "host:2").await.unwrap();
        assert!(two.shutdown && two.concurrency.is_none());
        let (none, _) = read(&pool, &prefix, "host:3").await.unwrap();
        assert_eq!(none, Control::default());
        let mut conn = connection(&pool).await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
