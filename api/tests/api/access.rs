//! Every documented operation, taken from the api's own OpenAPI document so
//! that a new route is covered the day it is added: without a token (401),
//! without the permission (403), on another tenant's resource (404, as if it
//! did not exist, while its own tenant reads it), and with bad input (400,
//! 415, 422, changing nothing).

use crate::support;
use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// One documented operation.
struct Operation {
    method: Method,
    path: String,
    op: Value,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn is_protected(&self) -> bool {
        self.op["security"].is_array()
    }

    fn documents(&self, status: &str) -> bool {
        self.op["responses"][status].is_object()
    }

    fn has_body(&self) -> bool {
        self.op["requestBody"].is_object()
    }

    /// Whether the body is a multipart form (an upload) rather than JSON.
    fn is_multipart(&self) -> bool {
        self.op["requestBody"]["content"]["multipart/form-data"].is_object()
    }

    fn has_query(&self) -> bool {
        self.op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"))
    }

    /// The path with `{id}` replaced.
    fn at(&self, id: &str) -> String {
        self.path.replace("{id}", id)
    }

    /// Event streams answer with a stream that does not end on its own.
    fn is_stream(&self) -> bool {
        self.path.starts_with("/api/v1/jobs/events/") || self.path == "/api/v1/jobs/ws"
    }
}

async fn operations(app: &TestApp) -> Vec<Operation> {
    let doc = app.openapi().await;
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes())
                && [
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ]
                .contains(&method)
            {
                all.push(Operation {
                    method,
                    path: path.clone(),
                    op: op.clone(),
                });
            }
        }
    }
    assert!(
        all.len() > 40,
        "the document lists {} operations",
        all.len()
    );
    all
}

