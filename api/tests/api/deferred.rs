//! Deferred, expiring and per-job-limited jobs (issue 23), on both brokers:
//! `run_at`/`countdown` keep a job `scheduled` until the relay releases it,
//! `expires_at` ends a job not started in time, and `max_attempts` and
//! `timeout_seconds` replace the kind's limits. Bad options write nothing.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{self, TestApp};

/// The outbox relay of a worker, in-process, looking every 50 ms.
pub fn start_relay(app: &TestApp, db: ferro_db::Db) -> CancellationToken {
    let stop = CancellationToken::new();
    let (broker, token) = (app.state.broker.clone(), stop.clone());
    tokio::spawn(async move {
        let every = Duration::from_millis(50);
        worker::relay::run(
            db,
            &broker,
            every,
            Duration::from_secs(60),
            token.cancelled_owned(),
        )
        .await
    });
    stop
}

/// The job once `done` holds for it (panics after `secs`).
pub async fn wait_job(
    app: &TestApp,
    token: &str,
    id: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let job = app.get(&format!("/api/v1/jobs/{id}"), token).await.body;
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < until, "job never got there: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(job: &Value, field: &str) -> DateTime<Utc> {
    job[field]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("{field} of {job}"))
        .with_timezone(&Utc)
}

/// Equal to the microsecond PostgreSQL keeps.
fn near(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_microseconds().is_some_and(|d| d.abs() <= 1)
}

fn ended(job: &Value) -> bool {
    ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn a_deferred_job_waits_scheduled_then_runs_on_time_on_rabbitmq() {
    deferred_job_runs_on_time(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_deferred_job_waits_scheduled_then_runs_on_time_on_redis_streams() {
    deferred_job_runs_on_time(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await)
        .await;
}

async fn deferred_job_runs_on_time(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "deferred", 2);
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;
    let run_at = Utc::now() + chrono::Duration::milliseconds(1500);
    let deferred = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "run_at": run_at.to_rfc3339()}),
        )
        .await;
    assert_eq!(deferred.status, StatusCode::ACCEPTED, "{}", deferred.body);
    assert_eq!(deferred.body["status"], "scheduled");
    assert!(
        near(at(&deferred.body, "run_at"), run_at),
        "{}",
        deferred.body
    );
    let by_countdown = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "countdown": 1.5}),
        )
        .await;
    assert_eq!(
        by_countdown.body["status"], "scheduled",
        "{}",
        by_countdown.body
    );
    // A job submitted after them but not deferred runs first.
    let now = app
        .post("/api/v1/jobs", &token, json!({"kind": "noop"}))
        .await;
    let now_id = now.body["id"].as_str().unwrap();
    let first = wait_job(&app, &token, now_id, 10, ended).await;
    assert_eq!(first["status"], "succeeded");
    let listed = app.get("/api/v1/jobs?status=scheduled", &token).await.body;
    assert_eq!(listed["total"], 2, "{listed}");
    for job in [&deferred.body, &by_countdown.body] {
        let id = job["id"].as_str().unwrap();
        let done = wait_job(&app, &token, id, 10, ended).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let due = at(&done, "run_at");
        let started = at(&done, "started_at");
        assert!(started >= due, "started {started} before its run_at {due}");
        assert!(
            started - due < chrono::Duration::seconds(1),
            "released {} ms late",
            (started - due).num_milliseconds()
        );
    }
    worker.cancel();
    relay.cancel();
}

#[tokio::test]
async fn a_scheduled_job_is_cancelled_and_never_runs() {
    let app = TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await;
    let worker = support::start_worker(&app, app.db.app().await, "deferred", 2);
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;
    let job = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "countdown": 1}),
        )
        .await
        .body;
    let id = job["id"].as_str().unwrap();
    let cancelled = app
        .post(&format!("/api/v1/jobs/{id}/cancel"), &token, json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let later = app.get(&format!("/api/v1/jobs/{id}"), &token).await.body;
    assert_eq!(
        (later["status"].as_str(), later["attempts"].as_i64()),
        (Some("cancelled"), Some(0)),
        "{later}"
    );
    assert!(later["started_at"].is_null());
    worker.cancel();
    relay.cancel();
}

