//! RabbitMQ-specific behaviour against the real RabbitMQ on 127.0.0.1:5672.

use std::process::Command;
use std::time::{Duration, Instant};

use ferro_broker::RabbitBroker;
use ferro_tasks::TaskEnvelope;
use uuid::Uuid;

fn envelope() -> TaskEnvelope {
    TaskEnvelope::new(Uuid::new_v4(), "noop", Uuid::new_v4(), None)
}

async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        status.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[tokio::test]
async fn publisher_and_consumer_reconnect_after_the_broker_drops_them() {
    ferro_telemetry::install_crypto_provider();
    // A vhost of its own, so that closing its connections touches no other test.
    let vhost = format!("ferro-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let broker = RabbitBroker::connect(&url, "reconnect").await.unwrap();
    let mut consumer = broker.consumer("default", 1, "test");
    broker.publish(&envelope()).await.unwrap();
    within(5, consumer.next()).await.ack().await.unwrap();

    rabbitmqctl(&[
        "close_all_connections",
        "-p",
        &vhost,
        "test: simulated outage",
    ]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The first publish after the outage may fail; the next one reconnects.
    let sent = envelope();
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.publish(&sent).await.is_err() {
        assert!(Instant::now() < deadline, "publisher did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = within(15, consumer.next()).await;
    assert_eq!(delivery.envelope.unwrap().job_id, sent.job_id);
    consumer.close().await;
    drop(broker);
    rabbitmqctl(&["delete_vhost", &vhost]);
}

#[tokio::test]
async fn a_publisher_that_cannot_reach_the_broker_backs_off() {
    ferro_telemetry::install_crypto_provider();
    let broker = RabbitBroker::new("amqp://guest:guest@127.0.0.1:1/%2f", "away");
    // The first publish tries to connect and fails.
    assert!(broker.publish(&envelope()).await.is_err());
    // The next ones, within the backoff, fail at once without trying.
    let err = broker.publish(&envelope()).await.unwrap_err().to_string();
    assert!(err.contains("tries again in"), "{err}");
    // After the backoff it tries again (and fails again, for longer).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let err = broker.publish(&envelope()).await.unwrap_err().to_string();
    assert!(!err.contains("tries again in"), "tried to connect: {err}");
    let err = broker.publish(&envelope()).await.unwrap_err().to_string();
    assert!(err.contains("tries again in"), "{err}");
    let waiting: u64 = err
        .split("tries again in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap();
    assert!((100..=200).contains(&waiting), "the delay doubled: {err}");
}