/// A raw request: `body` sent as is with `content_type`.
async fn raw(
    app: &TestApp,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&'static str, &'static str)>,
) -> (StatusCode, String, Value) {
    let mut req = app.client.request(method.clone(), app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((content_type, body)) = body {
        req = req.header("content-type", content_type).body(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn every_protected_operation_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let mut protected = 0;
    for op in operations(&app).await {
        if !op.is_protected() {
            continue;
        }
        protected += 1;
        let path = op.at(&Uuid::new_v4().to_string());
        for token in [None, Some("not-a-token"), Some("a.b.c")] {
            let (status, content_type, body) = raw(&app, &op.method, &path, token, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} with token {token:?}: {body}",
                op.name()
            );
            assert_eq!(content_type, "application/problem+json", "{}", op.name());
            assert!(
                op.documents("401"),
                "{} does not document its 401",
                op.name()
            );
        }
    }
    assert!(protected > 40, "{protected} protected operations");
}

#[tokio::test]
async fn every_guarded_operation_refuses_a_user_without_its_permission() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // A member of the tenant with no role: signed in, allowed nothing.
    let (_, nobody) = app.create_user(&admin, "nobody", &[]).await;
    let mut guarded = 0;
    for op in operations(&app).await {
        // Their 403s are about tenants, not permissions: login to a tenant
        // one is not a member of, switching to one.
        if !op.is_protected() || !op.documents("403") || op.path == "/api/v1/auth/switch-tenant" {
            continue;
        }
        guarded += 1;
        let path = op.at(&Uuid::new_v4().to_string());
        let body = op
            .has_body()
            .then_some(("application/json", r#"{"name": "x"}"#));
        let (status, content_type, reply) = raw(&app, &op.method, &path, Some(&nobody), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}: {reply}", op.name());
        assert_eq!(content_type, "application/problem+json", "{}", op.name());
        assert_eq!(reply["code"], "forbidden", "{}: {reply}", op.name());
    }
    assert!(guarded > 35, "{guarded} guarded operations");
    // What needs no permission still works for them.
    assert_eq!(
        app.get("/api/v1/auth/me", &nobody).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/auth/sessions", &nobody).await.status,
        StatusCode::OK
    );
}

/// The resources of tenant `default` that another tenant's administrator
/// must not reach, by the path prefix of their `{id}` routes.
struct Resources {
    by_prefix: Vec<(&'static str, String)>,
}

impl Resources {
    async fn create(app: &TestApp, admin: &str) -> Self {
        let device = app.create_device(admin, "core-1").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let role = app
            .post(
                "/api/v1/roles",
                admin,
                json!({"name": "auditor", "permissions": ["audit:read"]}),
            )
            .await;
        assert_eq!(role.status, StatusCode::CREATED, "{}", role.body);
        let (user, _) = app.create_user(admin, "local-user", &["viewer"]).await;
        let job = app
            .post("/api/v1/jobs", admin, json!({"kind": "noop"}))
            .await;
        assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
        let schedule = app
            .post(
                "/api/v1/schedules",
                admin,
                json!({"name": "nightly", "cron": "0 2 * * *", "kind": "noop", "params": {}}),
            )
            .await;
        assert_eq!(schedule.status, StatusCode::CREATED, "{}", schedule.body);
        let workflow = app
            .post(
                "/api/v1/workflows",
                admin,
                json!({"chain": [{"kind": "noop"}, {"kind": "noop"}]}),
            )
            .await;
        assert_eq!(workflow.status, StatusCode::ACCEPTED, "{}", workflow.body);
        let file: Value = app
            .client
            .post(app.url("/api/v1/files"))
            .bearer_auth(admin)
            .multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(b"some text".to_vec()).file_name("notes.txt"),
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sessions = app.get("/api/v1/auth/sessions", admin).await;
        let session = sessions.body["items"][0]["id"].as_str().unwrap().to_owned();
        let id = |reply: &support::Reply| reply.body["id"].as_str().unwrap().to_owned();
        Self {
            by_prefix: vec![
                ("/api/v1/devices/", device),
                ("/api/v1/roles/", id(&role)),
                ("/api/v1/users/", user.to_string()),
                ("/api/v1/jobs/events/", id(&job)),
                ("/api/v1/jobs/", id(&job)),
                ("/api/v1/schedules/", id(&schedule)),
                ("/api/v1/workflows/", id(&workflow)),
                ("/api/v1/auth/sessions/", session),
                ("/api/v1/files/", file["id"].as_str().unwrap().to_owned()),
            ],
        }
    }

    fn id_for(&self, path: &str) -> &str {
        self.by_prefix
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(_, id)| id.as_str())
            .unwrap_or_else(|| panic!("no resource for {path}: add one to this test"))
    }
}

/// A body the operation accepts, so that only the resource's tenant decides.
fn valid_body(op: &Operation) -> Option<Value> {
    let body = match (op.method.as_str(), op.path.as_str()) {
        ("PATCH", "/api/v1/devices/{id}") => json!({"name": "renamed"}),
        ("PATCH", "/api/v1/roles/{id}") => json!({"description": "renamed"}),
        ("PATCH", "/api/v1/users/{id}") => json!({"is_active": true}),
        ("PUT", "/api/v1/users/{id}/roles") => json!({"roles": ["viewer"]}),
        ("PATCH", "/api/v1/schedules/{id}") => json!({"name": "renamed"}),
        _ if op.has_body() => panic!("{}: add a valid body to this test", op.name()),
        _ => return None,
    };
    Some(body)
}

#[tokio::test]
async fn another_tenants_resources_answer_404_on_every_route() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let theirs = Resources::create(&app, &admin).await;
    let (_, other) = app.tenant_with_admin("other").await;
    let ops: Vec<Operation> = operations(&app)
        .await
        .into_iter()
        // Tenants are the platform's, not a tenant's.
        .filter(|op| op.path.contains("{id}") && !op.path.starts_with("/api/v1/tenants/"))
        .collect();
    assert!(ops.len() > 20, "{} operations on one resource", ops.len());

    // Reads first, while every resource still exists: its own tenant sees it.
    for op in ops.iter().filter(|op| op.method == Method::GET) {
        let path = op.at(theirs.id_for(&op.path));
        if !op.is_stream() && !op.path.ends_with("/download") {
            let own = app.get(&path, &admin).await;
            assert_eq!(
                own.status,
                StatusCode::OK,
                "{} in its tenant: {}",
                op.name(),
                own.body
            );
        }
    }
    // Mutations before deletions, so each finds its resource in place.
    let mut ordered: Vec<&Operation> = ops.iter().collect();
    ordered.sort_by_key(|op| op.method == Method::DELETE);
    for op in ordered {
        let path = op.at(theirs.id_for(&op.path));
        let reply = app
            .request(op.method.clone(), &path, Some(&other), valid_body(op))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{} from another tenant: {}",
            op.name(),
            reply.body
        );
        assert!(
            op.documents("404"),
            "{} does not document its 404",
            op.name()
        );
        // The same answer as for an id that exists nowhere.
        let nowhere = app
            .request(
                op.method.clone(),
                &op.at(&Uuid::new_v4().to_string()),
                Some(&other),
                valid_body(op),
            )
            .await;
        assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{}", op.name());
        assert_eq!(
            reply.body["detail"],
            nowhere.body["detail"],
            "{}",
            op.name()
        );
    }
    // Nothing of the first tenant changed or went away.
    for (prefix, id) in &theirs.by_prefix {
        if *prefix == "/api/v1/jobs/events/" {
            continue;
        }
        let reply = if *prefix == "/api/v1/auth/sessions/" {
            app.get("/api/v1/auth/sessions", &admin).await
        } else {
            app.get(&format!("{prefix}{id}"), &admin).await
        };
        assert_eq!(reply.status, StatusCode::OK, "{prefix}{id}: {}", reply.body);
        if *prefix == "/api/v1/auth/sessions/" {
            assert!(
                reply.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["id"] == *id)
            );
        } else if !["/api/v1/jobs/"].contains(prefix) {
            assert!(reply.body["name"] != "renamed", "{prefix}: {}", reply.body);
            assert!(
                reply.body["description"] != "renamed",
                "{prefix}: {}",
                reply.body
            );
        }
    }
    let job = app
        .get(
            &format!("/api/v1/jobs/{}", theirs.id_for("/api/v1/jobs/")),
            &admin,
        )
        .await;
    assert_eq!(
        job.body["status"], "queued",
        "not cancelled by the other tenant"
    );

    // The other tenant's logs hold none of the first tenant's rows, which
    // the first tenant itself sees: a request marked by its id, and the
    // logins of a user who is a member of the first tenant only.
    let marked = app
        .client
        .post(app.url("/api/v1/devices"))
        .bearer_auth(&admin)
        .header("x-request-id", "tenant-a-marker")
        .json(
            &json!({"name": "marked", "protocol": "snmp", "host": "127.0.0.2",
                      "snmp": {"version": "v2c", "community": "c"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(marked.status(), StatusCode::CREATED);
    let rows = |token: &str, logs: &'static str| {
        let (app, token) = (&app, token.to_owned());
        async move {
            let page = app.get(&format!("/api/v1/{logs}?size=100"), &token).await;
            assert_eq!(page.status, StatusCode::OK, "{logs}: {}", page.body);
            page.body["items"].as_array().unwrap().clone()
        }
    };
    let marked_in = |rows: &[Value]| rows.iter().any(|r| r["request_id"] == "tenant-a-marker");
    let local_in = |rows: &[Value]| rows.iter().any(|r| r["username"] == "local-user");
    assert!(marked_in(&rows(&admin, "audit-logs").await));
    assert!(local_in(&rows(&admin, "login-logs").await));
    let (audit, logins) = (
        rows(&other, "audit-logs").await,
        rows(&other, "login-logs").await,
    );
    assert!(
        !audit.is_empty() && !logins.is_empty(),
        "the other tenant has rows of its own"
    );
    assert!(!marked_in(&audit), "another tenant's audit row leaked");
    assert!(!local_in(&logins), "another tenant's login row leaked");
}

/// Counts of the tables a request could write, to see that refused ones
/// wrote nothing.
async fn table_counts(app: &TestApp) -> Vec<(String, i64)> {
    let owner = app.db.owner().await;
    let mut counts = Vec::new();
    for table in [
        "tenants",
        "users",
        "memberships",
        "roles",
        "role_permissions",
        "membership_roles",
        "devices",
        "files",
        "jobs",
        "job_outbox",
        "schedules",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&owner)
                .await
                .unwrap();
        counts.push((table.to_owned(), n));
    }
    counts
}

#[tokio::test]
async fn bad_input_on_every_operation_gets_a_clear_4xx_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let before = table_counts(&app).await;
    let mut checked = 0;
    for op in operations(&app).await {
        let token = op.is_protected().then_some(admin.as_str());
        let problem = |status, content_type: &str, body: &Value, expected, what: &str| {
            assert_eq!(status, expected, "{} {what}: {body}", op.name());
            assert_eq!(
                content_type,
                "application/problem+json",
                "{} {what}",
                op.name()
            );
            assert!(body["detail"].is_string(), "{} {what}: {body}", op.name());
        };
        if op.path.contains("{id}") {
            let (status, ct, body) = raw(&app, &op.method, &op.at("not-a-uuid"), token, None).await;
            problem(status, &ct, &body, StatusCode::BAD_REQUEST, "with a bad id");
            checked += 1;
        }
        let path = op.at(&Uuid::new_v4().to_string());
        if op.is_multipart() {
            let cases = [
                (
                    ("application/json", r#"{"file": "x"}"#),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "with JSON",
                ),
                (
                    ("multipart/form-data; boundary=XyZ", "no parts at all"),
                    StatusCode::BAD_REQUEST,
                    "with a broken multipart body",
                ),
                (
                    (
                        "multipart/form-data; boundary=XyZ",
                        "--XyZ\r\nContent-Disposition: form-data; name=\"zzz_unknown\"\r\n\r\n1\r\n--XyZ--\r\n",
                    ),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "with an unknown part",
                ),
            ];
            for (body, expected, what) in cases {
                let (status, ct, reply) = raw(&app, &op.method, &path, token, Some(body)).await;
                problem(status, &ct, &reply, expected, what);
                if expected == StatusCode::UNPROCESSABLE_ENTITY {
                    assert_eq!(reply["errors"][0]["field"], "zzz_unknown", "{reply}");
                }
                checked += 1;
            }
        } else if op.has_body() {
            let cases = [
                (
                    ("application/json", r#"{"name": "#),
                    StatusCode::BAD_REQUEST,
                    "with broken JSON",
                ),
                (
                    ("application/json", "[1, 2]"),
                    StatusCode::BAD_REQUEST,
                    "with an array",
                ),
                (
                    ("text/plain", "{}"),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "with text/plain",
                ),
                (
                    ("application/json", r#"{"zzz_unknown": 1}"#),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "with an unknown field",
                ),
            ];
            for (body, expected, what) in cases {
                let (status, ct, reply) = raw(&app, &op.method, &path, token, Some(body)).await;
                problem(status, &ct, &reply, expected, what);
                if expected == StatusCode::UNPROCESSABLE_ENTITY {
                    let named = reply["errors"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["field"] == "zzz_unknown");
                    assert!(named, "{} names the unknown field: {reply}", op.name());
                }
                checked += 1;
            }
        }
        if op.has_query() {
            let (status, ct, reply) = raw(
                &app,
                &op.method,
                &format!("{path}?zzz_unknown=1"),
                token,
                None,
            )
            .await;
            problem(
                status,
                &ct,
                &reply,
                StatusCode::UNPROCESSABLE_ENTITY,
                "with an unknown query parameter",
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked} bad requests");
    assert_eq!(
        table_counts(&app).await,
        before,
        "a refused request wrote something"
    );
}
