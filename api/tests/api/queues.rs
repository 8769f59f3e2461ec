//! Named queues and priorities (issue 23), on both brokers: a job goes to
//! its kind's route or the queue it names, a worker consumes only the
//! queues it is given, a high-priority job overtakes a backlog, and an
//! unknown queue or a priority out of range is a 422 that writes nothing.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::deferred::wait_job;
use crate::support::{self, TestApp};

/// A queues file of this test's own: `noop` goes to `bulk`.
fn queues_file() -> String {
    let path = std::env::temp_dir().join(format!("ferrostack-queues-{}.json", Uuid::new_v4()));
    std::fs::write(
        &path,
        r#"{"queues": [{"name": "default"}, {"name": "bulk"}, {"name": "urgent"}],
            "routes": {"noop": "bulk"}}"#,
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

async fn app_on(broker: Option<&str>) -> TestApp {
    let file = queues_file();
    let mut env = vec![("QUEUES_CONFIG", file.as_str())];
    if let Some(url) = broker {
        env.push(("BROKER_URL", url));
    }
    let app = TestApp::spawn_with(&env).await;
    let _ = std::fs::remove_file(&file);
    app
}

async fn job_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&app.db.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn jobs_follow_their_routes_and_workers_their_queues_on_rabbitmq() {
    routes_and_workers(app_on(None).await).await;
}

#[tokio::test]
async fn jobs_follow_their_routes_and_workers_their_queues_on_redis_streams() {
    routes_and_workers(app_on(Some(support::REDIS_BROKER)).await).await;
}

async fn routes_and_workers(app: TestApp) {
    let token = app.admin_token().await;
    let routed = app
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await;
    assert_eq!(routed.status, StatusCode::ACCEPTED, "{}", routed.body);
    assert_eq!(routed.body["queue"], "bulk", "the kind's route");
    assert_eq!(routed.body["priority"], 0);
    let named = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "queue": "urgent", "priority": 3}),
        )
        .await;
    assert_eq!(named.status, StatusCode::ACCEPTED, "{}", named.body);
    assert_eq!(named.body["queue"], "urgent");
    assert_eq!(named.body["priority"], 3);
    let (routed, named) = (
        routed.body["id"].as_str().unwrap().to_owned(),
        named.body["id"].as_str().unwrap().to_owned(),
    );
    // A worker of `bulk` only runs the routed job.
    let bulk = support::start_worker_on(&app, app.db.app().await, "bulk", 2, &[("bulk", 2)]);
    wait_job(&app, &token, &routed, 15, |j| j["status"] == "succeeded").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = app.get(&format!("/api/v1/jobs/{named}"), &token).await.body;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    // One that consumes both queues runs it.
    bulk.cancel();
    let both = support::start_worker_on(
        &app,
        app.db.app().await,
        "both",
        2,
        &[("bulk", 1), ("urgent", 1)],
    );
    wait_job(&app, &token, &named, 15, |j| j["status"] == "succeeded").await;
    both.cancel();
}

#[tokio::test]
async fn a_high_priority_job_overtakes_a_backlog_on_rabbitmq() {
    overtakes(app_on(None).await).await;
}

#[tokio::test]
async fn a_high_priority_job_overtakes_a_backlog_on_redis_streams() {
    overtakes(app_on(Some(support::REDIS_BROKER)).await).await;
}

async fn overtakes(app: TestApp) {
    let token = app.admin_token().await;
    let mut backlog = Vec::new();
    for _ in 0..30 {
        let reply = app
            .post(
                "/api/v1/jobs",
                &token,
                json!({"kind": "noop", "queue": "default"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        backlog.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let urgent = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "queue": "default", "priority": 9}),
        )
        .await;
    assert_eq!(urgent.status, StatusCode::ACCEPTED, "{}", urgent.body);
    let urgent = urgent.body["id"].as_str().unwrap().to_owned();
    // Every job is with the broker before the worker starts.
    let until = Instant::now() + Duration::from_secs(10);
    while app.state.broker.depth("default").await.unwrap() < 31 {
        assert!(Instant::now() < until, "the jobs never reached the broker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker = support::start_worker_on(&app, app.db.app().await, "one", 1, &[("default", 1)]);
    let last = backlog.last().unwrap().clone();
    wait_job(&app, &token, &last, 30, |j| j["status"] == "succeeded").await;
    let first_started: String = sqlx::query_scalar(
        "SELECT id::text FROM jobs WHERE started_at IS NOT NULL ORDER BY started_at LIMIT 1",
    )
    .fetch_one(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(first_started, urgent, "the priority 9 job ran first");
    worker.cancel();
}

#[tokio::test]
async fn an_unknown_queue_or_a_priority_out_of_range_is_refused() {
    let app = app_on(None).await;
    let token = app.admin_token().await;
    for (body, field) in [
        (json!({"kind": "noop", "queue": "nowhere"}), "queue"),
        (json!({"kind": "noop", "priority": 10}), "priority"),
        (json!({"kind": "noop", "priority": -1}), "priority"),
    ] {
        let reply = app.post("/api/v1/jobs", &token, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields: Vec<&Value> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["field"])
            .collect();
        assert_eq!(fields, [field], "{}", reply.body);
    }
    let reply = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "queue": "nowhere"}),
        )
        .await;
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("default, bulk, urgent"),
        "{}",
        reply.body
    );
    assert_eq!(job_count(&app).await, 0, "nothing was written");
}
