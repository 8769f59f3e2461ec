//! Unique jobs (issue 23), on both brokers: a unique submission that
//! matches a live job answers 200 with it and enqueues nothing, also when
//! 32 clients send it at once; states and period narrow what matches.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::deferred::wait_job;
use crate::support::{self, TestApp};

#[tokio::test]
async fn the_same_unique_job_from_32_clients_at_once_is_one_job_on_rabbitmq() {
    one_job_from_32_clients(TestApp::spawn().await).await;
}

#[tokio::test]
async fn the_same_unique_job_from_32_clients_at_once_is_one_job_on_redis_streams() {
    one_job_from_32_clients(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await)
        .await;
}

async fn one_job_from_32_clients(app: TestApp) {
    let token = app.admin_token().await;
    // The default key: kind, device and parameters, whatever their order.
    let bodies = [
        json!({"kind": "noop", "params": {"sleep_ms": 5}, "unique": {}}),
        json!({"params": {"sleep_ms": 5}, "unique": {}, "kind": "noop"}),
    ];
    let replies = futures_util::future::join_all(
        (0..32).map(|n| app.post("/api/v1/jobs", &token, bodies[n % 2].clone())),
    )
    .await;
    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(created.len(), 1, "one new job");
    let id = &created[0].body["id"];
    for reply in &replies {
        assert!(
            reply.status == StatusCode::ACCEPTED || reply.status == StatusCode::OK,
            "{}",
            reply.body
        );
        assert_eq!(&reply.body["id"], id, "every answer is that job");
    }
    let listed = app.get("/api/v1/jobs", &token).await.body;
    assert_eq!(listed["total"], 1, "{listed}");
    let owner = app.db.owner().await;
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM job_outbox")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(records, 1, "one outbox record");
    // Other parameters are another job.
    let other = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "params": {"sleep_ms": 6}, "unique": {}}),
        )
        .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.body);
}

#[tokio::test]
async fn a_unique_key_matches_only_in_its_states_and_period_on_rabbitmq() {
    states_and_period(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_unique_key_matches_only_in_its_states_and_period_on_redis_streams() {
    states_and_period(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

async fn states_and_period(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "unique", 2);
    let token = app.admin_token().await;
    let first = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "unique": {"key": "nightly-report"}}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let id = first.body["id"].as_str().unwrap();
    let done = wait_job(&app, &token, id, 10, |j| j["status"] == "succeeded").await;
    assert_eq!(done["status"], "succeeded");
    // Succeeded is not live: by default a new job is made.
    let second = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "params": {"sleep_ms": 1}, "unique": {"key": "nightly-report"}}),
        )
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert_ne!(second.body["id"], first.body["id"]);
    let second_id = second.body["id"].as_str().unwrap();
    wait_job(&app, &token, second_id, 10, |j| j["status"] == "succeeded").await;
    // Asked to count succeeded jobs too, it finds the latest one.
    let found = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop",
                   "unique": {"key": "nightly-report", "states": ["succeeded"], "period_seconds": 2}}),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["id"], second.body["id"]);
    assert!(found.headers.contains_key("location"));
    // Once outside the period, it matches nothing.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let third = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop",
                   "unique": {"key": "nightly-report", "states": ["succeeded"], "period_seconds": 2}}),
        )
        .await;
    assert_eq!(third.status, StatusCode::ACCEPTED, "{}", third.body);
    // Keys are the tenant's own.
    let (_, other_admin) = app.tenant_with_admin("unique-other").await;
    let theirs = app
        .post(
            "/api/v1/jobs",
            &other_admin,
            json!({"kind": "noop", "unique": {"key": "nightly-report", "states": ["succeeded", "queued", "running"]}}),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED, "{}", theirs.body);
    worker.cancel();
}
