//! What happens to any request: bad bodies and NUL characters get clear
//! 4xx problems, stalled bodies a 408, unknown methods a 405, a handler out
//! of time a 503 and a panicking one a bare 500 (both audited); request ids;
//! CORS and compression.

use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn bad_bodies_get_clear_4xx_problems() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let url = app.url("/api/v1/devices");
    let send = |body: &'static str, ctype: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let malformed = send("{\"name\": ", "application/json").await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );
    // Cut off after a key the body type does not have: still malformed, not
    // an unknown field (serde stops at the first problem it meets).
    for (path, body) in [
        ("/api/v1/users", "{\"name\":"),
        ("/api/v1/jobs", "{\"name\": 1"),
    ] {
        let cut = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(cut.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(cut.json::<Value>().await.unwrap()["code"], "malformed_json");
    }
    let twice = send(
        "{\"name\": \"a\", \"name\": \"b\", \"protocol\": \"http\", \"host\": \"h\"}",
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(twice.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        twice.json::<Value>().await.unwrap()["errors"][0]["field"],
        "name"
    );
    let plain = send("name=x", "text/plain").await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let wrong_type = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": 5, "protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_type.field_errors(), ["name"]);
    let unknown = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "a", "protocol": "http", "host": "h", "colour": "red"}),
        )
        .await;
    assert_eq!(unknown.field_errors(), ["colour"]);
    // A missing field is named, at the top and inside an object, with no
    // position in the JSON text.
    let missing = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.field_errors(), ["name"]);
    assert_eq!(missing.body["errors"][0]["message"], "is required");
    let nested = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "n", "protocol": "snmp", "host": "h", "snmp": {"version": "v2c"}}),
        )
        .await;
    assert_eq!(nested.field_errors(), ["snmp.community"]);
    // An array is not an object, even with the fields in their order.
    let array = app
        .post(
            "/api/v1/devices",
            &token,
            json!(["arr", "http", "10.0.0.1", 80, [], null]),
        )
        .await;
    assert_eq!(
        (array.status, array.code()),
        (StatusCode::BAD_REQUEST, "not_an_object")
    );
    // Control characters in a name, and a tag given twice.
    let control = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "line\nbreak", "protocol": "http", "host": "h", "tags": ["a", "a"]}),
        )
        .await;
    assert_eq!(control.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(control.field_errors(), ["name", "tags"]);
    // A bad query parameter is named too.
    let bad_size = app.get("/api/v1/devices?size=ten", &token).await;
    assert_eq!(bad_size.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_size.field_errors(), ["size"]);
    // So is a filter that a list does not have, on every list.
    for list in [
        "/api/v1/schedules",
        "/api/v1/roles",
        "/api/v1/tenants",
        "/api/v1/permissions",
        "/api/v1/auth/sessions",
    ] {
        let unknown_filter = app.get(&format!("{list}?kind=noop"), &token).await;
        assert_eq!(
            unknown_filter.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{list}"
        );
        assert_eq!(unknown_filter.field_errors(), ["kind"], "{list}");
    }

    let huge = "x".repeat(2 * 1024 * 1024);
    let too_large = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": huge, "protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "payload_too_large");

    let bad_id = app.get("/api/v1/devices/12345", &token).await;
    assert_eq!(
        (bad_id.status, bad_id.code()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let no_route = app.get("/api/v1/nothing-here", &token).await;
    assert_eq!(
        (no_route.status, no_route.code()),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    // No error body carries internals.
    for reply in [&wrong_type, &unknown, &missing, &array, &too_large, &bad_id] {
        let text = reply.body.to_string().to_lowercase();
        assert!(!text.contains("sqlx") && !text.contains("select ") && !text.contains("panicked"));
    }
    // Nothing was written by any of these.
    assert_eq!(app.get("/api/v1/devices", &token).await.body["total"], 0);
}

#[tokio::test]
async fn a_client_that_stalls_sending_its_body_gets_a_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/devices HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("body_timeout") {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(
        started.elapsed() >= api::BODY_IDLE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    // Nothing was written.
    assert_eq!(app.get("/api/v1/devices", &token).await.body["total"], 0);
}

#[tokio::test]
async fn nul_characters_are_refused_naming_their_field() {
    // PostgreSQL cannot store U+0000 in text or jsonb; such input must be
    // refused before it reaches the database, naming the field.
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let device = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "a\u{0}b", "protocol": "http", "host": "h", "tags": ["ok", "t\u{0}"]}),
        )
        .await;
    assert_eq!(device.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(device.field_errors(), ["name", "tags[1]"]);
    let job = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "email.send", "params": {"to": "a@example.com", "subject": "s\u{0}", "body": "b"}}),
        )
        .await;
    assert_eq!(job.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(job.field_errors(), ["params.subject"]);
    let search = app.get("/api/v1/devices?q=a%00b", &token).await;
    assert_eq!(search.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(search.field_errors(), ["q"]);
    // An escaped backslash followed by "u0000" is ordinary text.
    let literal = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "a\\u0000b", "protocol": "http", "host": "h"}),
        )
        .await;
    assert_eq!(literal.status, StatusCode::CREATED, "{}", literal.body);
    assert_eq!(literal.body["name"], "a\\u0000b");
    assert_eq!(app.get("/api/v1/devices", &token).await.body["total"], 1);
    assert_eq!(app.get("/api/v1/jobs", &token).await.body["total"], 0);
}

