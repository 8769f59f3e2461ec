//! Redis Streams specifics: taking over what a dead consumer left, never
//! taking what a live one holds, and surviving a restart of Redis itself (a
//! private `redis-server` with an append-only file, on a port of its own).

use std::time::{Duration, Instant};

use ferro_broker::RedisBroker;
use ferro_tasks::TaskEnvelope;
use uuid::Uuid;

const URL: &str = "redis://127.0.0.1:6379/0";

fn prefix() -> String {
    format!("test-{}", &Uuid::new_v4().simple().to_string()[..12])
}

fn envelope() -> TaskEnvelope {
    TaskEnvelope::new(Uuid::new_v4(), "noop", Uuid::new_v4(), None)
}

async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn what_a_dead_consumer_read_is_taken_over_after_the_visibility_timeout() {
    let broker = RedisBroker::new(URL, &prefix(), Duration::from_secs(2)).unwrap();
    let sent = envelope();
    broker.publish(&sent).await.unwrap();
    let mut dying = broker.consumer("default", 1, "dying");
    let delivery = within(5, dying.next()).await;
    assert!(!delivery.redelivered);
    // The process dies: no ack, no close.
    drop(delivery);
    drop(dying);
    let started = Instant::now();
    let mut heir = broker.consumer("default", 1, "heir");
    let again = within(10, heir.next()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "taken over after {:?}, before the visibility timeout",
        started.elapsed()
    );
    assert!(again.redelivered);
    assert_eq!(again.envelope.as_ref().unwrap().job_id, sent.job_id);
    again.ack().await.unwrap();
    heir.close().await;
    assert_eq!(broker.depths().await.unwrap(), (0, 0));
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn a_live_consumer_keeps_what_it_holds_past_the_visibility_timeout() {
    let broker = RedisBroker::new(URL, &prefix(), Duration::from_secs(2)).unwrap();
    broker.publish(&envelope()).await.unwrap();
    let mut holder = broker.consumer("default", 1, "holder");
    let held = within(5, holder.next()).await;
    let mut other = broker.consumer("default", 1, "other");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), other.next())
            .await
            .is_err(),
        "another consumer took an entry whose consumer is alive"
    );
    held.ack().await.unwrap();
    holder.close().await;
    other.close().await;
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn publisher_and_consumer_come_back_after_redis_restarts() {
    let mut redis = ferro_testkit::RedisServer::start();
    let broker = RedisBroker::new(&redis.url(), "restart", Duration::from_secs(30)).unwrap();
    let mut consumer = broker.consumer("default", 4, "survivor");
    broker.publish(&envelope()).await.unwrap();
    within(5, consumer.next()).await.ack().await.unwrap();

    // Published, not yet read, when Redis goes down hard.
    let waiting = envelope();
    broker.publish(&waiting).await.unwrap();
    redis.restart(Duration::from_millis(500));

    let got = within(20, consumer.next()).await;
    assert_eq!(got.envelope.as_ref().unwrap().job_id, waiting.job_id);
    got.ack().await.unwrap();

    let after = envelope();
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.publish(&after).await.is_err() {
        assert!(Instant::now() < deadline, "publisher did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = within(10, consumer.next()).await;
    assert_eq!(got.envelope.as_ref().unwrap().job_id, after.job_id);
    got.ack().await.unwrap();
    consumer.close().await;
}
