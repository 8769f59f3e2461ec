use std::ops::{Deref, DerefMut};

use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;

/// Who a transaction acts for: the tenant whose rows it may see and write,
/// and the user (if any) on whose behalf it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub(crate) async fn bind(
        mut tx: Transaction<'static, Postgres>,
        ctx: TenantCtx,
    ) -> Result<Self, DbError> {
        sqlx::query(
            "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true)",
        )
        .bind(ctx.tenant_id.to_string())
        .bind(ctx.user_id.map(|u| u.to_string()).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
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
