use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use crate::DbError;
use crate::warm::Warm;

/// Who a transaction acts for: the tenant whose rows it may see and write,
/// and the user (if any) on whose behalf it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantCtx {
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
}

impl TenantCtx {
    pub fn new(tenant_id: Uuid, user_id: Option<Uuid>) -> Self {
        Self { tenant_id, user_id }
    }
}

/// A transaction bound to one tenant and user. Dereferences to the
/// connection, so queries run as `query.fetch_all(&mut **tx)`. Ended with
/// [`TenantTx::end_read_only`], it rolls back on the connection's next use
/// (the next `BEGIN` carries the `ROLLBACK`), or within
/// [`crate::warm::ROLLBACK_AFTER`] if the connection stays unused. Dropped
/// without an end, it is rolled back on a task of its own before its
/// connection is used again.
pub struct TenantTx {
    /// `None` only once the transaction ended cleanly (its connection is
    /// back with [`Warm`]) or the connection was closed.
    conn: Option<PoolConnection<Postgres>>,
    warm: Arc<Warm>,
    /// One of [`Warm`]'s slots, held for the transaction's life.
    _slot: Option<OwnedSemaphorePermit>,
    ctx: TenantCtx,
}

impl TenantTx {
    /// Opens the transaction and binds the tenant and user in one round
    /// trip: `BEGIN` and the two transaction-local `set_config` calls go as
    /// one simple-protocol message (after the `ROLLBACK` of the previous
    /// transaction on the connection, if that one was left open). The values
    /// are `Uuid`s, whose text form is hex digits and dashes, so nothing can
    /// be injected.
    ///
    /// Cancel-safe: from the moment it has a connection, the value that
    /// owns it is a `TenantTx`, whose drop marks the connection for rollback.
    pub(crate) async fn begin(
        pool: &sqlx::PgPool,
        warm: &Arc<Warm>,
        ctx: TenantCtx,
    ) -> Result<Self, DbError> {
        let user = ctx.user_id.map(|u| u.to_string()).unwrap_or_default();
        let begin = format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true), set_config('app.user_id', '{user}', true)",
            ctx.tenant_id
        );
        let slot = warm.slot().await;
        let mut tx = Self {
            conn: None,
            warm: warm.clone(),
            _slot: slot,
            ctx,
        };
        // A kept connection may have broken while it waited (the server
        // restarted): then it is closed and a fresh one is tried.
        while let Some(idle) = warm.take() {
            let sql = if idle.needs_rollback {
                format!("ROLLBACK; {begin}")
            } else {
                begin.clone()
            };
            tx.conn = Some(idle.conn);
            match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
            {
                Ok(_) => return Ok(tx),
                Err(err) => {
                    tracing::debug!(error = %err, "a kept connection failed; trying another");
                    tx.close();
                }
            }
        }
        tx.conn = Some(pool.acquire().await?);
        if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(begin))
            .execute(&mut *tx)
            .await
        {
            tx.close();
            return Err(err.into());
        }
        Ok(tx)
    }

    /// Closes the connection (the server rolls back whatever was open).
    fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }

    pub fn ctx(&self) -> TenantCtx {
        self.ctx
    }

    pub fn tenant_id(&self) -> Uuid {
        self.ctx.tenant_id
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.ctx.user_id
    }

    pub async fn commit(self) -> Result<(), DbError> {
        self.end("COMMIT").await
    }

    /// Ends a transaction that only read. Nothing needs committing, so it is
    /// dropped: the connection is kept with its transaction open and the next
    /// `BEGIN` on it carries the `ROLLBACK`, which saves the round trip an
    /// explicit end would cost.
    pub fn end_read_only(mut self) {
        // Called between queries, so none of them is still running.
        if let Some(conn) = self.conn.take() {
            self.warm.put(conn, true);
        }
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, statement: &'static str) -> Result<(), DbError> {
        // The connection stays in `self` while the statement runs, so that a
        // cancelled end leaves it marked for rollback (by `Drop`).
        match sqlx::raw_sql(statement).execute(&mut *self).await {
            Ok(_) => {
                self.keep_clean();
                Ok(())
            }
            // The server refused (a deferred constraint, a serialization
            // failure): the transaction is over and the connection is fine.
            Err(err @ sqlx::Error::Database(_)) => {
                self.keep_clean();
                Err(err.into())
            }
            Err(err) => {
                self.close();
                Err(err.into())
            }
        }
    }

    fn keep_clean(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.warm.put(conn, false);
        }
    }
}

impl Drop for TenantTx {
    /// Dropped without an end (an error, or a cancelled future): a query may
    /// still be running on the connection, so it is not handed to the next
    /// transaction, which would wait behind that query ([`Warm::abandon`]).
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.warm.abandon(conn, self._slot.take());
        }
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("the connection is there until the end")
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("the connection is there until the end")
    }
}
