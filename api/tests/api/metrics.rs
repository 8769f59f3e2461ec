//! Metrics, health and readiness.

use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let app = TestApp::spawn().await;
    for path in ["/api/v1/health", "/health"] {
        let reply = app.request(Method::GET, path, None, None).await;
        assert_eq!(reply.body, json!({"status": "ok"}));
    }
    let ready = app
        .request(Method::GET, "/api/v1/health/ready", None, None)
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body["checks"],
        json!({"database": "ok", "redis": "ok", "broker": "ok"})
    );

    let token = app.admin_token().await;
    app.get("/api/v1/devices", &token).await;
    let text = app.metrics_text().await;
    for needle in [
        "http_requests_total{method=\"GET\",route=\"/api/v1/devices\",status=\"200\"}",
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/devices\",status=\"200\",le=\"0.005\"}",
        "http_requests_in_flight",
        "db_pool_connections{state=\"idle\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
}

#[tokio::test]
async fn invented_methods_share_one_metric_label() {
    let app = TestApp::spawn().await;
    for method in ["FOO1", "FOO2", "BREW"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = app
            .client
            .request(method, app.url("/api/v1/devices"))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let text = app.metrics_text().await;
    for invented in ["FOO1", "FOO2", "BREW"] {
        assert!(!text.contains(invented), "a series for {invented}");
    }
    assert!(
        text.contains("http_requests_total{method=\"OTHER\","),
        "no OTHER series:\n{text}"
    );
}

#[tokio::test]
async fn readiness_names_what_is_down() {
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", "redis://127.0.0.1:1/0"),
        ("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
    ])
    .await;
    let started = Instant::now();
    let ready = app
        .request(Method::GET, "/api/v1/health/ready", None, None)
        .await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.headers["content-type"], "application/problem+json");
    // A problem as every other error is (RFC 9457), with the checks beside it.
    assert_eq!(ready.body["status"], 503);
    assert_eq!(ready.body["code"], "not_ready");
    assert_eq!(ready.body["title"], "Service Unavailable");
    assert_eq!(ready.body["type"], "urn:ferrostack:problem:not_ready");
    assert_eq!(
        ready.body["checks"],
        json!({"database": "ok", "redis": "down", "broker": "down"})
    );
    assert!(
        ready.body["detail"]
            .as_str()
            .unwrap()
            .contains("redis, broker")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A broker that answers but refuses the login is down too.
    let refused = TestApp::spawn_with(&[(
        "BROKER_URL",
        "amqp://guest:not-the-password@127.0.0.1:5672/%2f",
    )])
    .await;
    let ready = refused
        .request(Method::GET, "/api/v1/health/ready", None, None)
        .await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["broker"], "down");
    // Liveness touches nothing.
    assert_eq!(
        app.request(Method::GET, "/api/v1/health", None, None)
            .await
            .status,
        StatusCode::OK
    );
    // Without Redis, login is unavailable rather than broken.
    let login = app
        .login_as("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await;
    assert_eq!(
        (login.status, login.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}
