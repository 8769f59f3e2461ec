//! A broker outage in the middle of a run loses no job: jobs submitted
//! through the api before, during and after the outage all succeed, each
//! exactly once. Redis Streams: a private redis-server (append-only file) is
//! killed and started again. RabbitMQ: a private node is killed and started
//! again (durable queues, persistent messages); and on the machine's node, a
//! private vhost's guest permissions are revoked and every connection closed,
//! then restored (logins refused while the broker runs).

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The worker and the outbox relay, in-process, with broker handles of their own.
fn start_worker(app: &TestApp, db: ferro_db::Db) -> CancellationToken {
    let stop = CancellationToken::new();
    let config = app.state.config.broker.clone();
    let settings = worker::RunConfig {
        concurrency: 4,
        lease: Duration::from_secs(10),
        grace: Duration::from_secs(5),
        worker_id: "outage-test".into(),
        smtp: None,
        retention: Default::default(),
        queues: Vec::new(),
        limits: Default::default(),
        uploads: Default::default(),
    };
    let broker = std::sync::Arc::new(ferro_broker::Broker::from_config(&config).unwrap());
    let relay_broker = ferro_broker::Broker::from_config(&config).unwrap();
    let (relay_db, relay_stop) = (db.clone(), stop.clone());
    tokio::spawn(async move {
        worker::relay::run(
            relay_db,
            &relay_broker,
            Duration::from_millis(100),
            Duration::from_secs(60),
            relay_stop.cancelled_owned(),
        )
        .await
    });
    let token = stop.clone();
    tokio::spawn(async move { worker::run(db, broker, None, settings, token).await });
    stop
}

async fn submit(app: &TestApp, token: &str, n: usize) {
    for _ in 0..n {
        let job = app
            .post(
                "/api/v1/jobs",
                token,
                json!({"kind": "noop", "params": {"sleep_ms": 20}}),
            )
            .await;
        assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    }
}

async fn no_job_is_lost_across(app: TestApp, outage: impl FnOnce() + Send + 'static) {
    let stop = start_worker(&app, app.db.app().await);
    let token = app.admin_token().await;
    submit(&app, &token, 20).await;
    let outage = tokio::task::spawn_blocking(outage);
    submit(&app, &token, 20).await;
    outage.await.unwrap();
    submit(&app, &token, 20).await;

    let owner = app.db.owner().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (done, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM jobs",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(total, 60);
        if done == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {total} jobs succeeded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT job_id FROM job_results GROUP BY job_id HAVING count(*) = 1) r",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(once, 60, "every job ran to one result");
    stop.cancel();
}

#[tokio::test]
async fn no_job_is_lost_when_redis_streams_restarts() {
    let redis = std::sync::Arc::new(std::sync::Mutex::new(ferro_testkit::RedisServer::start()));
    let url = redis.lock().unwrap().url();
    let app = TestApp::spawn_with(&[("BROKER_URL", &url)]).await;
    let server = redis.clone();
    no_job_is_lost_across(app, move || {
        server.lock().unwrap().restart(Duration::from_secs(1));
    })
    .await;
    drop(redis);
}

#[tokio::test]
async fn no_job_is_lost_when_rabbitmq_restarts() {
    let node = std::sync::Arc::new(std::sync::Mutex::new(ferro_testkit::RabbitMqNode::start()));
    let url = node.lock().unwrap().url();
    let app = TestApp::spawn_with(&[("BROKER_URL", &url)]).await;
    let server = node.clone();
    no_job_is_lost_across(app, move || {
        server.lock().unwrap().restart(Duration::from_secs(1));
    })
    .await;
    drop(node);
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn no_job_is_lost_when_rabbitmq_goes_away() {
    let vhost = format!(
        "ferro-outage-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let app = TestApp::spawn_with(&[("BROKER_URL", &url)]).await;
    let outage_vhost = vhost.clone();
    no_job_is_lost_across(app, move || {
        let v = outage_vhost.as_str();
        rabbitmqctl(&["clear_permissions", "-p", v, "guest"]);
        rabbitmqctl(&["close_all_connections", "-p", v, "test: outage"]);
        std::thread::sleep(Duration::from_secs(1));
        rabbitmqctl(&["set_permissions", "-p", v, "guest", ".*", ".*", ".*"]);
    })
    .await;
    rabbitmqctl(&["delete_vhost", &vhost]);
}
