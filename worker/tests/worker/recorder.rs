//! The recorder's batches: each job answered as if alone, only the batch's
//! own rows read, refused results failing the job at once, and the outbox
//! marks of published jobs.

use crate::support::*;
use ferro_db::TenantCtx;
use ferro_tasks::JobKind;
use ferro_tasks::jobs::{self, Enqueued};
use ferro_testkit::TestDb;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The worker's batched claims and outcomes, called at once from many
/// tasks so that batches form: two tenants' jobs in the same batches, claims
/// and outcomes in the same batch, a job
/// asked for twice, a finished job, a missing one and another tenant's job
/// each get the answer a lone claim would give; results keep their order.
#[tokio::test]
async fn batched_claims_and_outcomes_answer_each_job_as_alone() {
    use ferro_tasks::JobStatus;
    use ferro_tasks::jobs::{Finish, NotClaimed};
    use worker::recorder::Recorder;

    let db = TestDb::new().await;
    let app = db.app().await;
    let (one, two) = (db.default_tenant(), db.create_tenant("second").await);
    let first = queued_jobs(&app, one, 20).await;
    let second = queued_jobs(&app, two, 20).await;
    let recorder = Recorder::new(app.clone(), "batch-test:1".into(), Duration::from_secs(30));
    let (ctx1, ctx2) = (TenantCtx::new(one, None), TenantCtx::new(two, None));

    // Every job once, plus first[0] a second time, all at once.
    let mut asks: Vec<(TenantCtx, Uuid)> = first.iter().map(|id| (ctx1, *id)).collect();
    asks.extend(second.iter().map(|id| (ctx2, *id)));
    asks.push((ctx1, first[0]));
    let claims = futures_util::future::join_all(
        asks.iter()
            .map(|&(ctx, id)| recorder.claim(ctx, id))
            .collect::<Vec<_>>(),
    )
    .await;
    let claims: Vec<_> = claims.into_iter().map(|c| c.unwrap()).collect();
    let won = claims.iter().filter(|c| c.is_ok()).count();
    assert_eq!(won, 40, "each job claimed once: {claims:?}");
    let twice: Vec<_> = asks
        .iter()
        .zip(&claims)
        .filter(|((_, id), _)| *id == first[0])
        .map(|(_, c)| c.clone())
        .collect();
    assert!(
        matches!(
            twice.as_slice(),
            [Ok(_), Err(NotClaimed::Leased(_))] | [Err(NotClaimed::Leased(_)), Ok(_)]
        ),
        "{twice:?}"
    );
    assert!(claims.iter().flatten().all(|c| c.attempts == 1));

    // Outcomes of both tenants at once; first[0] with three ordered results.
    let ends = asks[..40].iter().map(|&(ctx, id)| {
        let results = if id == first[0] {
            vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
        } else {
            vec![json!({"n": 0})]
        };
        let end = Finish {
            id,
            attempt: 1,
            status: JobStatus::Succeeded,
            error: None,
            results,
        };
        recorder.finish(ctx, end)
    });
    // Claims of more jobs at the same time: they share the outcomes' batch.
    let more = queued_jobs(&app, one, 10).await;
    let (states, more_claims) = tokio::join!(
        futures_util::future::join_all(ends.collect::<Vec<_>>()),
        futures_util::future::join_all(more.iter().map(|id| recorder.claim(ctx1, *id))),
    );
    for claim in &more_claims {
        let claim = claim
            .as_ref()
            .unwrap()
            .as_ref()
            .expect("a queued job is claimed");
        assert_eq!(claim.attempts, 1);
    }
    for state in &states {
        let state = state.as_ref().unwrap().as_ref().expect("it had not ended");
        assert_eq!((state.status.as_str(), state.progress), ("succeeded", 100));
    }

    // A finished job, a missing one, and a job of the other tenant.
    let again = recorder.claim(ctx1, first[1]).await.unwrap();
    assert_eq!(again, Err(NotClaimed::Finished));
    let missing = recorder.claim(ctx1, Uuid::new_v4()).await.unwrap();
    assert_eq!(missing, Err(NotClaimed::Missing));
    let fresh = queued_jobs(&app, two, 1).await[0];
    let foreign = recorder.claim(ctx1, fresh).await.unwrap();
    assert_eq!(
        foreign,
        Err(NotClaimed::Missing),
        "RLS hides the other tenant's job"
    );
    // Ending a job that already ended changes nothing and keeps no results.
    let late = Finish {
        id: first[1],
        attempt: 1,
        status: JobStatus::Failed,
        error: Some("late".into()),
        results: vec![json!({"late": true})],
    };
    assert_eq!(recorder.finish(ctx1, late).await.unwrap(), None);

    let owner = db.owner().await;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT data FROM job_results WHERE job_id = $1 ORDER BY created_at, id",
    )
    .bind(first[0])
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
    );
    let (succeeded, results): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'succeeded'), (SELECT count(*) FROM job_results)",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!((succeeded, results), (40, 42));
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'running' AND id = ANY($1)")
            .bind(&more)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(running, 10);
}

