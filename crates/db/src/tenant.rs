use std::ops::{Deref, DerefMut};

use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;

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
/// connection, so queries run as `query.fetch_all(&mut *tx)`. Dropped without
/// [`TenantTx::commit`], it rolls back.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    ctx: TenantCtx,
}

impl TenantTx {
    /// Opens the transaction and binds the tenant and user in one round
    /// trip: `BEGIN` and the two transaction-local `set_config` calls go as
    /// one simple-protocol message. The values are `Uuid`s, whose text form
    /// is hex digits and dashes, so nothing can be injected.
    pub(crate) async fn begin(pool: &sqlx::PgPool, ctx: TenantCtx) -> Result<Self, DbError> {
        let user = ctx.user_id.map(|u| u.to_string()).unwrap_or_default();
        let statement = format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true), set_config('app.user_id', '{user}', true)",
            ctx.tenant_id
        );
        let tx = pool.begin_with(sqlx::AssertSqlSafe(statement)).await?;
        Ok(Self { tx, ctx })
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
        self.tx.commit().await.map_err(DbError::from)
    }

    /// Ends a transaction that only read. Nothing needs committing, so it is
    /// dropped: sqlx queues the ROLLBACK and sends it together with the check
    /// it makes when the connection returns to the pool, which saves the
    /// round trip a COMMIT would cost.
    pub fn end_read_only(self) {
        drop(self);
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        self.tx.rollback().await.map_err(DbError::from)
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
