//! Workflows (issue 23), on both brokers: a chain runs step after step and
//! hands each its predecessor's results, a failed step cancels the rest, a
//! chord's callback runs once after all of its group and sees their
//! results, cancelling a workflow cancels what has not ended, and a bad
//! workflow is a 422 naming the field that writes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deferred::{start_relay, wait_job};
use crate::support::{self, TestApp};

async fn wait_workflow(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let workflow = app
            .get(&format!("/api/v1/workflows/{id}"), token)
            .await
            .body;
        if workflow["status"] == status {
            return workflow;
        }
        assert!(
            std::time::Instant::now() < until,
            "workflow never got {status}: {workflow}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn results(app: &TestApp, token: &str, job: &Value) -> Value {
    let id = job["id"].as_str().unwrap();
    app.get(&format!("/api/v1/jobs/{id}/results"), token)
        .await
        .body["items"][0]["data"]
        .clone()
}

#[tokio::test]
async fn chains_and_chords_run_in_order_and_pass_results_on_rabbitmq() {
    chains_and_chords(TestApp::spawn().await).await;
}

#[tokio::test]
async fn chains_and_chords_run_in_order_and_pass_results_on_redis_streams() {
    chains_and_chords(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

async fn chains_and_chords(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "flows", 4);
    // The relay publishes each step its predecessor released.
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;
    let chain = app
        .post(
            "/api/v1/workflows",
            &token,
            json!({"chain": [
                {"kind": "noop", "params": {"sleep_ms": 20}},
                {"kind": "noop", "params": {"sleep_ms": 10}},
                {"kind": "noop"}]}),
        )
        .await;
    assert_eq!(chain.status, StatusCode::ACCEPTED, "{}", chain.body);
    assert_eq!(chain.body["kind"], "chain");
    let steps: Vec<&str> = chain.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["queued", "waiting", "waiting"]);
    let id = chain.body["id"].as_str().unwrap();
    assert_eq!(
        chain.body["jobs"][0]["workflow_id"], chain.body["id"],
        "a step shows its workflow"
    );
    let done = wait_workflow(&app, &token, id, "succeeded").await;
    let jobs = done["jobs"].as_array().unwrap();
    for pair in jobs.windows(2) {
        assert!(
            pair[0]["finished_at"].as_str() <= pair[1]["started_at"].as_str(),
            "a step started before the previous one ended: {done}"
        );
    }
    // Each step received its predecessor's result.
    let last = results(&app, &token, &jobs[2]).await;
    assert_eq!(last["received"][0]["slept_ms"], 10, "{last}");
    assert_eq!(last["received"][0]["received"][0]["slept_ms"], 20, "{last}");

    let chord = app
        .post(
            "/api/v1/workflows",
            &token,
            json!({"chord": {"group": [
                    {"kind": "noop", "params": {"sleep_ms": 30}},
                    {"kind": "noop", "params": {"sleep_ms": 1}},
                    {"kind": "noop", "params": {"sleep_ms": 2}}],
                "then": {"kind": "noop"}}}),
        )
        .await;
    assert_eq!(chord.status, StatusCode::ACCEPTED, "{}", chord.body);
    let id = chord.body["id"].as_str().unwrap();
    let done = wait_workflow(&app, &token, id, "succeeded").await;
    let jobs = done["jobs"].as_array().unwrap();
    let callback = &jobs[3];
    for member in &jobs[..3] {
        assert!(member["finished_at"].as_str() <= callback["started_at"].as_str());
    }
    let got = results(&app, &token, callback).await;
    let slept: Vec<&Value> = got["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["slept_ms"])
        .collect();
    assert_eq!(slept, [&json!(30), &json!(1), &json!(2)], "{got}");
    assert_eq!(callback["attempts"], 1, "the callback ran once");
    worker.cancel();
    relay.cancel();
}

#[tokio::test]
async fn a_failed_step_cancels_the_rest_and_a_workflow_can_be_cancelled_on_rabbitmq() {
    failures_and_cancels(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_failed_step_cancels_the_rest_and_a_workflow_can_be_cancelled_on_redis_streams() {
    failures_and_cancels(TestApp::spawn_with(&[("BROKER_URL", support::REDIS_BROKER)]).await).await;
}

async fn failures_and_cancels(app: TestApp) {
    let worker = support::start_worker(&app, app.db.app().await, "failing", 4);
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;
    let chain = app
        .post(
            "/api/v1/workflows",
            &token,
            json!({"chain": [
                {"kind": "noop"},
                {"kind": "noop", "params": {"fail_attempts": 5}, "max_attempts": 1},
                {"kind": "noop"},
                {"kind": "noop"}]}),
        )
        .await;
    assert_eq!(chain.status, StatusCode::ACCEPTED, "{}", chain.body);
    let id = chain.body["id"].as_str().unwrap();
    let done = wait_workflow(&app, &token, id, "failed").await;
    let statuses: Vec<&str> = done["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed", "cancelled", "cancelled"]);
    assert!(
        done["jobs"][2]["error"]
            .as_str()
            .unwrap()
            .contains("step 2 (noop) ended failed"),
        "{done}"
    );
    assert!(done["jobs"][2]["started_at"].is_null(), "it never ran");

    // A chord whose member fails does not call back.
    let chord = app
        .post(
            "/api/v1/workflows",
            &token,
            json!({"chord": {"group": [
                    {"kind": "noop"},
                    {"kind": "noop", "params": {"fail_attempts": 5}, "max_attempts": 1}],
                "then": {"kind": "noop"}}}),
        )
        .await;
    let id = chord.body["id"].as_str().unwrap();
    let done = wait_workflow(&app, &token, id, "failed").await;
    assert_eq!(done["jobs"][2]["status"], "cancelled", "{done}");

    // Cancelling: the running step is told to stop, the waiting ones end.
    let long = app
        .post(
            "/api/v1/workflows",
            &token,
            json!({"chain": [
                {"kind": "noop", "params": {"sleep_ms": 10000}},
                {"kind": "noop"}]}),
        )
        .await;
    let id = long.body["id"].as_str().unwrap().to_owned();
    let first = long.body["jobs"][0]["id"].as_str().unwrap().to_owned();
    wait_job(&app, &token, &first, 15, |j| j["status"] == "running").await;
    let cancelled = app
        .post(&format!("/api/v1/workflows/{id}/cancel"), &token, json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["jobs"][1]["status"], "cancelled");
    let done = wait_workflow(&app, &token, &id, "cancelled").await;
    assert_eq!(done["jobs"][0]["status"], "cancelled", "{done}");
    let again = app
        .post(&format!("/api/v1/workflows/{id}/cancel"), &token, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    worker.cancel();
    relay.cancel();
}

#[tokio::test]
async fn bad_workflows_are_refused_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let many: Vec<Value> = (0..10_001).map(|_| json!({"kind": "noop"})).collect();
    for (body, field) in [
        (
            json!({"chord": {"group": [], "then": {"kind": "noop"}}}),
            "chord.group",
        ),
        (json!({"chain": []}), "chain"),
        (json!({"chain": many}), "chain"),
        (
            json!({"chain": [{"kind": "noop"}], "group": [{"kind": "noop"}]}),
            "chain",
        ),
        (
            json!({"group": [{"kind": "noop"}, {"kind": "nope"}]}),
            "group[1].kind",
        ),
        (
            json!({"chain": [{"kind": "noop", "params": {"sleep_ms": -1}}]}),
            "chain[0].params.sleep_ms",
        ),
        (
            json!({"chord": {"group": [{"kind": "noop"}], "then": {"kind": "noop", "queue": "x"}}}),
            "chord.then.queue",
        ),
        (
            json!({"chain": [{"kind": "noop"}, {"kind": "noop", "countdown": 5}]}),
            "chain[1].run_at",
        ),
        (
            json!({"group": [{"kind": "snmp.get", "params": {"oids": ["1.3.6.1.2.1.1.1.0"]},
                              "device_id": "0b5c3c2e-8a7c-4c59-9d0e-2f1d7d7c4a10"}]}),
            "group[0].device_id",
        ),
    ] {
        let reply = app.post("/api/v1/workflows", &token, body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            reply.body
        );
        let fields: Vec<&str> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{field}: {}", reply.body);
    }
    let owner = app.db.owner().await;
    let (jobs, workflows): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM workflows)")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!((jobs, workflows), (0, 0), "nothing was written");
    let missing = app
        .get(
            "/api/v1/workflows/0b5c3c2e-8a7c-4c59-9d0e-2f1d7d7c4a10",
            &token,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
