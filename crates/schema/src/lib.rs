//! The database made ready for the services; what the `migrate` binary
//! runs, and what the tests' databases are made with.
//!
//! `up` waits for PostgreSQL (creating the database if it is missing),
//! applies the SQL migrations as the owner role, creates or updates the
//! application role named in `DATABASE_URL` and grants it exactly what the
//! services need, then seeds tenant `default` (with its built-in roles) and
//! the platform administrator. Every step is idempotent.

use std::time::Duration;

use ferro_config::ExposeSecret;
use ferro_db::{DbError, connect_options, wait_for_database};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use uuid::Uuid;

pub mod config;

pub use config::MigrateConfig;

/// The SQL migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Errors of the migration runner, each with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Displayed without its cause; the binary prints the whole chain.
    #[error(
        "could not use PostgreSQL at {url} (a server not up yet is waited for up to {waited:?})"
    )]
    Unreachable {
        url: String,
        waited: Duration,
        #[source]
        source: DbError,
    },
    /// The server answered, and refused the owner's password.
    #[error(
        "PostgreSQL at {url} refused the password of {role}. If its data directory (in compose: \
         the postgres-data volume) was created with another POSTGRES_PASSWORD, that one is still \
         in force: the postgres image reads POSTGRES_PASSWORD only when the directory is new. \
         Use that password, change it in PostgreSQL (ALTER ROLE {role} PASSWORD ...), or remove \
         the volume (and its data)"
    )]
    PasswordRefused { url: String, role: String },
    #[error(
        "the migration role {role} must be a superuser, or have BYPASSRLS and CREATEROLE \
         (set MIGRATE_DATABASE_URL to the database owner)"
    )]
    OwnerNotPrivileged { role: String },
    #[error(
        "DATABASE_URL and the migration connection use the same role ({role}); the services \
         must connect as a separate, restricted role (set MIGRATE_DATABASE_URL to the owner)"
    )]
    SameRole { role: String },
    #[error("refusing to reset a database when APP_ENV=production")]
    ResetInProduction,
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("password hashing failed: {0}")]
    Password(String),
    #[error("{context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: DbError,
    },
}

trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, MigrateError>;
}

