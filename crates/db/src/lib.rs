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
pub mod timestamp;
mod warm;

pub use error::DbError;
pub use pool::{Db, PoolStats, RoleSafety, connect_options, wait_for_database};
pub use tenant::{TenantCtx, TenantTx};

/// `LIMIT n OFFSET m` for a page, with the numbers written into the SQL
/// text (negative ones as 0), never bound as parameters.
///
/// With `LIMIT $1` PostgreSQL costs the generic plan of a prepared statement
/// for an unknown number of rows (a tenth of the table), finds it dearer
/// than a plan for the given one and plans the statement afresh on every
/// execution: for the devices list with row-level security that planning
/// cost PostgreSQL more than running the query. With the numbers in the
/// text, each page shape is one prepared statement planned once per
/// connection. They are integers, so nothing can be injected.
pub fn limit_offset(limit: i64, offset: i64) -> String {
    format!("LIMIT {} OFFSET {}", limit.max(0), offset.max(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn limit_offset_writes_the_numbers_and_never_a_negative_one() {
        assert_eq!(super::limit_offset(20, 40), "LIMIT 20 OFFSET 40");
        assert_eq!(super::limit_offset(-1, -5), "LIMIT 0 OFFSET 0");
    }
}
