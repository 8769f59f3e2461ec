use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_config::{AppEnv, DatabaseConfig};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::warm::Warm;
use crate::{DbError, TenantCtx, TenantTx};

/// The services' handle on PostgreSQL. Cheap to clone. The pool inside is
/// private: callers get tenant-bound transactions or narrow cross-tenant
/// calls, never a bare connection.
#[derive(Clone)]
pub struct Db {
    pub(crate) pool: PgPool,
    /// Connections kept between tenant transactions ([`crate::warm`]).
    warm: Arc<Warm>,
}

/// A snapshot of the pool for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// What the connected role may do to row-level security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSafety {
    pub role: String,
    pub superuser: bool,
    pub bypass_rls: bool,
}

impl RoleSafety {
    pub fn is_safe(&self) -> bool {
        !self.superuser && !self.bypass_rls
    }
}

/// Connect options for a URL, tagged with the service name.
pub fn connect_options(url: &str, application_name: &str) -> Result<PgConnectOptions, DbError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(DbError::Other)?
        .application_name(application_name)
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// Tries to connect until it works or `wait` has passed, backing off from
/// 100 ms to 2 s between tries and logging each failure.
pub async fn wait_for_database(options: &PgConnectOptions, wait: Duration) -> Result<(), DbError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match sqlx::PgConnection::connect_with(options).await {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Err(err) => {
                let err = DbError::from(err);
                if !err.is_transient() || started.elapsed() + delay > wait {
                    return Err(err);
                }
                tracing::warn!(
                    error = %err,
                    retry_in_ms = delay.as_millis() as u64,
                    "database not reachable yet"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

impl Db {
    /// Opens the pool as the application role and checks that the role is
    /// subject to row-level security. In production an unsafe role is an
    /// error; in development it is a loud warning.
    pub async fn connect(
        config: &DatabaseConfig,
        app_env: AppEnv,
        service: &str,
    ) -> Result<Self, DbError> {
        let options = connect_options(config.url.expose(), service)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            // sqlx pings every connection on acquire by default: one extra
            // round trip per transaction. Ping only connections that sat
            // idle long enough to have been cut; a connection that breaks
            // in use is discarded by sqlx on the error.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(30) {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        // Keep all but two connections warm for tenant transactions; those
        // two stay with sqlx's pool for the cross-tenant calls and checks.
        let warm = Warm::new((config.max_connections as usize).saturating_sub(2));
        let db = Self { pool, warm };
        let safety = db.role_safety().await?;
        if !safety.is_safe() {
            if app_env.is_production() {
                return Err(DbError::UnsafeRole { role: safety.role });
            }
            tracing::warn!(
                role = %safety.role,
                "DATABASE_URL connects as a superuser or BYPASSRLS role: row-level security is \
                 NOT enforced (refused when APP_ENV=production)"
            );
        }
        Ok(db)
    }

    /// Opens a transaction bound to `ctx`'s tenant and user.
    pub async fn begin(&self, ctx: TenantCtx) -> Result<TenantTx, DbError> {
        TenantTx::begin(&self.pool, &self.warm, ctx).await
    }

    /// Whether the connected role could bypass row-level security.
    pub async fn role_safety(&self) -> Result<RoleSafety, DbError> {
        let (role, superuser, bypass_rls): (String, bool, bool) = sqlx::query_as(
            "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(RoleSafety {
            role,
            superuser,
            bypass_rls,
        })
    }

    /// A round trip to the database, bounded by `timeout` (readiness checks).
    pub async fn ping(&self, timeout: Duration) -> Result<(), DbError> {
        match tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(result) => result.map(|_| ()).map_err(DbError::from),
            Err(_) => Err(DbError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: (self.pool.num_idle() + self.warm.len()) as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.warm.drain().await;
        self.pool.close().await;
    }
}