/// Outbox marks, claims and outcomes read only the rows of their batch even
/// when the tables have no statistics (never analyzed, as after a TRUNCATE or before
/// autovacuum's first look): the planner must not trade the lookups by
/// primary key for a walk through every job of the tenant.
#[tokio::test]
async fn batches_read_only_their_own_rows_without_statistics() {
    use ferro_tasks::JobStatus;
    use ferro_tasks::jobs::Finish;

    let db = TestDb::new().await;
    let app = db.app().await;
    let owner = db.owner().await;
    let tenant = db.default_tenant();
    for table in ["jobs", "job_outbox"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        )))
        .execute(&owner)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO jobs (tenant_id, kind) SELECT $1, 'noop' FROM generate_series(1, 3000)",
    )
    .bind(tenant)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_outbox (tenant_id, job_id, payload) SELECT tenant_id, id, '{}' FROM jobs",
    )
    .execute(&owner)
    .await
    .unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id LIMIT 64")
        .fetch_all(&owner)
        .await
        .unwrap();
    let analyzed: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL \
         FROM pg_stat_user_tables WHERE relname = 'jobs'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(!analyzed, "the table must have no statistics for this test");

    // Rows of the table this transaction has read so far.
    async fn read_of(tx: &mut ferro_db::TenantTx, table: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) \
             FROM pg_stat_xact_user_tables WHERE relname = $1",
        )
        .bind(table)
        .fetch_one(&mut **tx)
        .await
        .unwrap()
    }
    async fn read(tx: &mut ferro_db::TenantTx) -> i64 {
        read_of(tx, "jobs").await
    }
    let records: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM job_outbox WHERE job_id = ANY($1) ORDER BY id")
            .bind(&ids)
            .fetch_all(&owner)
            .await
            .unwrap();
    let mut tx = app.begin(TenantCtx::new(tenant, None)).await.unwrap();
    jobs::mark_published(&mut tx, &records).await.unwrap();
    let by_marks = read_of(&mut tx, "job_outbox").await;
    assert!(
        by_marks <= 64,
        "marking 64 outbox records read {by_marks} rows"
    );
    tx.commit().await.unwrap();
    let published: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE published_at IS NOT NULL")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(published, 64);

    let mut tx = app.begin(TenantCtx::new(tenant, None)).await.unwrap();
    let claimed = jobs::claim_many(&mut tx, &ids, "rows-test:1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 64);
    let by_claim = read(&mut tx).await;
    assert!(
        by_claim <= 2 * 64,
        "the claim read {by_claim} rows for 64 jobs"
    );

    let ends: Vec<Finish> = ids
        .iter()
        .map(|&id| Finish {
            id,
            attempt: 1,
            status: JobStatus::Succeeded,
            error: None,
            results: vec![json!({"ok": true})],
        })
        .collect();
    let states = jobs::finish_many(&mut tx, &ends.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(states.len(), 64);
    assert!(states.iter().all(|s| s.status.as_str() == "succeeded"));
    // The lookups, plus the foreign-key check of each result row.
    let by_finish = read(&mut tx).await - by_claim;
    assert!(
        by_finish <= 3 * 64,
        "the outcomes read {by_finish} rows for 64 jobs"
    );
    tx.commit().await.unwrap();
}

/// The api marks the outbox record it published after its own commit; by
/// then a worker may have claimed the job, failed it and written the record
/// of its retry. The mark must leave that record to the relay, or the job
/// stays `retrying` for good.
#[tokio::test]
async fn marking_a_published_job_leaves_its_retry_to_the_relay() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let mut tx = app.begin(ctx).await.unwrap();
    let new = noop_job(jobs::PUBLISHED_BY_WRITER);
    let Enqueued::Created {
        job,
        envelope,
        outbox_id,
    } = jobs::enqueue(&mut tx, new).await.unwrap()
    else {
        panic!("not created")
    };
    tx.commit().await.unwrap();

    // The worker's side, before the api's mark.
    let mut tx = app.begin(ctx).await.unwrap();
    let claimed = jobs::claim_many(&mut tx, &[job.id], "race:1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let retry = ferro_tasks::TaskEnvelope {
        attempt: 1,
        ..envelope
    };
    jobs::retry_later(&mut tx, &retry, "transient", Duration::from_secs(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = app.begin(ctx).await.unwrap();
    jobs::mark_published(&mut tx, &[outbox_id]).await.unwrap();
    tx.commit().await.unwrap();

    let pending: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT id, payload FROM job_outbox WHERE job_id = $1 AND published_at IS NULL",
    )
    .bind(job.id)
    .fetch_all(&db.owner().await)
    .await
    .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the retry's record was marked: {pending:?}"
    );
    assert_ne!(pending[0].0, outbox_id);
    assert_eq!(pending[0].1["attempt"], 2);
}

/// Results the database refuses (here a check constraint the test adds, as
/// PostgreSQL refuses a NUL character in jsonb) fail the job at once with
/// the reason, instead of handing the delivery back until the attempts run
/// out.
#[tokio::test]
async fn results_the_database_refuses_fail_the_job_at_once() {
    let rig = Rig::start().await;
    sqlx::query(
        "ALTER TABLE job_results ADD CONSTRAINT test_refuses_results CHECK (NOT data ? 'slept_ms')",
    )
    .execute(&rig.db.owner().await)
    .await
    .unwrap();
    let id = rig.submit(JobKind::Noop, None, json!({})).await;
    let job = rig.wait_for(id, &["failed"], 10).await;
    assert_eq!(job.attempts, 1);
    let error = job.error.unwrap();
    assert!(
        error.contains("results could not be stored") && error.contains("test_refuses_results"),
        "{error}"
    );
    rig.wait_for_dead_letter(id).await;
    assert!(rig.results(id).await.is_empty());
    rig.stop().await;
}
