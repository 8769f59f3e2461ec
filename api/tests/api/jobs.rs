//! The jobs API: submission with its outbox record, validation at the door,
//! idempotency, listing, results and cancel. (The worker is not part of this.)

use crate::support;
use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn outbox_rows(app: &TestApp) -> Vec<(uuid::Uuid, Value)> {
    let owner = app.db.owner().await;
    sqlx::query_as("SELECT job_id, payload FROM job_outbox ORDER BY id")
        .fetch_all(&owner)
        .await
        .unwrap()
}

async fn post_job(app: &TestApp, token: &str, body: Value, key: Option<&str>) -> support::Reply {
    let mut req = app
        .client
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    support::Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn a_job_and_its_outbox_record_are_written_together() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let reply = post_job(
        &app,
        &token,
        json!({"kind": "noop", "params": {"sleep_ms": 10}}),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let job = &reply.body;
    assert_eq!(job["status"], "queued");
    assert_eq!(
        (job["progress"].as_i64(), job["attempts"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(job["params"], json!({"sleep_ms": 10}));
    for field in [
        "id",
        "kind",
        "device_id",
        "params",
        "status",
        "progress",
        "attempts",
        "error",
        "schedule_id",
        "scheduled_for",
        "created_at",
        "started_at",
        "finished_at",
    ] {
        assert!(job.get(field).is_some(), "job lacks {field}");
    }
    let outbox = outbox_rows(&app).await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0.to_string(), job["id"].as_str().unwrap());
    let envelope =
        ferro_tasks::TaskEnvelope::from_bytes(outbox[0].1.to_string().as_bytes()).unwrap();
    assert_eq!((envelope.kind.as_str(), envelope.attempt), ("noop", 1));
    assert_eq!(envelope.tenant_id, app.db.default_tenant());

    let got = app
        .get(
            &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(got.body, *job);
}

/// The envelope carries the trace of the request that enqueued the job: the
/// caller's W3C `traceparent`, or a new trace named after the request id.
#[tokio::test]
async fn a_job_carries_the_trace_of_its_request() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut req = app
            .client
            .post(app.url("/api/v1/jobs"))
            .bearer_auth(&token)
            .json(&json!({"kind": "noop"}));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let given = send(vec![("traceparent", parent), ("tracestate", "vendor=x")])
        .await
        .unwrap();
    assert_eq!(given.status(), StatusCode::ACCEPTED);
    let named = send(vec![
        ("x-request-id", "0f4c3a9e-6a43-4b2e-9b59-5a1d2c3e4f50"),
        ("traceparent", "garbage"),
    ])
    .await
    .unwrap();
    assert_eq!(named.status(), StatusCode::ACCEPTED);
    let rows = outbox_rows(&app).await;
    assert_eq!(rows[0].1["trace"]["traceparent"], parent);
    assert_eq!(rows[0].1["trace"]["tracestate"], "vendor=x");
    let made = rows[1].1["trace"]["traceparent"].as_str().unwrap();
    assert!(
        made.starts_with("00-0f4c3a9e6a434b2e9b595a1d2c3e4f50-") && made.len() == 55,
        "{made}"
    );
}

#[tokio::test]
async fn bad_jobs_are_refused_at_the_door_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let web = app
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "web", "protocol": "http", "host": "example.com"}),
        )
        .await
        .body;
    let (_, acme) = app.tenant_with_admin("acme").await;
    let foreign = app.create_device(&acme, "acme-router").await;

    let cases = [
        (json!({"kind": "format.disk"}), "kind"),
        (
            json!({"kind": "noop", "params": {"sleep_ms": "soon"}}),
            "params.sleep_ms",
        ),
        (
            json!({"kind": "noop", "params": {"colour": 1}}),
            "params.colour",
        ),
        (
            json!({"kind": "snmp.get", "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}),
            "device_id",
        ),
        (
            json!({"kind": "snmp.get", "device_id": web["id"], "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}),
            "device_id",
        ),
        (
            json!({"kind": "snmp.get", "device_id": foreign["id"], "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}),
            "device_id",
        ),
        (
            json!({"kind": "snmp.get", "device_id": uuid::Uuid::new_v4(), "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}),
            "device_id",
        ),
        (
            json!({"kind": "snmp.walk", "device_id": foreign["id"], "params": {"oid": "not-an-oid"}}),
            "params.oid",
        ),
        (
            // Numeric, but no SNMP encoder takes a second arc of 40 or more.
            json!({"kind": "snmp.walk", "device_id": foreign["id"], "params": {"oid": "1.40.1"}}),
            "params.oid",
        ),
        (
            json!({"kind": "email.send", "params": {"to": "x", "subject": "", "body": "b"}}),
            "params.to",
        ),
        // Addresses the worker's mail library would refuse at send time.
        (
            json!({"kind": "email.send", "params": {"to": "a@b.com;c@d.com", "subject": "s", "body": "b"}}),
            "params.to",
        ),
        (
            json!({"kind": "email.send", "params": {"to": "a\"b@b.com", "subject": "s", "body": "b"}}),
            "params.to",
        ),
        (json!({"kind": "noop", "device_id": web["id"]}), "device_id"),
        (json!({"kind": "noop", "priority": 10}), "priority"),
        (json!({"kind": "noop", "queue": "nowhere"}), "queue"),
    ];
    for (body, field) in cases {
        let reply = post_job(&app, &token, body.clone(), None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.field_errors()[0], field, "{body}: {}", reply.body);
    }
    assert!(outbox_rows(&app).await.is_empty());
    assert_eq!(app.get("/api/v1/jobs", &token).await.body["total"], 0);
}

#[tokio::test]
async fn idempotency_keys_return_the_first_job_per_tenant() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let body = json!({"kind": "noop", "params": {"sleep_ms": 1}});
    let first = post_job(&app, &token, body.clone(), Some("order-42")).await;
    let again = post_job(&app, &token, body.clone(), Some("order-42")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    for reply in [&first, &again] {
        let id = first.body["id"].as_str().unwrap();
        assert_eq!(
            reply.headers["location"],
            format!("/api/v1/jobs/{id}").as_str()
        );
    }
    let other = post_job(
        &app,
        &token,
        json!({"kind": "noop", "params": {"sleep_ms": 2}}),
        Some("order-42"),
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(
        outbox_rows(&app).await.len(),
        1,
        "one job, one outbox record"
    );

    let (_, acme) = app.tenant_with_admin("acme").await;
    let theirs = post_job(&app, &acme, body, Some("order-42")).await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED);
    assert_ne!(theirs.body["id"], first.body["id"]);
    let bad_key = post_job(
        &app,
        &token,
        json!({"kind": "noop"}),
        Some(&"k".repeat(300)),
    )
    .await;
    assert_eq!(bad_key.status, StatusCode::UNPROCESSABLE_ENTITY);
    let spaced = post_job(&app, &token, json!({"kind": "noop"}), Some("order 42")).await;
    assert_eq!(spaced.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(spaced.field_errors(), ["Idempotency-Key"]);
}

#[tokio::test]
async fn jobs_are_listed_filtered_and_isolated_by_tenant() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let device = app.create_device(&token, "r1").await;
    for _ in 0..3 {
        post_job(&app, &token, json!({"kind": "noop"}), None).await;
    }
    let snmp = post_job(&app, &token, json!({"kind": "snmp.get", "device_id": device["id"], "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}), None).await;
    assert_eq!(snmp.status, StatusCode::ACCEPTED, "{}", snmp.body);

    let all = app.get("/api/v1/jobs?size=2", &token).await.body;
    assert_eq!(
        (
            all["total"].as_i64(),
            all["items"].as_array().unwrap().len()
        ),
        (Some(4), 2)
    );
    assert_eq!(all["items"][0]["kind"], "snmp.get", "newest first");
    let by_kind = app.get("/api/v1/jobs?kind=noop", &token).await.body;
    assert_eq!(by_kind["total"], 3);
    let by_device = app
        .get(
            &format!("/api/v1/jobs?device_id={}", device["id"].as_str().unwrap()),
            &token,
        )
        .await
        .body;
    assert_eq!(by_device["total"], 1);
    let queued = app.get("/api/v1/jobs?status=queued", &token).await.body;
    assert_eq!(queued["total"], 4);
    for bad in ["status=done", "kind=nope", "device_id=12", "page=0"] {
        assert_eq!(
            app.get(&format!("/api/v1/jobs?{bad}"), &token).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }

    let (_, acme) = app.tenant_with_admin("acme").await;
    assert_eq!(app.get("/api/v1/jobs", &acme).await.body["total"], 0);
    let id = snmp.body["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/jobs/{id}"),
        format!("/api/v1/jobs/{id}/results"),
    ] {
        assert_eq!(
            app.get(&path, &acme).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        app.request(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&acme),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let results = app
        .get(&format!("/api/v1/jobs/{id}/results"), &token)
        .await
        .body;
    assert_eq!(
        results,
        json!({"items": [], "total": 0, "page": 1, "size": 20})
    );
}

#[tokio::test]
async fn cancel_stops_queued_jobs_at_once_and_asks_running_ones() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let queued = post_job(&app, &token, json!({"kind": "noop"}), None)
        .await
        .body;
    let running = post_job(&app, &token, json!({"kind": "noop"}), None)
        .await
        .body;
    let (qid, rid) = (
        queued["id"].as_str().unwrap(),
        running["id"].as_str().unwrap(),
    );
    // Pretend a worker has started the second one.
    let owner = app.db.owner().await;
    sqlx::query(
        "UPDATE jobs SET status = 'running', started_at = now(), attempts = 1 WHERE id = $1::uuid",
    )
    .bind(rid)
    .execute(&owner)
    .await
    .unwrap();

    let cancel = |id: &str| {
        let path = format!("/api/v1/jobs/{id}/cancel");
        let token = token.clone();
        let app = &app;
        async move { app.request(Method::POST, &path, Some(&token), None).await }
    };
    let done = cancel(qid).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.body["status"], "cancelled");
    assert!(done.body["finished_at"].is_string());
    let asked = cancel(rid).await;
    assert_eq!(asked.body["status"], "running");
    assert!(asked.body["cancel_requested_at"].is_string());
    assert_eq!(cancel(qid).await.status, StatusCode::CONFLICT);
    assert_eq!(
        cancel(&uuid::Uuid::new_v4().to_string()).await.status,
        StatusCode::NOT_FOUND
    );

    let admin = app.admin_token().await;
    let (_, viewer) = app.create_user(&admin, "viv", &["viewer"]).await;
    assert_eq!(
        app.get("/api/v1/jobs", &viewer).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post_job(&app, &viewer, json!({"kind": "noop"}), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        cancel(rid).await.status,
        StatusCode::OK,
        "asking twice is fine"
    );
}

#[tokio::test]
async fn submitted_jobs_reach_rabbitmq_at_once() {
    submitted_jobs_reach_the_broker_at_once(TestApp::spawn().await).await;
}

#[tokio::test]
async fn submitted_jobs_reach_redis_streams_at_once() {
    submitted_jobs_reach_the_broker_at_once(
        TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await,
    )
    .await;
}

async fn submitted_jobs_reach_the_broker_at_once(app: TestApp) {
    let token = app.admin_token().await;
    let job = post_job(&app, &token, json!({"kind": "noop"}), None)
        .await
        .body;
    let mut consumer = app.state.broker.consumer(1, "test");
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(5), consumer.next())
        .await
        .unwrap();
    assert_eq!(
        delivery.envelope.as_ref().unwrap().job_id.to_string(),
        job["id"].as_str().unwrap()
    );
    delivery.ack().await.unwrap();
    consumer.close().await;
    let owner = app.db.owner().await;
    let published: bool = sqlx::query_scalar("SELECT published_at IS NOT NULL FROM job_outbox")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(
        published,
        "the fast path marks the record so the relay skips it"
    );
}

#[tokio::test]
async fn with_the_broker_down_jobs_are_still_accepted_and_wait_in_the_outbox() {
    let app = TestApp::spawn_with(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let token = app.admin_token().await;
    let reply = post_job(&app, &token, json!({"kind": "noop"}), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let owner = app.db.owner().await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE published_at IS NULL")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(pending, 1, "left for the relay");
}

#[tokio::test]
async fn cancelled_jobs_are_never_published() {
    let app = TestApp::spawn_with(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).await;
    let token = app.admin_token().await;
    let job = post_job(&app, &token, json!({"kind": "noop"}), None)
        .await
        .body;
    let id = job["id"].as_str().unwrap();
    let cancel = app
        .request(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(cancel.body["status"], "cancelled");
    let owner = app.db.owner().await;
    let (published, error): (bool, Option<String>) =
        sqlx::query_as("SELECT published_at IS NOT NULL, last_error FROM job_outbox")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert!(published);
    assert_eq!(error.as_deref(), Some("cancelled"));
}

#[tokio::test]
async fn platform_maintenance_jobs_need_a_platform_administrator() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, tenant_admin) = app.create_user(&admin, "tad", &["admin"]).await;
    let refused = post_job(
        &app,
        &tenant_admin,
        json!({"kind": "sessions.cleanup", "params": {"retention_days": 30}}),
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let too_short = post_job(
        &app,
        &admin,
        json!({"kind": "sessions.cleanup", "params": {"retention_days": 1}}),
        None,
    )
    .await;
    assert_eq!(too_short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = post_job(
        &app,
        &admin,
        json!({"kind": "sessions.cleanup", "params": {"retention_days": 30}}),
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);

    // Nor can a tenant administrator cancel such a job, or disable or
    // delete such a schedule: all of them are left as they were.
    let job = ok.body["id"].as_str().unwrap();
    let cancel = app
        .request(
            Method::POST,
            &format!("/api/v1/jobs/{job}/cancel"),
            Some(&tenant_admin),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN, "{:?}", cancel.body);
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{job}"), &admin).await.body["status"],
        "queued"
    );
    let schedule = app
        .post(
            "/api/v1/schedules",
            &admin,
            json!({"name": "nightly-cleanup", "cron": "0 3 * * *", "timezone": "UTC",
                   "kind": "sessions.cleanup", "params": {"retention_days": 30}}),
        )
        .await;
    assert_eq!(schedule.status, StatusCode::CREATED, "{:?}", schedule.body);
    let sid = schedule.body["id"].as_str().unwrap();
    // Nor may it be turned into a kind the tenant may run (a takeover).
    let retarget = json!({"kind": "noop", "params": {}, "cron": "* * * * *"});
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/schedules/{sid}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/schedules/{sid}/enable"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/schedules/{sid}"), None),
        (
            Method::PATCH,
            format!("/api/v1/schedules/{sid}"),
            Some(retarget),
        ),
    ] {
        let reply = app.request(method, &path, Some(&tenant_admin), body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path}: {:?}",
            reply.body
        );
    }
    let kept = app.get(&format!("/api/v1/schedules/{sid}"), &admin).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert_eq!(kept.body["enabled"], true);
    assert_eq!(kept.body["kind"], "sessions.cleanup");
}
