//! Clients that give up before the answer: a mutation still completes, with
//! its audit row, and the request metrics stay true.

use crate::support::TestApp;
use serde_json::json;
use std::time::{Duration, Instant};

/// A PATCH blocked on a row lock when its client goes away.
#[tokio::test]
async fn a_mutation_whose_client_goes_away_still_completes_and_is_audited() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let device = app.create_device(&admin, "before").await;
    let id = device["id"].as_str().unwrap().to_owned();

    // Hold the device's row, so that the PATCH waits inside its transaction.
    let owner = app.db.owner().await;
    let mut lock = owner.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM devices WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *lock)
        .await
        .unwrap();

    let gave_up = app
        .client
        .patch(app.url(&format!("/api/v1/devices/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"name": "after"}))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        gave_up.is_err_and(|e| e.is_timeout()),
        "the PATCH should still be waiting for the row"
    );
    // The client's connection is gone; now let the PATCH through.
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.commit().await.unwrap();

    let started = Instant::now();
    loop {
        let (name, audited): (String, i64) = sqlx::query_as(
            "SELECT (SELECT name FROM devices WHERE id = $1::uuid), \
                    (SELECT count(*) FROM audit_logs WHERE method = 'PATCH' \
                     AND route = '/api/v1/devices/{id}' AND status = 200)",
        )
        .bind(&id)
        .fetch_one(&owner)
        .await
        .unwrap();
        if name == "after" && audited == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the abandoned PATCH did not complete: name {name:?}, {audited} audit rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A GET blocked on a table lock when its client goes away.
#[tokio::test]
async fn a_request_cut_off_by_its_client_is_counted_and_leaves_the_in_flight_gauge() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let lock = app.db.lock_devices().await;

    let gave_up = app
        .client
        .get(app.url("/api/v1/devices"))
        .bearer_auth(&admin)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.commit().await.unwrap();

    let started = Instant::now();
    loop {
        let text = app.metrics_text().await;
        // The /metrics request itself is the one in flight.
        let in_flight = text.lines().any(|l| l == "http_requests_in_flight 1");
        let counted = text.contains(
            "http_requests_total{method=\"GET\",route=\"/api/v1/devices\",status=\"499\"} 1",
        );
        if in_flight && counted {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "in flight {in_flight}, counted as 499 {counted}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
