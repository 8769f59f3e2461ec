//! Tenant transactions on kept ("warm") connections, against the real
//! PostgreSQL: a transaction left open is rolled back (on the connection's
//! next use, or by the janitor when it stays unused), never committed, and a
//! kept connection that broke is replaced.

use std::time::{Duration, Instant};

use ferro_db::TenantCtx;
use ferro_testkit::TestDb;
use sqlx::PgPool;

async fn backend_pid(tx: &mut ferro_db::TenantTx) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut **tx)
        .await
        .unwrap()
}

async fn state_of(owner: &PgPool, pid: i32) -> String {
    sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
        .bind(pid)
        .fetch_one(owner)
        .await
        .unwrap()
}

async fn insert_device(tx: &mut ferro_db::TenantTx, name: &str) {
    sqlx::query(
        "INSERT INTO devices (tenant_id, name, protocol, host, port) VALUES (app_current_tenant(), $1, 'http', '192.0.2.1', 80)",
    )
    .bind(name)
    .execute(&mut **tx)
    .await
    .unwrap();
}

async fn devices_named(owner: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM devices WHERE name = $1")
        .bind(name)
        .fetch_one(owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_and_its_connection_kept() {
    let db = TestDb::new().await;
    let (app, owner) = (db.app().await, db.owner().await);
    let one = TenantCtx::new(db.default_tenant(), None);
    let other = TenantCtx::new(db.create_tenant("other").await, None);

    let mut tx = app.begin(one).await.unwrap();
    let pid = backend_pid(&mut tx).await;
    insert_device(&mut tx, "never-committed").await;
    drop(tx);
    // Rolled back on a task of its own, then kept.
    let deadline = Instant::now() + Duration::from_secs(2);
    while state_of(&owner, pid).await != "idle" {
        assert!(
            Instant::now() < deadline,
            "still in a transaction after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The next transaction gets the same connection, for another tenant.
    let mut tx = app.begin(other).await.unwrap();
    assert_eq!(
        backend_pid(&mut tx).await,
        pid,
        "the kept connection is reused"
    );
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT app_current_tenant()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenant, other.tenant_id, "bound to the new tenant only");
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM devices WHERE name = 'never-committed'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(seen, 0);
    tx.commit().await.unwrap();
    assert_eq!(devices_named(&owner, "never-committed").await, 0);

    // Committed work stays.
    let mut tx = app.begin(one).await.unwrap();
    insert_device(&mut tx, "committed").await;
    tx.commit().await.unwrap();
    assert_eq!(devices_named(&owner, "committed").await, 1);
}

/// A transaction whose future is dropped while its query waits (a client
/// that went away, a job cancelled while blocked) must not hold up the next
/// transaction, which would otherwise be given the same connection and
/// wait behind that query.
#[tokio::test]
async fn a_transaction_dropped_mid_query_does_not_hold_up_the_next_one() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let lock = db.lock_devices().await;
    let mut tx = app.begin(ctx).await.unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_millis(300),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM devices").fetch_one(&mut *tx),
    )
    .await;
    assert!(blocked.is_err(), "the query waits for the lock");
    drop(tx);

    let started = Instant::now();
    let mut next = tokio::time::timeout(Duration::from_secs(5), app.begin(ctx))
        .await
        .expect("the next transaction is not held up")
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *next)
        .await
        .unwrap();
    assert_eq!(one, 1);
    next.commit().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    lock.rollback().await.unwrap();
}

#[tokio::test]
async fn an_open_transaction_left_unused_is_rolled_back_within_moments() {
    let db = TestDb::new().await;
    let (app, owner) = (db.app().await, db.owner().await);
    let mut tx = app
        .begin(TenantCtx::new(db.default_tenant(), None))
        .await
        .unwrap();
    let pid = backend_pid(&mut tx).await;
    insert_device(&mut tx, "abandoned").await;
    tx.end_read_only();
    assert_eq!(state_of(&owner, pid).await, "idle in transaction");
    let deadline = Instant::now() + Duration::from_secs(2);
    while state_of(&owner, pid).await != "idle" {
        assert!(
            Instant::now() < deadline,
            "still in a transaction after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(devices_named(&owner, "abandoned").await, 0);
}

#[tokio::test]
async fn a_kept_connection_that_broke_is_replaced() {
    let db = TestDb::new().await;
    let (app, owner) = (db.app().await, db.owner().await);
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let mut tx = app.begin(ctx).await.unwrap();
    let pid = backend_pid(&mut tx).await;
    tx.commit().await.unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(killed);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut tx = app.begin(ctx).await.expect("a fresh connection");
    assert_ne!(backend_pid(&mut tx).await, pid);
    insert_device(&mut tx, "after-restart").await;
    tx.commit().await.unwrap();
    assert_eq!(devices_named(&owner, "after-restart").await, 1);
}

/// A commit cancelled half way (the request timed out, the client went
/// away) must not leave its transaction open for the next one to inherit.
#[tokio::test]
async fn a_cancelled_commit_leaves_no_transaction_for_the_next_one() {
    let db = TestDb::new().await;
    let app = db.app().await;
    let ctx = TenantCtx::new(db.default_tenant(), None);
    for i in 0..20 {
        let mut tx = app.begin(ctx).await.unwrap();
        insert_device(&mut tx, &format!("cancelled-{i}")).await;
        let _ = tokio::time::timeout(Duration::ZERO, tx.commit()).await;
        let mut next = app.begin(ctx).await.unwrap();
        let xid: Option<String> =
            sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text")
                .fetch_one(&mut *next)
                .await
                .unwrap();
        assert_eq!(
            xid, None,
            "round {i}: the new transaction inherited a writing one"
        );
        next.commit().await.unwrap();
    }
}

/// Many more callers than connections: every transaction gets one, first
/// come first served, well within the acquire timeout.
#[tokio::test]
async fn many_callers_share_few_connections_without_starving() {
    let db = TestDb::new().await;
    let mut env = db.env_pairs();
    env.push(("DATABASE_MAX_CONNECTIONS", "4".into()));
    let env = ferro_config::Env::from_pairs(env);
    let cfg = ferro_config::DatabaseConfig::from_env(&env).unwrap();
    let app = ferro_db::Db::connect(&cfg, ferro_config::AppEnv::Production, "test")
        .await
        .unwrap();
    let ctx = TenantCtx::new(db.default_tenant(), None);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let app = app.clone();
        tasks.spawn(async move {
            let mut slowest = Duration::ZERO;
            for _ in 0..25 {
                let asked = Instant::now();
                let mut tx = app.begin(ctx).await.expect("a connection");
                slowest = slowest.max(asked.elapsed());
                let _: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.end_read_only();
            }
            slowest
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(waited) = tasks.join_next().await {
        slowest = slowest.max(waited.unwrap());
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a caller waited {slowest:?}"
    );
    let stats = app.pool_stats();
    assert!(stats.size <= 4, "{stats:?}");
}
