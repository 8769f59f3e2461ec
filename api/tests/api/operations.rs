//! Operations on jobs (issue 24): search by text, status, queue, workflow,
//! time and order with cursor pages; each attempt's history; retry,
//! discard and bulk actions, tenant-scoped, with bad input refused and
//! nothing changed.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deferred::{start_relay, wait_job};
use crate::support::{self, TestApp};

async fn submit(app: &TestApp, token: &str, body: Value) -> String {
    let reply = app.post("/api/v1/jobs", token, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_failed_job_is_found_by_its_error_retried_and_its_attempts_kept_on_rabbitmq() {
    failed_job_found_and_retried(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_failed_job_is_found_by_its_error_retried_and_its_attempts_kept_on_redis_streams() {
    failed_job_found_and_retried(
        TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await,
    )
    .await;
}

async fn failed_job_found_and_retried(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "ops-worker", 4);
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;
    let failing = submit(
        &app,
        &token,
        json!({"kind": "noop", "params": {"fail_attempts": 5, "sleep_ms": 1}, "max_attempts": 2}),
    )
    .await;
    let fine = submit(
        &app,
        &token,
        json!({"kind": "noop", "params": {"sleep_ms": 3}}),
    )
    .await;
    let failed = wait_job(&app, &token, &failing, 30, |j| j["status"] == "failed").await;
    wait_job(&app, &token, &fine, 30, |j| j["status"] == "succeeded").await;
    assert_eq!(failed["attempts"], 2);

    // Each attempt, with the worker that ran it and its error.
    let attempts = app
        .get(&format!("/api/v1/jobs/{failing}/attempts"), &token)
        .await;
    assert_eq!(attempts.status, StatusCode::OK, "{}", attempts.body);
    let attempts = attempts.body.as_array().unwrap().clone();
    let outcomes: Vec<(i64, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, vec![(1, "retried"), (2, "failed")]);
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["worker"], "ops-worker");
        assert_eq!(
            attempt["error"],
            format!("noop: failing attempt {} as asked", n + 1)
        );
        assert!(attempt["started_at"].as_str() <= attempt["finished_at"].as_str());
    }
    let fine_attempts = app
        .get(&format!("/api/v1/jobs/{fine}/attempts"), &token)
        .await
        .body;
    assert_eq!(fine_attempts[0]["outcome"], "succeeded");
    assert_eq!(fine_attempts[0]["error"], Value::Null);

    // Found by a word of its error, and by its parameters.
    for query in [
        "q=FAILING%20ATTEMPT%202",
        "q=fail_attempts",
        "q=attempt&status=failed",
    ] {
        let found = app.get(&format!("/api/v1/jobs?{query}"), &token).await;
        assert_eq!(found.status, StatusCode::OK, "{query}: {}", found.body);
        assert_eq!(ids(&found.body), vec![failing.clone()], "{query}");
    }
    let none = app.get("/api/v1/jobs?q=100%25", &token).await;
    assert_eq!(none.body["total"], 0, "% is literal: {}", none.body);

    // A retry is a new job linked to the original, which stays failed; a
    // succeeded job is not retried.
    let refused = app
        .post(&format!("/api/v1/jobs/{fine}/retry"), &token, json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let retried = app
        .post(&format!("/api/v1/jobs/{failing}/retry"), &token, json!({}))
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    let again = retried.body["id"].as_str().unwrap().to_owned();
    assert_ne!(again, failing);
    assert_eq!(retried.body["retry_of"], failing.as_str());
    assert_eq!(retried.body["attempts"], 0);
    assert_eq!(retried.body["max_attempts"], 2);
    assert_eq!(retried.body["params"], failed["params"]);
    let rerun = wait_job(&app, &token, &again, 30, |j| j["status"] == "failed").await;
    assert_eq!(rerun["attempts"], 2, "a fresh attempt budget");
    let original = app.get(&format!("/api/v1/jobs/{failing}"), &token).await;
    assert_eq!(original.body["status"], "failed");
    assert_eq!(original.body["attempts"], 2);

    // The statistics count each attempt once, where it ended.
    let stats = app
        .get("/api/v1/jobs/stats?window=1h&bucket=1m", &token)
        .await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let series = stats.body["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{}", stats.body);
    assert_eq!(series[0]["kind"], "noop");
    let points = series[0]["points"].as_array().unwrap();
    assert!((60..=61).contains(&points.len()), "{}", points.len());
    let sum = |field: &str| -> i64 { points.iter().map(|p| p[field].as_i64().unwrap()).sum() };
    assert_eq!((sum("succeeded"), sum("failed"), sum("retried")), (1, 2, 2));
    assert!(points.iter().any(|p| p["run_p50_ms"].is_f64()));
    assert!(
        points
            .iter()
            .any(|p| p["wait_p95_ms"].as_f64().is_some_and(|w| w >= 0.0))
    );
    for query in [
        "window=2y",
        "bucket=1s",
        "window=1h&bucket=2h",
        "window=30d&bucket=10s",
    ] {
        let bad = app
            .get(&format!("/api/v1/jobs/stats?{query}"), &token)
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }

    // Another tenant sees none of it.
    let (_, other) = app.tenant_with_admin("other").await;
    for path in [
        format!("/api/v1/jobs/{failing}/attempts"),
        format!("/api/v1/jobs/{failing}"),
    ] {
        assert_eq!(app.get(&path, &other).await.status, StatusCode::NOT_FOUND);
    }
    let theirs = app
        .post(&format!("/api/v1/jobs/{failing}/retry"), &other, json!({}))
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/jobs?q=fail_attempts", &other).await.body["total"],
        0
    );
    assert_eq!(
        app.get("/api/v1/jobs/stats", &other).await.body["series"],
        json!([])
    );
    relay.cancel();
    worker.cancel();
}

#[tokio::test]
async fn filters_sorts_and_cursor_pages_find_every_job_once() {
    // The project's queues file: noop jobs may go to `email` when asked.
    let queues = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/queues.json");
    let app = TestApp::spawn_with(&[("QUEUES_CONFIG", queues)]).await;
    let token = app.admin_token().await;
    let mut all = Vec::new();
    for n in 0..25 {
        let body = if n % 5 == 0 {
            json!({"kind": "noop", "queue": "email", "params": {"sleep_ms": n}})
        } else {
            json!({"kind": "noop", "params": {"sleep_ms": n}})
        };
        all.push(submit(&app, &token, body).await);
    }
    let middle = app
        .get(&format!("/api/v1/jobs/{}", all[12]), &token)
        .await
        .body;
    let cancelled = app
        .post(
            &format!("/api/v1/jobs/{}/cancel", all[3]),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);

    // Newest first by cursor: every job once, in order.
    let mut seen = Vec::new();
    let mut path = "/api/v1/jobs?size=10".to_owned();
    loop {
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["total"], 25);
        assert_eq!(page.body["total_capped"], false);
        seen.extend(ids(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/jobs?size=10&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = all.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    // Oldest first, the same way.
    let page = app
        .get("/api/v1/jobs?size=20&sort=created_at", &token)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(
            &format!("/api/v1/jobs?size=20&sort=created_at&cursor={cursor}"),
            &token,
        )
        .await;
    assert_eq!([ids(&page.body), ids(&rest.body)].concat(), all);
    assert_eq!(rest.body["next_cursor"], Value::Null);

    // Several statuses, repeated or with commas; a queue; a time range.
    for query in [
        "status=cancelled&status=succeeded",
        "status=cancelled,succeeded",
    ] {
        let page = app.get(&format!("/api/v1/jobs?{query}"), &token).await;
        assert_eq!(ids(&page.body), vec![all[3].clone()], "{query}");
    }
    let queued = app.get("/api/v1/jobs?queue=email&size=100", &token).await;
    let expected: Vec<String> = (0..25)
        .rev()
        .filter(|n| n % 5 == 0)
        .map(|n| all[n].clone())
        .collect();
    assert_eq!(ids(&queued.body), expected);
    let since = middle["created_at"].as_str().unwrap().replace('+', "%2B");
    let newer = app
        .get(
            &format!("/api/v1/jobs?size=100&created_after={since}"),
            &token,
        )
        .await;
    assert_eq!(newer.body["total"], 13, "{}", newer.body);
    let older = app
        .get(
            &format!("/api/v1/jobs?size=100&created_before={since}"),
            &token,
        )
        .await;
    assert_eq!(older.body["total"], 12);
    let finished = app
        .get("/api/v1/jobs?sort=-finished_at&size=1", &token)
        .await;
    assert_eq!(ids(&finished.body), vec![all[3].clone()], "finished first");

    // Bad queries are 422s naming the parameter.
    let cursor = seen_cursor(&app, &token).await;
    for (query, field) in [
        ("sort=name", "sort"),
        ("cursor=zz", "cursor"),
        (&*format!("cursor={cursor}&sort=started_at"), "cursor"),
        (&*format!("cursor={cursor}&page=2"), "page"),
        ("created_after=yesterday", "created_after"),
        ("status=failed&status=lost", "status"),
        ("queue=nowhere", "queue"),
        ("kind=format.disk", "kind"),
    ] {
        let reply = app.get(&format!("/api/v1/jobs?{query}"), &token).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(reply.field_errors(), vec![field.to_owned()], "{query}");
    }
}

async fn seen_cursor(app: &TestApp, token: &str) -> String {
    let page = app.get("/api/v1/jobs?size=1", token).await;
    page.body["next_cursor"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bulk_actions_take_what_the_filter_selects_and_refuse_an_empty_one() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (_, other) = app.tenant_with_admin("other").await;
    let theirs = submit(&app, &other, json!({"kind": "noop"})).await;
    let mut mine = Vec::new();
    for n in 0..6 {
        mine.push(
            submit(
                &app,
                &token,
                json!({"kind": "noop", "params": {"sleep_ms": n}}),
            )
            .await,
        );
    }
    let email = submit(
        &app,
        &token,
        json!({"kind": "email.send", "params": {"to": "a@example.com", "subject": "s", "body": "b"}}),
    )
    .await;

    // Refused, and nothing changes: an empty filter, an unknown action, a
    // bad filter field, unknown fields.
    let empty = app
        .post(
            "/api/v1/jobs/bulk",
            &token,
            json!({"action": "cancel", "filter": {}}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
    assert_eq!(empty.code(), "empty_filter");
    for (body, field) in [
        (
            json!({"action": "explode", "filter": {"kind": "noop"}}),
            "action",
        ),
        (
            json!({"action": "cancel", "filter": {"status": ["lost"]}}),
            "filter.status",
        ),
        (
            json!({"action": "cancel", "filter": {"created_after": "soon"}}),
            "filter.created_after",
        ),
        (
            json!({"action": "cancel", "filter": {"colour": "red"}}),
            "filter.colour",
        ),
    ] {
        let reply = app.post("/api/v1/jobs/bulk", &token, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.field_errors(), vec![field.to_owned()], "{body}");
    }
    let queued = app.get("/api/v1/jobs?status=queued", &token).await;
    assert_eq!(queued.body["total"], 7);

    // Cancel the noop jobs: the email job and the other tenant's stay.
    let cancel = app
        .post(
            "/api/v1/jobs/bulk",
            &token,
            json!({"action": "cancel", "filter": {"kind": "noop"}}),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);
    assert_eq!(cancel.body, json!({"affected": 6, "more": false}));
    let email_job = app.get(&format!("/api/v1/jobs/{email}"), &token).await.body;
    assert_eq!(email_job["status"], "queued");
    let other_job = app
        .get(&format!("/api/v1/jobs/{theirs}"), &other)
        .await
        .body;
    assert_eq!(other_job["status"], "queued");

    // One by one: a queued job is neither discarded nor retried.
    let early = app.delete(&format!("/api/v1/jobs/{email}"), &token).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    let early = app
        .post(&format!("/api/v1/jobs/{email}/retry"), &token, json!({}))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    let gone = app
        .delete(&format!("/api/v1/jobs/{}", mine[0]), &token)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let after = app.get(&format!("/api/v1/jobs/{}", mine[0]), &token).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    let foreign = app.delete(&format!("/api/v1/jobs/{theirs}"), &token).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    // Retry the cancelled ones, then discard what is cancelled.
    let retry = app
        .post(
            "/api/v1/jobs/bulk",
            &token,
            json!({"action": "retry", "filter": {"status": ["cancelled", "queued"], "kind": "noop"}}),
        )
        .await;
    assert_eq!(retry.body, json!({"affected": 5, "more": false}));
    let retries = app
        .get("/api/v1/jobs?status=queued&kind=noop", &token)
        .await;
    assert_eq!(retries.body["total"], 5);
    assert!(
        retries.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["retry_of"].is_string())
    );
    let discard = app
        .post(
            "/api/v1/jobs/bulk",
            &token,
            json!({"action": "discard", "filter": {"status": ["cancelled"]}}),
        )
        .await;
    assert_eq!(discard.body, json!({"affected": 5, "more": false}));
    let owner = app.db.owner().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'cancelled'")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let outbox: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_outbox o WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id)",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(outbox, 0, "a discarded job leaves no outbox record");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(total, 7, "5 retries, the email job and the other tenant's");
}
