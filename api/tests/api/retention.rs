//! Retention (issue 23): `jobs.prune` deletes finished jobs past
//! `JOB_RETENTION` in every tenant, with their results and outbox records,
//! in short batches, while submissions keep being answered at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::deferred::wait_job;
use crate::support::{self, TestApp};

/// Inserts `n` finished jobs of `tenant` in `status`, created and finished
/// `days` ago, each with one result row and one outbox record.
async fn old_jobs(owner: &sqlx::PgPool, tenant: Uuid, status: &str, days: i32, n: i32) {
    sqlx::query(
        "WITH made AS ( \
           INSERT INTO jobs (tenant_id, kind, params, status, attempts, created_at, started_at, \
                             finished_at) \
           SELECT $1, 'noop', '{}', $2, 1, now() - make_interval(days => $3), \
                  now() - make_interval(days => $3), now() - make_interval(days => $3) \
           FROM generate_series(1, $4) RETURNING id), \
         results AS (INSERT INTO job_results (tenant_id, job_id, data) \
                     SELECT $1, id, '{\"old\": true}' FROM made) \
         INSERT INTO job_outbox (tenant_id, job_id, payload, published_at) \
         SELECT $1, id, '{}', now() - make_interval(days => $3) FROM made",
    )
    .bind(tenant)
    .bind(status)
    .bind(days)
    .bind(n)
    .execute(owner)
    .await
    .unwrap();
}

async fn count(owner: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn old_finished_jobs_are_pruned_in_batches_while_submissions_go_on() {
    let app = TestApp::spawn().await;
    let worker = support::start_worker(&app, app.db.app().await, "retention", 4);
    let token = app.admin_token().await;
    let (other, _) = app.tenant_with_admin("retention-other").await;
    let owner = app.db.owner().await;
    let default = app.db.default_tenant();
    // Past the default retention: succeeded after 7 days, the rest after 30.
    old_jobs(&owner, default, "succeeded", 10, 15_000).await;
    old_jobs(&owner, other, "succeeded", 10, 5_000).await;
    old_jobs(&owner, default, "failed", 40, 300).await;
    old_jobs(&owner, other, "cancelled", 40, 200).await;
    // Within it.
    old_jobs(&owner, default, "succeeded", 1, 100).await;
    old_jobs(&owner, default, "failed", 10, 100).await;
    old_jobs(&owner, other, "cancelled", 10, 100).await;
    // Workflows whose jobs are all gone go too, once an hour old.
    sqlx::query(
        "INSERT INTO workflows (id, tenant_id, kind, steps, created_at) \
         VALUES (gen_random_uuid(), $1, 'group', 1, now() - interval '40 days'), \
                (gen_random_uuid(), $2, 'chain', 2, now() - interval '40 days'), \
                (gen_random_uuid(), $1, 'group', 1, now())",
    )
    .bind(default)
    .bind(other)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query("ANALYZE jobs").execute(&owner).await.unwrap();

    // Clients submit jobs all along.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, token, stop) = (
                app.client.clone(),
                app.url("/api/v1/jobs"),
                token.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let reply = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"kind": "noop"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(reply.status(), StatusCode::ACCEPTED);
                    slowest = slowest.max(started.elapsed());
                    sent += 1;
                }
                (sent, slowest)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let prune = app
        .post(
            "/api/v1/jobs",
            &token,
            json!({"kind": "jobs.prune", "params": {"batch_size": 500}}),
        )
        .await;
    assert_eq!(prune.status, StatusCode::ACCEPTED, "{}", prune.body);
    let id = prune.body["id"].as_str().unwrap();
    let done = wait_job(&app, &token, id, 60, |j| j["status"] == "succeeded").await;
    stop.store(true, Ordering::Relaxed);
    let mut submitted = 0;
    for client in clients {
        let (sent, slowest) = client.await.unwrap();
        submitted += sent;
        assert!(
            slowest < Duration::from_secs(2),
            "a submission waited {slowest:?}"
        );
    }
    assert!(submitted > 20, "submissions went on: {submitted}");
    let results = app
        .get(&format!("/api/v1/jobs/{id}/results"), &token)
        .await
        .body;
    assert_eq!(
        results["items"][0]["data"]["deleted"],
        json!({"succeeded": 20_000, "failed": 300, "cancelled": 200}),
        "{done}"
    );
    let old = "created_at < now() - interval '5 days'";
    assert_eq!(
        count(&owner, &format!("SELECT count(*) FROM jobs WHERE {old}")).await,
        200,
        "what is within retention stays"
    );
    assert_eq!(
        count(&owner, "SELECT count(*) FROM jobs WHERE created_at > now() - interval '2 days' AND created_at < now() - interval '12 hours'").await,
        100
    );
    let orphans = "SELECT count(*) FROM job_results r WHERE NOT EXISTS \
                   (SELECT 1 FROM jobs j WHERE j.tenant_id = r.tenant_id AND j.id = r.job_id)";
    assert_eq!(count(&owner, orphans).await, 0);
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM job_results WHERE data ? 'old'"
        )
        .await,
        300,
        "results went with their jobs"
    );
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM job_outbox WHERE payload = '{}'"
        )
        .await,
        300,
        "outbox records went with their jobs"
    );
    assert_eq!(
        results["items"][0]["data"]["workflows_deleted"], 2,
        "{results}"
    );
    assert_eq!(count(&owner, "SELECT count(*) FROM workflows").await, 1);
    worker.cancel();
}