impl<T, E: Into<DbError>> Context<T> for Result<T, E> {
    fn context(self, context: &'static str) -> Result<T, MigrateError> {
        self.map_err(|e| MigrateError::Db {
            context,
            source: e.into(),
        })
    }
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpReport {
    pub migrations_applied: usize,
    pub database_created: bool,
    /// `None` when the application role is the owner (development only).
    pub app_role: Option<String>,
    pub default_tenant_id: Uuid,
    pub admin: AdminSeed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminSeed {
    Created,
    PasswordUpdated,
    Unchanged,
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    pub applied: bool,
    /// The applied file differs from the embedded one.
    pub checksum_mismatch: bool,
}

pub const DEFAULT_TENANT_SLUG: &str = "default";

/// Connects as the owner, creating the database when it does not exist.
async fn owner_pool(cfg: &MigrateConfig) -> Result<(PgPool, bool), MigrateError> {
    let options = connect_options(cfg.owner_url.expose(), "migrate")?;
    let mut created = false;
    if let Err(err) = wait_for_database(&options, cfg.wait).await {
        if !is_missing_database(&err) {
            return Err(unreachable(cfg, err));
        }
        create_database(cfg, &options).await?;
        created = true;
    }
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| unreachable(cfg, e.into()))?;
    Ok((pool, created))
}

impl From<DbError> for MigrateError {
    fn from(source: DbError) -> Self {
        MigrateError::Db {
            context: "database error",
            source,
        }
    }
}

fn unreachable(cfg: &MigrateConfig, source: DbError) -> MigrateError {
    if is_refused_password(&source) {
        return MigrateError::PasswordRefused {
            url: cfg.owner_url.to_string(),
            role: cfg.owner_url.username().unwrap_or_default(),
        };
    }
    MigrateError::Unreachable {
        url: cfg.owner_url.to_string(),
        waited: cfg.wait,
        source,
    }
}

/// `invalid_password`: the server is up and named the password wrong.
fn is_refused_password(err: &DbError) -> bool {
    matches!(err, DbError::Other(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28P01"))
}

fn is_missing_database(err: &DbError) -> bool {
    matches!(err, DbError::Other(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000"))
}

async fn create_database(
    cfg: &MigrateConfig,
    target: &PgConnectOptions,
) -> Result<(), MigrateError> {
    let name = target.get_database().unwrap_or_default().to_owned();
    let maintenance =
        connect_options(cfg.owner_url.with_path_name("postgres").expose(), "migrate")?;
    wait_for_database(&maintenance, cfg.wait)
        .await
        .map_err(|e| unreachable(cfg, e))?;
    let mut conn = sqlx::PgConnection::connect_with(&maintenance)
        .await
        .context("connecting to the maintenance database")?;
    // CREATE DATABASE takes no parameters: quote the identifier ourselves.
    let sql = format!("CREATE DATABASE {}", quote_ident(&name));
    match sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
    {
        Ok(_) => tracing::info!(database = %name, "created database"),
        // Someone else created it in the meantime (42P04; 23505 when both
        // got past the existence check in the same instant).
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {
        }
        Err(e) => return Err(e).context("creating the database"),
    }
    let _ = conn.close().await;
    Ok(())
}

/// Quotes a PostgreSQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn check_owner(pool: &PgPool, cfg: &MigrateConfig) -> Result<String, MigrateError> {
    let row = sqlx::query(
        "SELECT rolname::text AS role, rolsuper OR (rolbypassrls AND rolcreaterole) AS ok \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .context("reading the migration role")?;
    let role: String = row.get("role");
    if !row.get::<bool, _>("ok") {
        return Err(MigrateError::OwnerNotPrivileged { role });
    }
    if cfg.app.role().as_deref() == Some(role.as_str()) {
        if cfg.app_env.is_production() {
            return Err(MigrateError::SameRole { role });
        }
        tracing::warn!(
            %role,
            "DATABASE_URL uses the migration owner role: row-level security will NOT be \
             enforced for the services (refused when APP_ENV=production)"
        );
    }
    Ok(role)
}

/// `migrate up`.
pub async fn up(cfg: &MigrateConfig) -> Result<UpReport, MigrateError> {
    let (pool, database_created) = owner_pool(cfg).await?;
    let owner = check_owner(&pool, cfg).await?;
    // Several `migrate up` at once (replicas that each run it first) take
    // turns: the migrations, the application role and the seed are each
    // written by one of them, and the others find them done. The lock is the
    // session's, on a connection of its own, released when it closes.
    let mut turn = pool.acquire().await.context("locking the migration")?;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('ferro:migrate-up', 0))")
        .execute(&mut *turn)
        .await
        .context("locking the migration")?;

    let before = applied_versions(&pool).await?;
    MIGRATOR.run(&pool).await?;
    let after = applied_versions(&pool).await?;
    let migrations_applied = after.len().saturating_sub(before.len());

    let app_role = match cfg.app.role() {
        Some(role) if role != owner => {
            ensure_app_role(&pool, &role, cfg).await?;
            Some(role)
        }
        _ => None,
    };

    let (default_tenant_id, admin) = seed(&pool, cfg).await?;
    turn.detach().close().await.ok();
    pool.close().await;
    Ok(UpReport {
        migrations_applied,
        database_created,
        app_role,
        default_tenant_id,
        admin,
    })
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<(i64, Vec<u8>)>, MigrateError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .context("reading migration history")?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .context("reading migration history")
}

async fn ensure_app_role(
    pool: &PgPool,
    role: &str,
    cfg: &MigrateConfig,
) -> Result<(), MigrateError> {
    let password = cfg.app.url.password();
    let mut tx = pool
        .begin()
        .await
        .context("starting the role transaction")?;
    sqlx::query("SELECT ferro_ensure_app_role($1, $2)")
        .bind(role)
        .bind(password.as_ref().map(|p| p.expose_secret()))
        .execute(&mut *tx)
        .await
        .context("creating or updating the application role")?;
    sqlx::query("SELECT ferro_grant_app_privileges($1)")
        .bind(role)
        .execute(&mut *tx)
        .await
        .context("granting the application role its privileges")?;
    tx.commit().await.context("committing the role changes")?;
    tracing::info!(%role, "application role ensured");
    Ok(())
}

async fn seed(pool: &PgPool, cfg: &MigrateConfig) -> Result<(Uuid, AdminSeed), MigrateError> {
    let mut tx = pool
        .begin()
        .await
        .context("starting the seed transaction")?;
    let tenant_id: Uuid = sqlx::query_scalar("SELECT internal_create_tenant($1, $2)")
        .bind(DEFAULT_TENANT_SLUG)
        .bind("Default")
        .fetch_one(&mut *tx)
        .await
        .context("seeding the default tenant")?;

    let existing: Option<(Uuid, String, bool)> = sqlx::query_as(
        "SELECT id, password_hash, is_platform_admin FROM users WHERE lower(username) = lower($1)",
    )
    .bind(&cfg.admin_username)
    .fetch_optional(&mut *tx)
    .await
    .context("looking up the administrator")?;

    let password = cfg.admin_password.expose_secret().to_owned();
    let (user_id, outcome) = match existing {
        None => {
            let hash = hash_blocking(password).await?;
            let id: Uuid = sqlx::query_scalar(
                "INSERT INTO users (home_tenant_id, username, password_hash, is_platform_admin) \
                 VALUES ($1, $2, $3, true) RETURNING id",
            )
            .bind(tenant_id)
            .bind(&cfg.admin_username)
            .bind(hash)
            .fetch_one(&mut *tx)
            .await
            .context("creating the administrator")?;
            (id, AdminSeed::Created)
        }
        Some((id, stored, is_platform_admin)) => {
            let stored_for_check = stored.clone();
            let matches = tokio::task::spawn_blocking(move || {
                ferro_auth::password::verify(&password, &stored_for_check).unwrap_or(false)
            })
            .await
            .map_err(|e| MigrateError::Password(e.to_string()))?;
            let mut outcome = AdminSeed::Unchanged;
            if !matches {
                let hash = hash_blocking(cfg.admin_password.expose_secret().to_owned()).await?;
                sqlx::query(
                    "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .context("updating the administrator's password")?;
                outcome = AdminSeed::PasswordUpdated;
            }
            if !is_platform_admin {
                sqlx::query("UPDATE users SET is_platform_admin = true WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .context("marking the administrator as platform administrator")?;
            }
            (id, outcome)
        }
    };

    sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await
    .context("adding the administrator to the default tenant")?;
    sqlx::query(
        "INSERT INTO membership_roles (tenant_id, user_id, role_id) \
         SELECT $1, $2, id FROM roles WHERE tenant_id = $1 AND name = 'admin' \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await
    .context("giving the administrator the admin role")?;
    tx.commit().await.context("committing the seed")?;
    Ok((tenant_id, outcome))
}

async fn hash_blocking(password: String) -> Result<String, MigrateError> {
    tokio::task::spawn_blocking(move || ferro_auth::password::hash(&password))
        .await
        .map_err(|e| MigrateError::Password(e.to_string()))?
        .map_err(|e| MigrateError::Password(e.to_string()))
}

/// `migrate status`: every embedded migration and whether it is applied.
pub async fn status(cfg: &MigrateConfig) -> Result<Vec<MigrationState>, MigrateError> {
    let options = connect_options(cfg.owner_url.expose(), "migrate")?;
    wait_for_database(&options, cfg.wait)
        .await
        .map_err(|e| unreachable(cfg, e))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| unreachable(cfg, e.into()))?;
    let applied = applied_versions(&pool).await?;
    pool.close().await;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| {
            let found = applied.iter().find(|(v, _)| *v == m.version);
            MigrationState {
                version: m.version,
                description: m.description.to_string(),
                applied: found.is_some(),
                checksum_mismatch: found.is_some_and(|(_, sum)| sum.as_slice() != &*m.checksum),
            }
        })
        .collect())
}

/// `migrate reset`: drops every object in the `public` schema, then runs `up`.
/// Development only.
pub async fn reset(cfg: &MigrateConfig) -> Result<UpReport, MigrateError> {
    if cfg.app_env.is_production() {
        return Err(MigrateError::ResetInProduction);
    }
    let (pool, _) = owner_pool(cfg).await?;
    check_owner(&pool, cfg).await?;
    let mut tx = pool.begin().await.context("starting the reset")?;
    for sql in [
        "DROP SCHEMA public CASCADE",
        "CREATE SCHEMA public",
        "GRANT USAGE ON SCHEMA public TO PUBLIC",
    ] {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .context("dropping the schema")?;
    }
    tx.commit().await.context("committing the reset")?;
    pool.close().await;
    tracing::warn!("dropped every object in schema public");
    up(cfg).await
}
