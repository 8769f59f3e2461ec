//! The monitor: `GET /api/v1/monitor` over the real api, a worker running
//! in-process (its heartbeat in Redis), RabbitMQ and PostgreSQL; and the
//! `/monitor` page.

use crate::support;
use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn wait_for(app: &TestApp, token: &str, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = app.get("/api/v1/monitor", token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        if what(&reply.body) {
            return reply.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the monitor never showed it: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn platform_administrators_see_jobs_workers_and_queues() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let stop = support::start_worker(&app, app.db.app().await, "monitor-host:4242", 3);
    for _ in 0..2 {
        let reply = app
            .post("/api/v1/jobs", &admin, json!({"kind": "noop"}))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    }
    let view = wait_for(&app, &admin, |v| {
        v["jobs"]["succeeded"] == 2
            && v["cluster"]["workers"]
                .as_array()
                .is_some_and(|w| w.iter().any(|w| w["processed"].as_u64() >= Some(2)))
    })
    .await;
    for status in [
        "scheduled",
        "queued",
        "running",
        "retrying",
        "succeeded",
        "failed",
        "cancelled",
    ] {
        assert!(view["jobs"][status].is_i64(), "{status} is counted: {view}");
    }
    let recent = view["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    assert!(
        recent
            .iter()
            .all(|j| j["kind"] == "noop" && j["status"] == "succeeded")
    );

    let workers = view["cluster"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{view}");
    let w = &workers[0];
    assert_eq!(w["worker_id"], "monitor-host:4242");
    assert_eq!(w["host"], "monitor-host");
    assert_eq!(w["concurrency"], 3);
    assert_eq!(w["alive"], true);
    let queue = &view["cluster"]["queue"];
    assert!(queue["jobs"].is_u64() && queue["dead"].is_u64(), "{view}");
    assert_eq!(view["cluster"]["schedulers"], json!([]));

    // A stopped worker removes its heartbeat.
    stop.cancel();
    wait_for(&app, &admin, |v| v["cluster"]["workers"] == json!([])).await;
}

#[tokio::test]
async fn tenants_see_only_their_own_jobs_and_no_cluster() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let reply = app
        .post("/api/v1/jobs", &admin, json!({"kind": "noop"}))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    let (_, other) = app.tenant_with_admin("acme").await;
    let view = app.get("/api/v1/monitor", &other).await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(view.body["jobs"]["queued"], 0, "{}", view.body);
    assert_eq!(view.body["recent"], json!([]));
    assert_eq!(
        view.body["cluster"],
        Value::Null,
        "infrastructure is for platform admins"
    );

    let mine = app.get("/api/v1/monitor", &admin).await;
    assert_eq!(mine.body["jobs"]["queued"], 1);

    // Without jobs:read: 403; without a token: 401.
    let role = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "device-reader", "permissions": ["devices:read"]}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
    let (_, reader) = app.create_user(&admin, "dora", &["device-reader"]).await;
    let denied = app.get("/api/v1/monitor", &reader).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.headers["content-type"], "application/problem+json");
    let anonymous = app
        .client
        .get(app.url("/api/v1/monitor"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_monitor_page_is_served_without_external_resources() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/monitor")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = res.text().await.unwrap();
    assert!(page.contains("Ferrostack monitor"));
    assert!(page.contains("\"/monitor/app.js\""));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
    for (asset, content_type) in [
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("jobs.js", "text/javascript"),
        ("ops.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("monitor.css", "text/css"),
    ] {
        let res = app
            .client
            .get(app.url(&format!("/monitor/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        let served = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(served.starts_with(content_type), "{asset}: {served}");
        // The one address in them is SVG's namespace, which loads nothing.
        let text = res
            .text()
            .await
            .unwrap()
            .replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset} loads nothing from outside"
        );
    }
    let missing = app
        .client
        .get(app.url("/monitor/secrets.env"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
