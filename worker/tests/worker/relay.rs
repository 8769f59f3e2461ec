//! The outbox relay against the real PostgreSQL and RabbitMQ.

use std::time::Duration;

use ferro_broker::{Broker, RabbitBroker};
use ferro_db::TenantCtx;
use ferro_tasks::JobKind;
use ferro_tasks::jobs::{self, Enqueued, NewJob};
use ferro_testkit::TestDb;
use uuid::Uuid;
use worker::relay;

/// When the relay checks what it published (longer than any test here).
const REDELIVER_AFTER: Duration = Duration::from_secs(60);

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn enqueue_noops(db: &TestDb, n: usize) -> Vec<Uuid> {
    enqueue_noops_relayed_after(db, n, Duration::ZERO).await
}

async fn enqueue_noops_relayed_after(db: &TestDb, n: usize, relay_after: Duration) -> Vec<Uuid> {
    let app = db.app().await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut tx = app
            .begin(TenantCtx::new(db.default_tenant(), None))
            .await
            .unwrap();
        let new = NewJob {
            kind: JobKind::Noop,
            device_id: None,
            params: serde_json::json!({}),
            idempotency_key: None,
            schedule_id: None,
            scheduled_for: None,
            relay_after,
            trace: None,
            deadline: None,
            options: Default::default(),
            step: None,
        };
        match jobs::enqueue(&mut tx, new).await.unwrap() {
            Enqueued::Created { job, .. } => ids.push(job.id),
            other => panic!("{other:?}"),
        }
        tx.commit().await.unwrap();
    }
    ids
}

#[tokio::test]
async fn pending_records_are_published_once() {
    ferro_telemetry::install_crypto_provider();
    let db = TestDb::new().await;
    let ids = enqueue_noops(&db, 3).await;
    let prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let broker = Broker::RabbitMq(RabbitBroker::connect(URL, &prefix).await.unwrap());
    let app = db.app().await;

    assert_eq!(
        relay::relay_once(&app, &broker, 100, REDELIVER_AFTER)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        relay::relay_once(&app, &broker, 100, REDELIVER_AFTER)
            .await
            .unwrap(),
        0,
        "nothing twice"
    );
    let mut consumer = broker.consumer(10, "test");
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .unwrap();
        got.push(d.envelope.as_ref().unwrap().job_id);
        d.ack().await.unwrap();
    }
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    let owner = db.owner().await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE published_at IS NULL")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(pending, 0);
    consumer.close().await;
    broker.delete_topology().await.unwrap();
}

/// A record whose writer publishes it itself (the api, the scheduler) is not
/// the relay's until the writer had its chance, so the relay does not send a
/// second copy of a job whose mark is on its way; then it is.
#[tokio::test]
async fn records_their_writer_publishes_wait_before_the_relay_takes_them() {
    ferro_telemetry::install_crypto_provider();
    let db = TestDb::new().await;
    enqueue_noops_relayed_after(&db, 2, jobs::PUBLISHED_BY_WRITER).await;
    let prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let broker = Broker::RabbitMq(RabbitBroker::connect(URL, &prefix).await.unwrap());
    let app = db.app().await;
    assert_eq!(
        relay::relay_once(&app, &broker, 100, REDELIVER_AFTER)
            .await
            .unwrap(),
        0
    );

    // The writer's fast path failed (or it died): once the time is up, the
    // relay publishes the records.
    let owner = db.owner().await;
    sqlx::query("UPDATE job_outbox SET available_at = now() - interval '1 second'")
        .execute(&owner)
        .await
        .unwrap();
    assert_eq!(
        relay::relay_once(&app, &broker, 100, REDELIVER_AFTER)
            .await
            .unwrap(),
        2
    );
    broker.delete_topology().await.unwrap();
}

#[tokio::test]
async fn concurrent_relays_never_claim_the_same_record() {
    ferro_telemetry::install_crypto_provider();
    let db = TestDb::new().await;
    enqueue_noops(&db, 40).await;
    let prefix = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let (a, b) = (
        Broker::RabbitMq(RabbitBroker::new(URL, &prefix)),
        Broker::RabbitMq(RabbitBroker::new(URL, &prefix)),
    );
    let (app_a, app_b) = (db.app().await, db.app().await);
    let (na, nb) = tokio::join!(
        async {
            relay::relay_once(&app_a, &a, 25, REDELIVER_AFTER)
                .await
                .unwrap()
                + relay::relay_once(&app_a, &a, 25, REDELIVER_AFTER)
                    .await
                    .unwrap()
        },
        async {
            relay::relay_once(&app_b, &b, 25, REDELIVER_AFTER)
                .await
                .unwrap()
                + relay::relay_once(&app_b, &b, 25, REDELIVER_AFTER)
                    .await
                    .unwrap()
        },
    );
    assert_eq!(na + nb, 40);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.depths().await.unwrap(),
        (40, 0),
        "each record published exactly once"
    );
    a.delete_topology().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_leaves_records_pending_with_the_reason() {
    ferro_telemetry::install_crypto_provider();
    let db = TestDb::new().await;
    enqueue_noops(&db, 2).await;
    let dead = Broker::RabbitMq(RabbitBroker::new(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "nowhere",
    ));
    let app = db.app().await;
    assert_eq!(
        relay::relay_once(&app, &dead, 100, REDELIVER_AFTER)
            .await
            .unwrap(),
        0
    );
    let owner = db.owner().await;
    let (pending, with_error): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FILTER (WHERE last_error IS NOT NULL) FROM job_outbox",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(
        (pending, with_error),
        (2, 2),
        "the failed record and the one not tried"
    );
    // Both come due again shortly, not after the 30 s lease.
    assert!(
        app.outbox_claim(100, relay::LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.outbox_claim(100, relay::LEASE).await.unwrap().len(), 2);
}
