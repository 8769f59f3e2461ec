//! `/api/v1/schedules` over real HTTP and PostgreSQL, and a schedule created
//! through the api fired by the real scheduler loop (in-process).

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn schedules_are_created_listed_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/schedules",
            &token,
            json!({"name": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Paris",
                   "kind": "noop", "params": {"sleep_ms": 10}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let s = created.body;
    assert_eq!(s["enabled"], true);
    assert_eq!(s["misfire_policy"], "fire_once");
    assert_eq!(s["source"], "api");
    let next: chrono::DateTime<chrono::Utc> = s["next_run_at"].as_str().unwrap().parse().unwrap();
    let paris = next.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(paris.format("%H:%M").to_string(), "02:00");
    let id = s["id"].as_str().unwrap();

    let list = app.get("/api/v1/schedules", &token).await.body;
    assert_eq!(list["total"], 1);

    let changed = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/schedules/{id}"),
            Some(&token),
            Some(json!({"cron": "*/10 * * * * *", "timezone": "UTC"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["cron"], "*/10 * * * * *");
    let next: chrono::DateTime<chrono::Utc> = changed.body["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next - chrono::Utc::now() <= chrono::Duration::seconds(10));

    let disabled = app
        .post(
            &format!("/api/v1/schedules/{id}/disable"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(disabled.body["enabled"], false);
    assert!(disabled.body["next_run_at"].is_null());
    let enabled = app
        .post(&format!("/api/v1/schedules/{id}/enable"), &token, json!({}))
        .await;
    assert!(enabled.body["next_run_at"].is_string());

    let runs = app
        .get(&format!("/api/v1/schedules/{id}/runs"), &token)
        .await;
    assert_eq!(runs.status, StatusCode::OK);
    assert_eq!(runs.body["total"], 0);

    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/schedules/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/schedules/{id}"), &token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_device_that_a_schedule_names_is_not_deleted() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let device = app.create_device(&token, "polled").await;
    let device_id = device["id"].as_str().unwrap();
    let schedule = app
        .post(
            "/api/v1/schedules",
            &token,
            json!({"name": "poll", "cron": "*/5 * * * *", "timezone": "UTC", "kind": "snmp.get", "device_id": device_id,
                   "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}),
        )
        .await;
    assert_eq!(schedule.status, StatusCode::CREATED, "{}", schedule.body);
    let sid = schedule.body["id"].as_str().unwrap();
    let refused = app
        .delete(&format!("/api/v1/devices/{device_id}"), &token)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("1 schedule")
    );
    // Nothing changed: the device is there and the schedule still names it.
    assert_eq!(
        app.get(&format!("/api/v1/devices/{device_id}"), &token)
            .await
            .status,
        StatusCode::OK
    );
    let kept = app
        .get(&format!("/api/v1/schedules/{sid}"), &token)
        .await
        .body;
    assert_eq!(kept["device_id"], device_id);
    assert_eq!(kept["enabled"], true);
    // Without the schedule the device goes.
    assert_eq!(
        app.delete(&format!("/api/v1/schedules/{sid}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/api/v1/devices/{device_id}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for (body, fields) in [
        (
            json!({"name": "x", "cron": "61 * * * *", "kind": "noop"}),
            vec!["cron"],
        ),
        (
            json!({"name": "x", "cron": "* * * *", "kind": "noop"}),
            vec!["cron"],
        ),
        (
            json!({"name": "x", "cron": "0 0 * * *", "timezone": "Mars/Base", "kind": "noop"}),
            vec!["timezone"],
        ),
        (
            json!({"name": "x", "cron": "0 0 * * *", "kind": "reboot.everything"}),
            vec!["kind"],
        ),
        (
            json!({"name": "", "cron": "bad", "timezone": "Nowhere", "kind": "noop", "misfire_policy": "later"}),
            vec!["name", "cron", "timezone", "misfire_policy"],
        ),
        (
            json!({"name": "x", "cron": "0 0 * * *", "kind": "noop", "params": {"sleep_ms": "long"}}),
            vec!["params.sleep_ms"],
        ),
        (
            json!({"name": "x", "cron": "0 0 * * *", "kind": "snmp.get", "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}}),
            vec!["device_id"],
        ),
    ] {
        let res = app.post("/api/v1/schedules", &token, body.clone()).await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            res.body
        );
        assert_eq!(res.field_errors(), fields, "{body}: {}", res.body);
    }
    let owner = app.db.owner().await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM schedules")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(count, 0);
    // A duplicate name is a conflict on the name.
    let first = json!({"name": "dup", "cron": "0 0 * * *", "kind": "noop"});
    assert_eq!(
        app.post("/api/v1/schedules", &token, first.clone())
            .await
            .status,
        StatusCode::CREATED
    );
    let again = app.post("/api/v1/schedules", &token, first).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_per_second_schedule_made_through_the_api_fires_once_per_second() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let stop = CancellationToken::new();
    let options =
        ferro_db::connect_options(app.db.env().raw("DATABASE_URL").unwrap(), "test").unwrap();
    let lock = ferro_db::leader::LeaderLock::new(options, scheduler::LEADER_KEY);
    let settings = scheduler::SchedulerSettings {
        grace: Duration::from_secs(1),
        instance: "api-test".into(),
        builtins: Vec::new(),
        queues: Default::default(),
    };
    tokio::spawn(scheduler::run(
        app.db.app().await,
        app.state.broker.clone(),
        lock,
        settings,
        Default::default(),
        stop.clone(),
    ));
    let created = app
        .post(
            "/api/v1/schedules",
            &token,
            json!({"name": "tick", "cron": "* * * * * *", "kind": "noop"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    let runs = loop {
        let runs = app
            .get(&format!("/api/v1/schedules/{id}/runs?size=100"), &token)
            .await
            .body;
        if runs["total"].as_i64().unwrap() >= 4 {
            break runs;
        }
        assert!(Instant::now() < deadline, "fired too little: {runs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut slots: Vec<String> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["scheduled_for"].as_str().unwrap().to_owned())
        .collect();
    let n = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), n, "no slot twice");
    // Each firing's envelope starts a trace, and its deadline is the next
    // slot: a slot's job that has not started by then is stale.
    let envelopes: Vec<(chrono::DateTime<chrono::Utc>, serde_json::Value)> = sqlx::query_as(
        "SELECT j.scheduled_for, o.payload FROM job_outbox o JOIN jobs j ON j.id = o.job_id \
         WHERE j.schedule_id = $1::uuid",
    )
    .bind(&id)
    .fetch_all(&app.db.owner().await)
    .await
    .unwrap();
    assert!(envelopes.len() >= 4);
    for (slot, envelope) in &envelopes {
        let deadline: chrono::DateTime<chrono::Utc> =
            envelope["deadline"].as_str().unwrap().parse().unwrap();
        assert_eq!(deadline, *slot + chrono::Duration::seconds(1), "{envelope}");
        assert!(
            envelope["trace"]["traceparent"]
                .as_str()
                .unwrap()
                .starts_with("00-")
        );
    }
    // Disabling stops it within a second or two.
    app.post(
        &format!("/api/v1/schedules/{id}/disable"),
        &token,
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = app
        .get(&format!("/api/v1/schedules/{id}/runs"), &token)
        .await
        .body["total"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = app
        .get(&format!("/api/v1/schedules/{id}/runs"), &token)
        .await
        .body["total"]
        .as_i64()
        .unwrap();
    assert_eq!(after, later, "a disabled schedule stopped firing");
    stop.cancel();
}

/// Two edits of one schedule at once are applied one after the other: a
/// disable racing a PATCH of the cron keeps both (an edit merges into the
/// values it read, so without a lock one undid the other).
#[tokio::test]
async fn edits_at_once_both_hold() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for round in 0..10 {
        let created = app
            .post(
                "/api/v1/schedules",
                &token,
                json!({"name": format!("race-{round}"), "cron": "0 2 * * *", "timezone": "UTC",
                       "kind": "noop", "params": {}}),
            )
            .await;
        let id = created.body["id"].as_str().unwrap().to_owned();
        let (disable_path, path) = (
            format!("/api/v1/schedules/{id}/disable"),
            format!("/api/v1/schedules/{id}"),
        );
        let disable = app.request(reqwest::Method::POST, &disable_path, Some(&token), None);
        let retime = app.request(
            reqwest::Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"cron": "*/5 * * * *"})),
        );
        let (a, b) = tokio::join!(disable, retime);
        assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
        let now = app
            .get(&format!("/api/v1/schedules/{id}"), &token)
            .await
            .body;
        assert_eq!(
            (&now["enabled"], &now["cron"]),
            (&json!(false), &json!("*/5 * * * *")),
            "round {round}: {now}"
        );
        assert!(now["next_run_at"].is_null(), "disabled: {now}");
    }
}

/// Run now: a job like the schedule's fires, linked to it, for no slot;
/// the next fire stays where it was.
#[tokio::test]
async fn a_schedule_runs_now_outside_its_cron() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/schedules",
            &token,
            json!({"name": "yearly", "cron": "0 0 1 1 *", "kind": "noop",
                   "params": {"sleep_ms": 7}, "enabled": false}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let ran = app
        .post(&format!("/api/v1/schedules/{id}/run"), &token, json!({}))
        .await;
    assert_eq!(ran.status, StatusCode::ACCEPTED, "{}", ran.body);
    assert_eq!(ran.body["schedule_id"], id.as_str());
    assert_eq!(ran.body["scheduled_for"], serde_json::Value::Null);
    assert_eq!(ran.body["params"], json!({"sleep_ms": 7}));
    assert_eq!(ran.body["status"], "queued");
    let again = app
        .post(&format!("/api/v1/schedules/{id}/run"), &token, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "twice is two jobs");
    let runs = app
        .get(&format!("/api/v1/schedules/{id}/runs"), &token)
        .await;
    assert_eq!(runs.body["total"], 2);
    let after = app
        .get(&format!("/api/v1/schedules/{id}"), &token)
        .await
        .body;
    assert_eq!(after["next_run_at"], created.body["next_run_at"]);
    assert!(after["last_run_at"].is_string());
    let missing = app
        .post(
            &format!("/api/v1/schedules/{}/run", uuid::Uuid::new_v4()),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
