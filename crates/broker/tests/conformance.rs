//! Both backends against the real RabbitMQ (127.0.0.1:5672) and Redis
//! (127.0.0.1:6379), through the one `Broker` interface. Each test uses its
//! own name prefix and deletes its queues or streams afterwards.

use std::time::{Duration, Instant};

use ferro_broker::Broker;
use ferro_tasks::TaskEnvelope;
use uuid::Uuid;

#[derive(Clone, Copy)]
enum Backend {
    RabbitMq,
    RedisStreams,
}

async fn broker(backend: Backend) -> Broker {
    ferro_telemetry::install_crypto_provider();
    let url = match backend {
        Backend::RabbitMq => "amqp://guest:guest@127.0.0.1:5672/%2f",
        Backend::RedisStreams => "redis://127.0.0.1:6379/0",
    };
    let prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let env = ferro_config::Env::from_pairs([("BROKER_URL", url), ("BROKER_PREFIX", &prefix)]);
    let broker = Broker::from_config(&ferro_config::BrokerConfig::from_env(&env).unwrap()).unwrap();
    // Declare the topology before anything is published.
    broker.depths().await.ok();
    broker
}

macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::broker(super::Backend::RabbitMq).await).await
            })*
        }
        mod redis_streams {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::broker(super::Backend::RedisStreams).await).await
            })*
        }
    };
}

on_both_brokers!(
    published_envelopes_are_delivered_and_acked,
    requeued_deliveries_come_back_marked_redelivered,
    dead_letters_land_in_the_dead_letter_queue,
    delayed_publishes_arrive_after_their_delay,
    prefetch_bounds_unacknowledged_deliveries,
    closing_hands_unsettled_deliveries_back,
);

fn envelope() -> TaskEnvelope {
    TaskEnvelope::new(Uuid::new_v4(), "noop", Uuid::new_v4(), None)
}

async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

async fn published_envelopes_are_delivered_and_acked(broker: Broker) {
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

async fn requeued_deliveries_come_back_marked_redelivered(broker: Broker) {
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

async fn dead_letters_land_in_the_dead_letter_queue(broker: Broker) {
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

async fn delayed_publishes_arrive_after_their_delay(broker: Broker) {
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

async fn prefetch_bounds_unacknowledged_deliveries(broker: Broker) {
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

async fn closing_hands_unsettled_deliveries_back(broker: Broker) {
    let (a, b) = (envelope(), envelope());
    broker.publish(&a).await.unwrap();
    broker.publish(&b).await.unwrap();
    let mut consumer = broker.consumer(2, "first");
    let first = within(5, consumer.next()).await;
    let second = within(5, consumer.next()).await;
    first.ack().await.unwrap();
    // The second is neither acked nor given back: its worker stops.
    drop(second);
    consumer.close().await;
    let mut next = broker.consumer(2, "next");
    let again = within(10, next.next()).await;
    assert_eq!(again.envelope.as_ref().unwrap().job_id, b.job_id);
    assert!(again.redelivered);
    again.ack().await.unwrap();
    next.close().await;
    broker.delete_topology().await.unwrap();
}
