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
    higher_priorities_overtake_a_backlog,
    queues_are_routed_and_consumed_apart,
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

fn on(queue: &str, priority: u8) -> TaskEnvelope {
    let mut envelope = envelope();
    envelope.queue = queue.to_owned();
    envelope.priority = priority;
    envelope
}

async fn higher_priorities_overtake_a_backlog(broker: Broker) {
    for _ in 0..20 {
        broker.publish(&on("default", 0)).await.unwrap();
    }
    let (urgent, middling) = (on("default", 9), on("default", 5));
    broker.publish(&middling).await.unwrap();
    broker.publish(&urgent).await.unwrap();
    // A retry keeps its priority through the delay.
    let retried = on("default", 7).next_attempt();
    broker
        .publish_delayed(&retried, Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut consumer = broker.consumer(1, "test");
    let mut order = Vec::new();
    for _ in 0..23 {
        let delivery = within(5, consumer.next()).await;
        order.push(delivery.envelope.as_ref().unwrap().job_id);
        delivery.ack().await.unwrap();
    }
    assert_eq!(
        &order[..3],
        &[urgent.job_id, retried.job_id, middling.job_id],
        "the backlog of priority 0 was not overtaken"
    );
    consumer.close().await;
    assert_eq!(broker.depths().await.unwrap(), (0, 0));
    broker.delete_topology().await.unwrap();
}

async fn queues_are_routed_and_consumed_apart(broker: Broker) {
    let alpha: Vec<_> = (0..3).map(|_| on("alpha", 0)).collect();
    let beta: Vec<_> = (0..3).map(|_| on("beta", 2)).collect();
    for envelope in alpha.iter().chain(&beta) {
        broker.publish(envelope).await.unwrap();
    }
    // A consumer of `alpha` sees only alpha's jobs.
    let mut only_alpha = broker.queue_consumer("alpha", 10, "alpha-only");
    for _ in 0..3 {
        let delivery = within(5, only_alpha.next()).await;
        assert_eq!(delivery.envelope.as_ref().unwrap().queue, "alpha");
        delivery.requeue().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    only_alpha.close().await;
    assert_eq!(broker.depth("beta").await.unwrap(), 3);

    // One consumer of both queues, each with a prefetch of 1: one delivery
    // from each, and no third while both are unsettled.
    let queues = [("alpha".to_owned(), 1), ("beta".to_owned(), 1)];
    let mut both = broker.consumer_of(&queues, "both", None);
    let first = within(5, both.next()).await;
    let second = within(5, both.next()).await;
    let mut seen: Vec<String> = [&first, &second]
        .iter()
        .map(|d| d.envelope.as_ref().unwrap().queue.clone())
        .collect();
    seen.sort();
    assert_eq!(seen, ["alpha", "beta"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(400), both.next())
            .await
            .is_err(),
        "a third delivery arrived with a prefetch of 1 per queue"
    );
    first.ack().await.unwrap();
    second.ack().await.unwrap();
    let mut left = 4;
    while left > 0 {
        within(5, both.next()).await.ack().await.unwrap();
        left -= 1;
    }
    both.close().await;
    assert_eq!(broker.depth("alpha").await.unwrap(), 0);
    assert_eq!(broker.depths().await.unwrap(), (0, 0));
    broker.delete_topology().await.unwrap();
}