#[tokio::test]
async fn request_ids_are_accepted_generated_and_echoed() {
    let app = TestApp::spawn().await;
    let given = app
        .client
        .get(app.url("/api/v1/health"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-abc.123");
    let generated = app
        .client
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    let hostile = app
        .client
        .get(app.url("/api/v1/health"))
        .header("x-request-id", "a b<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(hostile.headers()["x-request-id"], "a b<script>");
    let on_error = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "err-1")
        .send()
        .await
        .unwrap();
    assert_eq!(on_error.headers()["x-request-id"], "err-1");
}

#[tokio::test]
async fn cors_allows_only_configured_origins_and_responses_are_compressed() {
    let app = TestApp::spawn_with(&[("CORS_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/devices"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for header in ["idempotency-key", "traceparent", "last-event-id"] {
        assert!(
            allowed_headers.contains(header),
            "{header} not allowed: {allowed_headers}"
        );
    }
    // A browser may read what a client needs of an answer.
    let answer = app
        .client
        .get(app.url("/api/v1/health"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for header in ["x-request-id", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    let denied = preflight("https://evil.example.com").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let gz = app
        .client
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
}

/// The audit rows of one route, as the database holds them.
async fn audited_statuses(app: &TestApp, route: &str) -> Vec<i16> {
    sqlx::query_scalar("SELECT status FROM audit_logs WHERE route = $1 ORDER BY created_at")
        .bind(route)
        .fetch_all(&app.db.owner().await)
        .await
        .unwrap()
}

/// Waits (up to 5 s) for the audit rows of `route` to be `expected`.
async fn wait_for_audit(app: &TestApp, route: &str, expected: &[i16]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let statuses = audited_statuses(app, route).await;
        if statuses == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{route}: audit rows {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_request_that_runs_out_of_time_gets_a_503_is_audited_and_changes_nothing() {
    let app = TestApp::spawn_with(&[("REQUEST_TIMEOUT_SECONDS", "1")]).await;
    let token = app.admin_token().await;
    // The device's INSERT waits behind this lock past the request's time.
    let lock = app.db.lock_devices().await;
    let started = Instant::now();
    let reply = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "late", "protocol": "http", "host": "example.com"}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.code(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    wait_for_audit(&app, "/api/v1/devices", &[503]).await;
    lock.rollback().await.unwrap();
    let list = app.get("/api/v1/devices", &token).await;
    assert_eq!(list.body["total"], 0, "the cut request left no device");
}

#[tokio::test]
async fn a_panicking_handler_gets_a_bare_500_and_is_audited() {
    use axum::routing::post;
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let routes = axum::Router::new().route(
        "/api/v1/test-panic",
        post(|| async {
            panic!("secret detail of the panic");
            #[allow(unreachable_code)]
            ()
        }),
    );
    let stack = api::protected_with_middleware(routes, app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            stack.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let res = app
        .client
        .post(format!("http://{addr}/api/v1/test-panic"))
        .bearer_auth(&token)
        .header("x-request-id", "panic-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["x-request-id"], "panic-1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "internal_error");
    assert!(!body.to_string().contains("secret"), "{body}");
    wait_for_audit(&app, "/api/v1/test-panic", &[500]).await;
    // The server goes on serving.
    let again = app
        .client
        .post(format!("http://{addr}/api/v1/test-panic"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
    server.abort();
}

#[tokio::test]
async fn unsupported_methods_get_a_405_problem() {
    let app = TestApp::spawn().await;
    let reply = app.request(Method::PUT, "/api/v1/health", None, None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}
