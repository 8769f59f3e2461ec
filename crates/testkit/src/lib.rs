//! Test support. Each [`TestDb`] is a new database with its own application
//! role, migrated and seeded by the real `ferro_schema::up`, so tests run in
//! parallel without seeing each other's data. Both are dropped afterwards.
//!
//! `TEST_POSTGRES_URL` names a superuser connection (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use ferro_config::{Env, SecretUrl};
use ferro_db::Db;
use ferro_schema::MigrateConfig;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

mod peers;
mod postgres_server;

pub use peers::{RabbitMqNode, RedisServer, SmtpSink, SnmpAgent, free_port};
pub use postgres_server::PostgresServer;

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-admin-password";
const APP_PASSWORD: &str = "test-app-password";

fn superuser_url() -> SecretUrl {
    let raw = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    SecretUrl::parse(&raw, &["postgres", "postgresql"])
        .expect("TEST_POSTGRES_URL is a postgres URL")
}

/// A fresh, migrated database and application role for one test.
pub struct TestDb {
    pub name: String,
    pub app_role: String,
    /// The server's superuser connection (to drop the database after).
    superuser: SecretUrl,
    owner_url: SecretUrl,
    app_url: String,
    pub report: ferro_schema::UpReport,
}

impl TestDb {
    /// Creates and migrates a new database (through `ferro_schema::up`).
    pub async fn new() -> Self {
        Self::migrated(Self::unmigrated()).await
    }

    /// The same on another server (a [`PostgresServer`] of the test's own),
    /// named by its superuser URL.
    pub async fn on_server(superuser: &str) -> Self {
        let su = SecretUrl::parse(superuser, &["postgres", "postgresql"]).expect("a postgres URL");
        Self::migrated(Self::unmigrated_on(su)).await
    }

    async fn migrated(mut db: Self) -> Self {
        db.report = ferro_schema::up(&db.migrate_config())
            .await
            .expect("migrate up on a fresh test database");
        db
    }

    /// The names and URLs of a new database and application role, neither
    /// of which exists yet (for tests of `migrate up` itself); dropped with
    /// the value like any other.
    pub fn unmigrated() -> Self {
        Self::unmigrated_on(superuser_url())
    }

    fn unmigrated_on(su: SecretUrl) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let name = format!("ferro_test_{}", &id[..16]);
        let app_role = format!("ferro_test_app_{}", &id[..16]);
        let owner_url = su.with_path_name(&name);
        let app_url = format!(
            "postgres://{app_role}:{APP_PASSWORD}@{}:{}/{name}",
            su.host().unwrap_or("127.0.0.1"),
            su.port().unwrap_or(5432)
        );
        Self {
            name,
            app_role,
            superuser: su,
            owner_url,
            app_url,
            report: ferro_schema::UpReport {
                migrations_applied: 0,
                database_created: false,
                app_role: None,
                default_tenant_id: Uuid::nil(),
                admin: ferro_schema::AdminSeed::Unchanged,
            },
        }
    }

    /// The environment a binary under test would get.
    pub fn env(&self) -> Env {
        Env::from_pairs([
            ("DATABASE_URL", self.app_url.as_str()),
            ("MIGRATE_DATABASE_URL", self.owner_url.expose()),
            ("ADMIN_USERNAME", ADMIN_USERNAME),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("MIGRATE_WAIT_SECONDS", "10"),
        ])
    }

    /// The same pairs, for `std::process::Command::envs`.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.app_url.clone()),
            ("MIGRATE_DATABASE_URL", self.owner_url.expose().to_owned()),
            ("ADMIN_USERNAME", ADMIN_USERNAME.to_owned()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            ("MIGRATE_WAIT_SECONDS", "10".to_owned()),
        ]
    }

    pub fn migrate_config(&self) -> MigrateConfig {
        MigrateConfig::from_env(&self.env()).expect("test configuration is valid")
    }

    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    pub fn default_tenant(&self) -> Uuid {
        self.report.default_tenant_id
    }

    /// The services' handle, connected as the application role.
    pub async fn app(&self) -> Db {
        let cfg = ferro_config::DatabaseConfig::from_env(&self.env()).expect("valid");
        Db::connect(&cfg, ferro_config::AppEnv::Production, "test")
            .await
            .expect("connect as the application role")
    }

    /// A raw connection as the application role (to probe what it may do).
    pub async fn app_conn(&self) -> PgConnection {
        PgConnection::connect(&self.app_url)
            .await
            .expect("connect as the application role")
    }

    /// A pool as the owner (superuser): for arranging data behind RLS's back.
    pub async fn owner(&self) -> PgPool {
        let options: PgConnectOptions = self.owner_url.expose().parse().expect("valid URL");
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect as the owner")
    }

    /// Takes `devices` in ACCESS EXCLUSIVE mode until the returned
    /// transaction ends: whatever reads or writes devices waits meanwhile
    /// (for tests of what a stuck request or job does).
    pub async fn lock_devices(&self) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut lock = self.owner().await.begin().await.unwrap();
        sqlx::query("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *lock)
            .await
            .unwrap();
        lock
    }

    /// Creates another tenant (with built-in roles) and returns its id.
    pub async fn create_tenant(&self, slug: &str) -> Uuid {
        let pool = self.owner().await;
        let id = sqlx::query_scalar("SELECT internal_create_tenant($1, $2)")
            .bind(slug)
            .bind(slug.to_uppercase())
            .fetch_one(&pool)
            .await
            .expect("create tenant");
        pool.close().await;
        id
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let role = self.app_role.clone();
        let url = self.superuser.clone();
        // Drop runs outside async; use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let Ok(mut conn) = PgConnection::connect(url.expose()).await else {
                    return;
                };
                let drop_db = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ferro_schema::quote_ident(&name)
                );
                let drop_role = format!("DROP ROLE IF EXISTS {}", ferro_schema::quote_ident(&role));
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop_db))
                    .execute(&mut conn)
                    .await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop_role))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            });
        })
        .join();
    }
}
