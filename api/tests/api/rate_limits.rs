//! Rate limits (issue 23), on both brokers: a limit a platform
//! administrator sets at run time holds across the workers within a
//! second, held-back jobs spend no attempt, and removing it lifts it;
//! bad changes are 4xx problems naming the field.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deferred::wait_job;
use crate::support::{self, TestApp};

#[tokio::test]
async fn a_limit_set_at_run_time_holds_across_workers_on_rabbitmq() {
    limited(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_limit_set_at_run_time_holds_across_workers_on_redis_streams() {
    limited(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

fn started(job: &Value) -> DateTime<Utc> {
    job["started_at"].as_str().unwrap().parse().unwrap()
}

async fn limited(app: TestApp) {
    // Two workers share the limit.
    let a = support::start_worker(&app, app.db.app().await, "limited-a", 8);
    let b = support::start_worker(&app, app.db.app().await, "limited-b", 8);
    let token = app.admin_token().await;
    let set = app
        .put(
            "/api/v1/rate-limits/queue/default",
            &token,
            json!({"rate_limit": "4/s"}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        set.body["items"],
        json!([{"scope": "queue", "name": "default", "rate_limit": "4/s"}])
    );
    // Within a second every worker holds to it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut ids = Vec::new();
    for _ in 0..16 {
        let reply = app
            .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
            .await;
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(wait_job(&app, &token, id, 30, |j| j["status"] == "succeeded").await);
    }
    let mut starts: Vec<DateTime<Utc>> = jobs.iter().map(started).collect();
    starts.sort();
    // 4 at once, then 4 a second: the last of 16 starts 3 s after the first.
    let span = starts[15] - starts[0];
    assert!(
        span >= chrono::Duration::milliseconds(2700),
        "16 jobs at 4/s started within {span}"
    );
    // A bucket of 4 refilled at 4/s: never 8 within a second.
    for window in starts.windows(8) {
        assert!(
            window[7] - window[0] >= chrono::Duration::milliseconds(900),
            "8 jobs started within a second: {starts:?}"
        );
    }
    assert!(
        jobs.iter().all(|j| j["attempts"] == 1),
        "held back without spending attempts"
    );

    // Lifted: the next 16 run at once.
    let cleared = app
        .delete("/api/v1/rate-limits/queue/default", &token)
        .await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    let listed = app.get("/api/v1/rate-limits", &token).await;
    assert_eq!(listed.body["items"], json!([]));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let begun = Instant::now();
    let mut last = String::new();
    for _ in 0..16 {
        let reply = app
            .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
            .await;
        last = reply.body["id"].as_str().unwrap().to_owned();
    }
    wait_job(&app, &token, &last, 10, |j| j["status"] == "succeeded").await;
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    a.cancel();
    b.cancel();
}

#[tokio::test]
async fn bad_limit_changes_are_refused_and_only_platform_administrators_make_them() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for (path, body, field) in [
        (
            "/api/v1/rate-limits/planet/default",
            json!({"rate_limit": "1/s"}),
            "scope",
        ),
        (
            "/api/v1/rate-limits/queue/nowhere",
            json!({"rate_limit": "1/s"}),
            "name",
        ),
        (
            "/api/v1/rate-limits/kind/nope",
            json!({"rate_limit": "1/s"}),
            "name",
        ),
        (
            "/api/v1/rate-limits/kind/noop",
            json!({"rate_limit": "fast"}),
            "rate_limit",
        ),
        (
            "/api/v1/rate-limits/tenant/default",
            json!({"rate_limit": "0/s"}),
            "rate_limit",
        ),
    ] {
        let reply = app.put(path, &token, body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
    }
    let listed = app.get("/api/v1/rate-limits", &token).await;
    assert_eq!(listed.body["items"], json!([]), "nothing changed");
    // null lifts a limit (here there is none to lift, and the list stays empty).
    let lifted = app
        .put(
            "/api/v1/rate-limits/kind/noop",
            &token,
            json!({"rate_limit": null}),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.body);
    let (_, tenant_admin) = app.tenant_with_admin("limits-other").await;
    let refused = app
        .put(
            "/api/v1/rate-limits/queue/default",
            &tenant_admin,
            json!({"rate_limit": "1/s"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
}

#[tokio::test]
async fn a_tenant_limit_keeps_one_tenant_from_starving_another_on_rabbitmq() {
    fair(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_tenant_limit_keeps_one_tenant_from_starving_another_on_redis_streams() {
    fair(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

async fn fair(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "fair", 8);
    let token = app.admin_token().await;
    let (_, other) = app.tenant_with_admin("limits-fair").await;
    let set = app
        .put(
            "/api/v1/rate-limits/tenant/default",
            &token,
            json!({"rate_limit": "3/s"}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut flood = Vec::new();
    for _ in 0..24 {
        let reply = app
            .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
            .await;
        flood.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    // The other tenant's jobs do not wait behind the flood.
    let begun = Instant::now();
    let mut mine = Vec::new();
    for _ in 0..2 {
        let reply = app
            .post("/api/v1/jobs", &other, json!({"kind": "noop"}))
            .await;
        mine.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    for id in &mine {
        wait_job(&app, &other, id, 10, |j| j["status"] == "succeeded").await;
    }
    assert!(
        begun.elapsed() < Duration::from_millis(2500),
        "{:?}",
        begun.elapsed()
    );
    let last = app
        .get(&format!("/api/v1/jobs/{}", flood[23]), &token)
        .await
        .body;
    assert_ne!(
        last["status"], "succeeded",
        "the flood is still held back: {last}"
    );
    worker.cancel();
}
