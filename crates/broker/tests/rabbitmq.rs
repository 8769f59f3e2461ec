//! The RabbitMQ backend against the real RabbitMQ on 127.0.0.1:5672.
//! Each test uses its own name prefix (and deletes its queues afterwards).

use std::process::Command;
use std::time::{Duration, Instant};

use ferro_broker::RabbitBroker;
use ferro_tasks::TaskEnvelope;
use uuid::Uuid;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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
async fn published_envelopes_are_delivered_and_acked() {
    ferro_telemetry::install_crypto_provider();
    let broker = RabbitBroker::connect(URL, &prefix()).await.unwrap();
    let sent = envelope();
    broker.publish(&sent).await.unwrap();
    let mut consumer = broker.consumer(4, "test");
    let delivery = within(5, consumer.next()).await;
    assert_eq!(delivery.envelope.as_ref().unwrap(), &sent);
    assert!(!delivery.redelivered);
    delivery.ack().await.unwrap();
    consumer.close().await;
    assert_eq!(broker.depths().await.unwrap(), (0, 0));
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn requeued_deliveries_come_back_marked_redelivered() {
    ferro_telemetry::install_crypto_provider();
    let broker = RabbitBroker::connect(URL, &prefix()).await.unwrap();
    let sent = envelope();
    broker.publish(&sent).await.unwrap();
    let mut consumer = broker.consumer(1, "test");
    within(5, consumer.next()).await.requeue().await.unwrap();
    let again = within(5, consumer.next()).await;
    assert!(again.redelivered);
    assert_eq!(again.envelope.unwrap().job_id, sent.job_id);
    consumer.close().await;
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn dead_letters_land_in_the_dead_letter_queue() {
    ferro_telemetry::install_crypto_provider();
    let broker = RabbitBroker::connect(URL, &prefix()).await.unwrap();
    let sent = envelope();
    broker.publish(&sent).await.unwrap();
    let mut consumer = broker.consumer(1, "test");
    within(5, consumer.next())
        .await
        .dead_letter()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let dead = loop {
        if let Some(dead) = broker.take_dead_letter().await.unwrap() {
            break dead;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.unwrap().job_id, sent.job_id);
    consumer.close().await;
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn delayed_publishes_arrive_after_their_delay() {
    ferro_telemetry::install_crypto_provider();
    let broker = RabbitBroker::connect(URL, &prefix()).await.unwrap();
    let sent = envelope().next_attempt();
    let started = Instant::now();
    broker
        .publish_delayed(&sent, Duration::from_millis(800))
        .await
        .unwrap();
    let mut consumer = broker.consumer(1, "test");
    let delivery = within(10, consumer.next()).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "arrived after {waited:?}"
    );
    assert_eq!(delivery.envelope.as_ref().unwrap().attempt, 2);
    delivery.ack().await.unwrap();
    consumer.close().await;
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn prefetch_bounds_unacknowledged_deliveries() {
    ferro_telemetry::install_crypto_provider();
    let broker = RabbitBroker::connect(URL, &prefix()).await.unwrap();
    for _ in 0..5 {
        broker.publish(&envelope()).await.unwrap();
    }
    let mut consumer = broker.consumer(2, "test");
    let first = within(5, consumer.next()).await;
    let second = within(5, consumer.next()).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(400), consumer.next())
            .await
            .is_err(),
        "a third delivery arrived with prefetch 2"
    );
    first.ack().await.unwrap();
    let third = within(5, consumer.next()).await;
    second.ack().await.unwrap();
    third.ack().await.unwrap();
    consumer.close().await;
    broker.delete_topology().await.unwrap();
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
    let mut consumer = broker.consumer(1, "test");
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
