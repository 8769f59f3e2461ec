//! The guard that keeps every tenant manageable: a change of users or roles
//! may not take `users:manage` from the tenant's last active holder. Used
//! by the users and roles routes alike.

use ferro_db::TenantTx;
use uuid::Uuid;

use crate::error::ApiError;

/// Whether the tenant has an active member holding `users:manage`; with a
/// user id bound as `$1`, whether that member does (NULL: anyone).
const MANAGES_USERS: &str = "SELECT EXISTS (SELECT 1 FROM memberships m \
     JOIN users u ON u.id = m.user_id \
     JOIN membership_roles mr ON mr.user_id = m.user_id \
     JOIN role_permissions rp ON rp.role_id = mr.role_id \
     WHERE m.is_active AND u.is_active AND rp.permission = 'users:manage' \
       AND ($1::uuid IS NULL OR m.user_id = $1))";

/// Before a change that can take `users:manage` from `target` (new roles,
/// deactivation, removal; `None`: from anyone, as a change of a role can):
/// serializes such changes within the tenant, so that two managers removing
/// each other cannot both succeed, and answers whether `target` (anyone)
/// manages users now. Pass the answer to [`keep_a_user_manager`] after the
/// change.
pub async fn lock_user_managers(tx: &mut TenantTx, target: Option<Uuid>) -> Result<bool, ApiError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('ferro:user-managers:' || app_current_tenant()::text, 0))",
    )
    .execute(&mut **tx)
    .await?;
    Ok(sqlx::query_scalar(MANAGES_USERS)
        .bind(target)
        .fetch_one(&mut **tx)
        .await?)
}

/// Refuses a change that took `users:manage` from the tenant's last active
/// holder: nobody but a platform administrator could manage its users and
/// roles again.
pub async fn keep_a_user_manager(tx: &mut TenantTx, target_managed: bool) -> Result<(), ApiError> {
    if !target_managed {
        return Ok(());
    }
    let left: bool = sqlx::query_scalar(MANAGES_USERS)
        .bind(None::<Uuid>)
        .fetch_one(&mut **tx)
        .await?;
    if left {
        return Ok(());
    }
    Err(ApiError::Conflict {
        detail: "this would leave the tenant with no active member who can manage its users \
                 (users:manage); give that to someone else first"
            .to_owned(),
        field: None,
    })
}
