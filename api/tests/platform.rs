//! Cross-cutting behaviour: bad input, request ids, documentation, metrics,
//! readiness, CORS, compression, and the real binary's start and shutdown.

mod support;

use ferro_testkit::free_port;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestApp;

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
async fn the_openapi_document_and_the_router_list_the_same_routes() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Swagger UI's bundle may be cached; the document, which changes with
    // every release, is not.
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert_eq!(bundle.headers()["cache-control"], "public, max-age=86400");
    let document = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert!(document.headers().get("cache-control").is_none());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Every documented operation is routed (no route-level 404 or 405)...
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let reply = app
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete,
                None,
                None,
            )
            .await;
        assert_ne!(
            reply.code(),
            "route_not_found",
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    // ...and every API route the contract names is documented.
    let expected = [
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/switch-tenant"),
        ("GET", "/api/v1/tenants"),
        ("POST", "/api/v1/tenants"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/roles"),
        ("POST", "/api/v1/roles"),
        ("GET", "/api/v1/permissions"),
        ("GET", "/api/v1/devices"),
        ("POST", "/api/v1/devices"),
        ("GET", "/api/v1/devices/{id}"),
        ("PATCH", "/api/v1/devices/{id}"),
        ("DELETE", "/api/v1/devices/{id}"),
        ("GET", "/api/v1/audit-logs"),
        ("GET", "/api/v1/login-logs"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/health/ready"),
        ("GET", "/health"),
        ("GET", "/metrics"),
    ];
    for (m, p) in expected {
        assert!(
            documented.contains(&(m.to_owned(), p.to_owned())),
            "{m} {p} is not documented"
        );
    }
    // Documented protected operations declare the bearer scheme and their errors.
    let devices = &doc["paths"]["/api/v1/devices"]["post"];
    assert!(devices["security"].is_array());
    for status in ["201", "400", "401", "403", "409", "413", "415", "422"] {
        assert!(
            devices["responses"][status].is_object(),
            "POST /devices lacks {status}"
        );
    }
    // The problems a request itself can earn are on every operation they
    // can happen to: a bad query (422), a bad path id (400).
    assert!(doc["paths"]["/api/v1/tenants"]["get"]["responses"]["422"].is_object());
    assert!(doc["paths"]["/api/v1/devices/{id}"]["get"]["responses"]["400"].is_object());
    assert!(doc["paths"]["/api/v1/auth/me"]["get"]["responses"]["422"].is_null());
    // Every request body has an example, and every operation its 503.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(schema) =
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            {
                let name = schema.rsplit('/').next().unwrap();
                let body = &doc["components"]["schemas"][name];
                let fields_with_examples = body["properties"]
                    .as_object()
                    .is_some_and(|p| p.values().all(|f| !f["example"].is_null()));
                assert!(
                    !body["example"].is_null() || fields_with_examples,
                    "{method} {path}: {name} has no example"
                );
            }
            assert!(
                op["responses"]["503"].is_object(),
                "{method} {path} does not document its 503"
            );
        }
    }
    // Fields the answers always carry (null when unset) are required, and
    // the paging limits are in the parameters.
    let job_required = doc["components"]["schemas"]["Job"]["required"]
        .as_array()
        .unwrap();
    for field in ["device_id", "error", "started_at", "finished_at"] {
        assert!(job_required.contains(&json!(field)), "Job.{field}");
    }
    let size = doc["paths"]["/api/v1/devices"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "size")
        .unwrap();
    assert_eq!(size["schema"]["maximum"], 100);
}

#[tokio::test]
async fn docs_pages_are_served_without_external_scripts() {
    let app = TestApp::spawn().await;
    for (path, needle) in [
        ("/docs/", "swagger-ui"),
        ("/redoc", "/redoc/redoc.standalone.js"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains(needle), "{path}");
        assert!(
            !html.contains("https://"),
            "{path} loads something from the internet"
        );
    }
    let script = app
        .client
        .get(app.url("/redoc/redoc.standalone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.bytes().await.unwrap().len() > 500_000);
    let swagger_js = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(swagger_js.status(), StatusCode::OK);
}

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

#[tokio::test]
async fn the_binary_starts_serves_and_exits_zero_on_sigterm() {
    let db = ferro_testkit::TestDb::new().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
        .envs(db.env_pairs())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env(
            "REDIS_KEY_PREFIX",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        )
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/health");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(res) = client.get(&url).send().await {
            assert_eq!(res.status(), StatusCode::OK);
            break;
        }
        assert!(Instant::now() < deadline, "api did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "api did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut logs).unwrap();
    let first: Value = serde_json::from_str(logs.lines().next().unwrap()).expect("JSON log lines");
    assert_eq!(first["service"], "api");
    assert!(logs.contains("api stopped"));
}

#[tokio::test]
async fn a_port_in_use_stops_the_binary_with_a_clear_message() {
    let db = ferro_testkit::TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .envs(db.env_pairs())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env(
            "REDIS_KEY_PREFIX",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        )
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the api kept running on a port in use")
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "could not listen on 127.0.0.1:{port} (HOST and PORT)"
        )),
        "{stderr}"
    );
    drop(taken);
}

#[test]
fn the_binary_refuses_to_start_in_production_without_a_jwt_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .env_clear()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", "postgres://app:pw@127.0.0.1/db")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("JWT_SECRET is not set"), "{stderr}");
}

#[test]
fn unknown_arguments_start_nothing() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_api"))
            .args(args)
            // Nothing may be reached: the arguments are refused first.
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("api healthcheck"));
    let bogus = run(&["servee"]);
    assert_eq!(bogus.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("unknown arguments: servee"));
}

#[test]
fn a_malformed_rust_log_stops_the_binary() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .env("RUST_LOG", "[[[garbage")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUST_LOG is invalid"));
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
