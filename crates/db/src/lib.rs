//! PostgreSQL access for the services.
//!
//! The easy path is the safe path: [`Db`] owns the pool privately, and request
//! and job code reach the database only through [`Db::begin`], which opens a
//! transaction bound to a tenant and user (`set_config(..., true)`, so the
//! binding ends with the transaction). Row-level security in the database
//! does the rest: a query that forgets its tenant filter still sees only the
//! bound tenant's rows.
//!
//! The few paths that must cross tenants are methods in [`cross_tenant`],
//! each a call to one narrow SECURITY DEFINER function (listed with its
//! justification in ARCHITECTURE.md).

pub mod coalesce;
pub mod cross_tenant;
mod error;
pub mod leader;
mod pool;
mod tenant;
mod warm;

pub use error::DbError;
pub use pool::{Db, PoolStats, RoleSafety, connect_options, wait_for_database};
pub use tenant::{TenantCtx, TenantTx};

/// The SQL migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Re-exported so that domain modules need not depend on sqlx's paths.
pub use sqlx;
