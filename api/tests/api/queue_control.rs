//! Queues and workers under a platform administrator's hand (issue 24), on
//! both brokers: a paused queue's jobs wait while submissions are still
//! accepted, and run once it is resumed; a purge ends what waits; a worker
//! runs at the concurrency it is given and shuts down when asked, each
//! within a second or two.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deferred::{start_relay, wait_job};
use crate::support::{self, TestApp};

async fn submit(app: &TestApp, token: &str, body: Value) -> String {
    let reply = app.post("/api/v1/jobs", token, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn queue(app: &TestApp, token: &str, name: &str) -> Value {
    let list = app.get("/api/v1/queues", token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    list.body
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no queue {name}: {}", list.body))
}

/// Waits until `check` holds for the worker `id` as `GET /workers` shows it.
async fn wait_worker(
    app: &TestApp,
    token: &str,
    id: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let until = Instant::now() + Duration::from_secs(12);
    loop {
        let workers = app.get("/api/v1/workers", token).await.body;
        if let Some(worker) = workers
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["id"] == id))
            && check(worker)
        {
            return worker.clone();
        }
        assert!(
            Instant::now() < until,
            "worker {id} never got there: {workers}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_paused_queue_holds_its_jobs_until_resumed_and_a_purge_ends_them_on_rabbitmq() {
    pause_resume_purge(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_paused_queue_holds_its_jobs_until_resumed_and_a_purge_ends_them_on_redis_streams() {
    pause_resume_purge(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

async fn pause_resume_purge(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "pausing", 4);
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;
    wait_worker(&app, &token, "pausing", |_| true).await;
    let default = queue(&app, &token, "default").await;
    assert_eq!(default["paused"], false);
    assert_eq!(default["consumers"], 1, "{default}");

    let paused = app
        .post("/api/v1/queues/default/pause", &token, json!({}))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["paused"], true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(
                submit(
                    &app,
                    &token,
                    json!({"kind": "noop", "params": {"sleep_ms": n}}),
                )
                .await,
            );
        }
        ids
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &held {
        let job = app.get(&format!("/api/v1/jobs/{id}"), &token).await.body;
        assert_eq!(job["status"], "queued", "paused: {job}");
    }
    let default = queue(&app, &token, "default").await;
    assert_eq!(
        (&default["waiting"], &default["running"]),
        (&json!(3), &json!(0)),
        "what a paused queue holds is counted as waiting: {default}"
    );
    let resumed = app
        .post("/api/v1/queues/default/resume", &token, json!({}))
        .await;
    assert_eq!(resumed.body["paused"], false);
    for id in &held {
        wait_job(&app, &token, id, 10, |j| j["status"] == "succeeded").await;
    }

    // Purge: what waits ends cancelled, scheduled jobs too; nothing runs.
    app.post("/api/v1/queues/default/pause", &token, json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = submit(&app, &token, json!({"kind": "noop"})).await;
    let later = submit(&app, &token, json!({"kind": "noop", "countdown": 600})).await;
    assert_eq!(queue(&app, &token, "default").await["scheduled"], 1);
    let purged = app
        .post("/api/v1/queues/default/purge", &token, json!({}))
        .await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.body);
    assert_eq!(purged.body, json!({"purged": 2}));
    app.post("/api/v1/queues/default/resume", &token, json!({}))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [&waiting, &later] {
        let job = app.get(&format!("/api/v1/jobs/{id}"), &token).await.body;
        assert_eq!(job["status"], "cancelled", "{job}");
        assert_eq!(job["error"], "purged from queue default");
        assert_eq!(job["attempts"], 0);
    }
    let default = queue(&app, &token, "default").await;
    assert_eq!(default["scheduled"], 0);
    assert_eq!(default["waiting"], 0);

    // Unknown queues are 404s; tenants' own admins may not touch queues.
    let missing = app
        .post("/api/v1/queues/nowhere/pause", &token, json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let (_, tenant_admin) = app.tenant_with_admin("acme").await;
    for path in [
        "/api/v1/queues/default/pause",
        "/api/v1/queues/default/purge",
    ] {
        let refused = app.post(path, &tenant_admin, json!({})).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    relay.cancel();
    worker.cancel();
}

#[tokio::test]
async fn a_worker_runs_at_the_concurrency_it_is_given_and_shuts_down_when_asked() {
    let app = TestApp::spawn().await;
    let worker = support::start_worker(&app, app.db.app().await, "steered", 4);
    let token = app.admin_token().await;
    let seen = wait_worker(&app, &token, "steered", |_| true).await;
    assert_eq!(
        (
            seen["concurrency"].as_i64(),
            seen["max_concurrency"].as_i64()
        ),
        (Some(4), Some(4))
    );
    assert_eq!(seen["queues"], json!(["default"]));

    for bad in [0, 5] {
        let refused = app
            .put(
                "/api/v1/workers/steered/concurrency",
                &token,
                json!({"concurrency": bad}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let missing = app
        .put(
            "/api/v1/workers/nobody/concurrency",
            &token,
            json!({"concurrency": 1}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let set = app
        .put(
            "/api/v1/workers/steered/concurrency",
            &token,
            json!({"concurrency": 1}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["concurrency"], 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Four jobs of 300 ms now run one at a time, and the heartbeat shows
    // the running one.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            submit(
                &app,
                &token,
                json!({"kind": "noop", "params": {"sleep_ms": 300}}),
            )
            .await,
        );
    }
    let busy = wait_worker(&app, &token, "steered", |w| {
        w["concurrency"] == 1 && w["active"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert!(
        ids.iter().any(|id| busy["active"][0] == id.as_str()),
        "{busy}"
    );
    let mut spans = Vec::new();
    for id in &ids {
        let job = wait_job(&app, &token, id, 20, |j| j["status"] == "succeeded").await;
        let at = |f: &str| chrono::DateTime::parse_from_rfc3339(job[f].as_str().unwrap()).unwrap();
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "ran at once: {pair:?}");
    }

    // Shut down: within a second or two it stops and its heartbeat goes.
    let asked = app
        .post("/api/v1/workers/steered/shutdown", &token, json!({}))
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let until = Instant::now() + Duration::from_secs(5);
    while !worker.is_cancelled() {
        assert!(Instant::now() < until, "the worker never shut down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let workers = app.get("/api/v1/workers", &token).await.body;
        if workers
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["id"] != "steered")
        {
            break;
        }
        assert!(Instant::now() < until, "its heartbeat stayed: {workers}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