#[tokio::test]
async fn a_job_not_started_before_it_expires_is_cancelled_on_rabbitmq() {
    expired_job_is_cancelled(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_job_not_started_before_it_expires_is_cancelled_on_redis_streams() {
    expired_job_is_cancelled(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await)
        .await;
}

async fn expired_job_is_cancelled(app: TestApp) {
    let token = app.admin_token().await;
    // No worker yet: the job waits in the broker past its expiry.
    let expires_at = Utc::now() + chrono::Duration::milliseconds(700);
    let job = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "expires_at": expires_at.to_rfc3339()}),
        )
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    assert!(
        near(at(&job.body, "expires_at"), expires_at),
        "{}",
        job.body
    );
    let keeps = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "expires_at": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await
        .body;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let worker = support::start_worker(&app, app.db.app().await, "expiry", 2);
    let id = job.body["id"].as_str().unwrap();
    let done = wait_job(&app, &token, id, 10, ended).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["error"], ferro_tasks::jobs::EXPIRED_ERROR);
    assert_eq!(done["attempts"], 0, "it never ran: {done}");
    let other = wait_job(&app, &token, keeps["id"].as_str().unwrap(), 10, ended).await;
    assert_eq!(other["status"], "succeeded", "{other}");
    worker.cancel();
}

#[tokio::test]
async fn a_job_s_own_time_limit_and_attempts_replace_its_kind_s() {
    let app = TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await;
    let worker = support::start_worker(&app, app.db.app().await, "limits", 2);
    let token = app.admin_token().await;
    let job = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "noop", "params": {"sleep_ms": 5000}, "timeout_seconds": 1,
                   "max_attempts": 1}),
        )
        .await
        .body;
    assert_eq!(
        (
            job["max_attempts"].as_i64(),
            job["timeout_seconds"].as_i64()
        ),
        (Some(1), Some(1)),
        "{job}"
    );
    let started = Instant::now();
    let done = wait_job(&app, &token, job["id"].as_str().unwrap(), 10, ended).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"], "timed out after 1 s");
    assert_eq!(done["attempts"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    worker.cancel();
}

#[tokio::test]
async fn bad_options_are_refused_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let past = (Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let soon = (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let later = (Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let cases = [
        (json!({"run_at": past}), "run_at"),
        (json!({"run_at": "tomorrow"}), "run_at"),
        (json!({"run_at": "2030-01-01T00:00:00Z"}), "run_at"),
        (json!({"run_at": soon, "countdown": 5}), "countdown"),
        (json!({"countdown": -1}), "countdown"),
        (json!({"countdown": "soon"}), "countdown"),
        (json!({"expires_at": past}), "expires_at"),
        (json!({"run_at": later, "expires_at": soon}), "expires_at"),
        (json!({"max_attempts": 0}), "max_attempts"),
        (json!({"max_attempts": 26}), "max_attempts"),
        (json!({"timeout_seconds": 0}), "timeout_seconds"),
        (json!({"timeout_seconds": 661}), "timeout_seconds"),
        (json!({"unique": {"key": ""}}), "unique.key"),
        (
            json!({"unique": {"period_seconds": 0}}),
            "unique.period_seconds",
        ),
        (json!({"unique": {"states": []}}), "unique.states"),
        (json!({"unique": {"states": ["done"]}}), "unique.states"),
        (json!({"unique": {"stats": ["queued"]}}), "unique"),
    ];
    for (options, field) in cases {
        let mut body = json!({"kind": "noop"});
        body.as_object_mut()
            .unwrap()
            .extend(options.as_object().unwrap().clone());
        let reply = app.post("/api/v1/jobs", &token, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        let fields = reply.field_errors();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{body}: {fields:?} should name {field}"
        );
    }
    let listed = app.get("/api/v1/jobs", &token).await.body;
    assert_eq!(listed["total"], 0, "{listed}");
    let owner = app.db.owner().await;
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM job_outbox")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(records, 0);
}
