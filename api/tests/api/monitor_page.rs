//! The monitor page in headless Chromium, through nginx (issue 24): an
//! operator signs in, finds a failed job by its error text, retries it and
//! watches the retry succeed live, pauses a queue and sees a job wait, and
//! the other tabs work; a screenshot of each tab is left in
//! `test-artifacts/monitor/` (see `browser::artifacts_dir`).

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, artifacts_dir};
use crate::deferred::{start_relay, wait_job};
use crate::nginx::Nginx;
use crate::support::{self, TestApp};

async fn submit(app: &TestApp, token: &str, body: Value) -> String {
    let reply = app.post("/api/v1/jobs", token, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// The text of the status cell of job `id`'s row, as a page expression.
fn row_status(id: &str) -> String {
    format!("document.querySelector('tr[data-id=\"{id}\"] td.status')?.textContent")
}

#[tokio::test]
async fn an_operator_finds_retries_and_pauses_from_the_monitor_page_in_a_browser() {
    let app = TestApp::spawn().await;
    let nginx = Nginx::start(&app);
    let worker = support::start_worker(&app, app.db.app().await, "monitor-page", 2);
    let relay = start_relay(&app, app.db.app().await);
    let token = app.admin_token().await;

    // A job that fails because what it needs is down for a few seconds, and
    // some that succeed, for the charts.
    let back_at = Utc::now() + chrono::Duration::seconds(4);
    let failing = submit(
        &app,
        &token,
        json!({"kind": "noop", "max_attempts": 1,
            "params": {"fail_until": back_at.to_rfc3339(), "sleep_ms": 1500}}),
    )
    .await;
    for _ in 0..5 {
        submit(&app, &token, json!({"kind": "noop"})).await;
    }
    wait_job(&app, &token, &failing, 15, |j| j["status"] == "failed").await;
    let schedule = app
        .post(
            "/api/v1/schedules",
            &token,
            json!({"name": "nightly-noop", "cron": "0 3 * * *", "timezone": "UTC", "kind": "noop",
                "params": {}, "enabled": true}),
        )
        .await;
    assert_eq!(schedule.status, StatusCode::CREATED, "{}", schedule.body);

    let shots = artifacts_dir("monitor");
    let mut page = Browser::launch().await;
    page.viewport(1280, 900, false).await;
    page.goto(&nginx.url("/monitor")).await;
    page.wait_for(
        "!document.getElementById('login').hidden",
        10,
        "the sign-in form",
    )
    .await;

    // Sign in with the keyboard.
    page.type_into("#login input[name=username]", ferro_testkit::ADMIN_USERNAME)
        .await;
    page.type_into("#login input[name=password]", ferro_testkit::ADMIN_PASSWORD)
        .await;
    page.press("Enter", 13).await;
    page.wait_for(
        "document.body.dataset.loaded === 'overview'",
        10,
        "the overview",
    )
    .await;
    page.wait_for(
        "document.querySelectorAll('#charts figure svg').length === 2",
        5,
        "two charts",
    )
    .await;
    page.wait_for(
        "document.querySelector('#counts .status-succeeded').textContent === '5'",
        10,
        "five succeeded jobs counted",
    )
    .await;
    page.screenshot(&shots.join("overview.png")).await;

    // To the Jobs tab with the arrow key, as the tabs pattern has it.
    page.eval("document.getElementById('tab-overview').focus()")
        .await;
    page.press("ArrowRight", 39).await;
    page.wait_for(
        "document.body.dataset.loaded === 'jobs'",
        10,
        "the jobs tab",
    )
    .await;
    assert_eq!(page.eval("document.activeElement.id").await, "tab-jobs");

    // Find the failed job by its error text.
    page.type_into("#jobs-q", "failing until").await;
    page.click("#job-filter input[name=status][value=failed]")
        .await;
    page.click("#jobs-search").await;
    page.wait_for(
        &format!(
            "document.querySelectorAll('#job-rows tr[data-id]').length === 1 && {} === 'failed'",
            row_status(&failing)
        ),
        10,
        "the failed job alone",
    )
    .await;
    page.click(&format!("tr[data-id=\"{failing}\"] [data-action=detail]"))
        .await;
    page.wait_for(
        "document.querySelector('#detail-attempts td.error')?.textContent.includes('failing until')",
        10,
        "the failed attempt in the detail",
    )
    .await;
    page.screenshot(&shots.join("jobs.png")).await;

    // Retry it once what it needs is back, and watch the retry succeed: the
    // Jobs tab does not poll, so only the WebSocket can change its row.
    let wait = (back_at - Utc::now()).num_milliseconds();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64 + 100)).await;
    }
    page.click(&format!("tr[data-id=\"{failing}\"] [data-action=retry]"))
        .await;
    let retry = page
        .wait_for(
            &format!("[...document.querySelectorAll('#job-rows tr[data-id]')].map(r => r.dataset.id).find(id => id !== '{failing}')"),
            10,
            "the retry's row",
        )
        .await;
    let retry = retry.as_str().unwrap().to_owned();
    page.wait_for(
        &format!("{} === 'succeeded'", row_status(&retry)),
        15,
        "the retry succeed live",
    )
    .await;
    page.wait_for(
        "document.getElementById('detail-status')?.textContent === 'succeeded'",
        10,
        "the retry's detail updated",
    )
    .await;
    let results = page
        .eval("document.getElementById('detail-results').textContent")
        .await;
    assert!(
        results.as_str().unwrap().contains("slept_ms"),
        "the detail shows the results: {results}"
    );
    let events = page
        .eval("document.getElementById('detail-events').textContent")
        .await;
    assert!(
        events.as_str().unwrap().contains("live: succeeded"),
        "the detail's events came live: {events}"
    );
    let job = app.get(&format!("/api/v1/jobs/{retry}"), &token).await.body;
    assert_eq!(job["retry_of"], failing.as_str(), "{job}");
    page.screenshot(&shots.join("job-retried.png")).await;

    // Pause the default queue: a job submitted now waits, and the queue
    // shows it waiting.
    page.click("#tab-queues").await;
    page.wait_for(
        "document.querySelector('tr[data-queue=default]')",
        10,
        "the default queue",
    )
    .await;
    page.click("tr[data-queue=default] [data-action=pause]")
        .await;
    page.wait_for(
        "document.querySelector('tr[data-queue=default] td.state')?.textContent === 'paused'",
        10,
        "the queue paused",
    )
    .await;
    // Workers act on a pause within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = submit(&app, &token, json!({"kind": "noop"})).await;
    page.wait_for(
        "Number(document.querySelector('tr[data-queue=default] td.waiting')?.textContent) >= 1",
        10,
        "a job waiting in the paused queue",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let job = app.get(&format!("/api/v1/jobs/{held}"), &token).await.body;
    assert_eq!(job["status"], "queued", "a paused queue's job waits: {job}");
    page.screenshot(&shots.join("queues.png")).await;
    page.click("tr[data-queue=default] [data-action=resume]")
        .await;
    wait_job(&app, &token, &held, 10, |j| j["status"] == "succeeded").await;

    page.click("#tab-workers").await;
    page.wait_for(
        "document.querySelector('tr[data-worker=\"monitor-page\"]')",
        10,
        "the worker",
    )
    .await;
    page.screenshot(&shots.join("workers.png")).await;

    page.click("#tab-schedules").await;
    page.wait_for(
        "document.querySelector('tr[data-schedule] [data-action=run]')",
        10,
        "the schedule",
    )
    .await;
    page.click("tr[data-schedule] [data-action=run]").await;
    page.wait_for(
        "document.getElementById('flash').textContent.startsWith('Ran nightly-noop')",
        10,
        "the schedule run",
    )
    .await;
    page.screenshot(&shots.join("schedules.png")).await;

    // On a phone: nothing wider than the screen but the tables' own scroll.
    page.viewport(390, 844, true).await;
    page.click("#tab-jobs").await;
    page.wait_for(
        "document.body.dataset.loaded === 'jobs'",
        10,
        "the jobs tab",
    )
    .await;
    let widest = page
        .eval(
            "Math.max(...[...document.querySelectorAll('body *')]
                .filter(e => e.offsetParent !== null && !e.closest('.scroll'))
                .map(e => Math.ceil(e.getBoundingClientRect().right)))",
        )
        .await;
    assert!(
        widest.as_i64().unwrap() <= 390,
        "something reaches {widest} px on a 390 px phone"
    );
    page.screenshot(&shots.join("jobs-phone.png")).await;

    assert_eq!(
        page.errors(),
        Vec::<&String>::new(),
        "the page logged errors"
    );
    worker.cancel();
    relay.cancel();
}
