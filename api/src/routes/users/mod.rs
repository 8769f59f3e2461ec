//! `/api/v1/users`: members of the current tenant.

use axum::extract::State;
use axum::http::StatusCode;
use ferro_auth::password;
use ferro_db::TenantTx;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

mod types;

pub use types::*;

use crate::auth::{
    Guard, Principal, UsersManage, UsersRead, blocking, check_new_password, require_holds,
};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::Paginated;
use crate::state::AppState;
use crate::user_managers::{keep_a_user_manager, lock_user_managers};
use crate::validation::{Validator, search};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, remove_user))
        .routes(routes!(set_user_roles))
}

async fn fetch_user(tx: &mut TenantTx, id: Uuid) -> Result<User, ApiError> {
    let user: Option<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE u.id = $1 GROUP BY u.id, m.is_active"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    user.ok_or(ApiError::NotFound("user"))
}

/// Role ids for names in the current tenant; 422 naming the unknown ones.
async fn role_ids(tx: &mut TenantTx, names: &[String]) -> Result<Vec<Uuid>, ApiError> {
    let found: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM roles WHERE name = ANY($1)")
            .bind(names)
            .fetch_all(&mut **tx)
            .await?;
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !found.iter().any(|(_, f)| f == *n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::field(
            "roles",
            &format!("unknown roles: {}", unknown.join(", ")),
        ));
    }
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

/// Whether `caller` may act on `target`'s account (password, email,
/// activation, roles, removal): itself always; a platform administrator
/// always; anyone else only if the target is not a platform administrator
/// and holds no permission in this tenant that the caller lacks. Otherwise a
/// user with `users:manage` alone could reset an admin's password and become
/// that admin.
async fn protect_target(
    tx: &mut TenantTx,
    caller: &Principal,
    target: Uuid,
) -> Result<(), ApiError> {
    if caller.user_id == target || caller.is_platform_admin {
        return Ok(());
    }
    let (is_admin, held): (bool, Vec<String>) = sqlx::query_as(
        "SELECT coalesce((SELECT is_platform_admin FROM users WHERE id = $1), false), \
           ARRAY(SELECT DISTINCT rp.permission FROM membership_roles mr \
                 JOIN role_permissions rp ON rp.role_id = mr.role_id WHERE mr.user_id = $1)",
    )
    .bind(target)
    .fetch_one(&mut **tx)
    .await?;
    if is_admin {
        return Err(ApiError::Forbidden(
            "only a platform administrator may change a platform administrator".to_owned(),
        ));
    }
    require_holds(
        caller,
        &held,
        "you cannot change a user who holds permissions you do not",
    )
}

/// Assigning roles must not grant more than the caller holds.
async fn check_grantable(
    tx: &mut TenantTx,
    caller: &Principal,
    roles: &[Uuid],
) -> Result<(), ApiError> {
    let granted: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT permission FROM role_permissions WHERE role_id = ANY($1) ORDER BY 1",
    )
    .bind(roles)
    .fetch_all(&mut **tx)
    .await?;
    require_holds(
        caller,
        &granted,
        "you cannot grant permissions you do not hold",
    )
}

async fn replace_roles(tx: &mut TenantTx, user: Uuid, roles: &[Uuid]) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM membership_roles WHERE user_id = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO membership_roles (tenant_id, user_id, role_id) \
         SELECT app_current_tenant(), $1, unnest($2::uuid[])",
    )
    .bind(user)
    .bind(roles)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Lists the tenant's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = ["users:read"])), params(UserQuery),
    responses((status = 200, description = "A page of users", body = Paginated<User>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_users(
    State(state): State<AppState>,
    guard: Guard<UsersRead>,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<axum::Json<Paginated<User>>, ApiError> {
    let (paging, pattern) = search(query.page, query.size, query.q.as_deref())?;
    let filter = "WHERE ($1::text IS NULL OR u.username ILIKE $1 OR u.email ILIKE $1)";
    let mut tx = state.db.begin(guard.ctx()).await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id {filter}"
    )))
    .bind(&pattern)
    .fetch_one(&mut *tx)
    .await?;
    let items: Vec<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} {filter} GROUP BY u.id, m.is_active ORDER BY lower(u.username), u.id {page}",
        page = ferro_db::limit_offset(paging.size, paging.offset())
    )))
    .bind(&pattern)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Creates a user who is a member of the current tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = ["users:manage"])), request_body = CreateUser,
    responses((status = 201, description = "Created", body = User, headers(("Location" = String, description = "Where the new resource is"))),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn create_user(
    State(state): State<AppState>,
    guard: Guard<UsersManage>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<super::At<User>, ApiError> {
    let mut v = Validator::default();
    v.check(
        ferro_config::valid_username(&body.username),
        "username",
        "must be 3-64 letters, digits or ._@-",
    );
    check_new_password("password", &body.password, &mut v);
    if let Some(email) = &body.email {
        v.check(valid_email(email), "email", "must be an email address");
    }
    v.check(body.roles.len() <= 32, "roles", "at most 32 roles");
    v.finish()?;

    let pw = body.password.clone();
    let hash = blocking(move || password::hash(&pw))
        .await?
        .map_err(ApiError::internal)?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let roles = role_ids(&mut tx, &body.roles).await?;
    check_grantable(&mut tx, &guard, &roles).await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (home_tenant_id, username, email, password_hash) \
         VALUES (app_current_tenant(), $1, $2, $3) RETURNING id",
    )
    .bind(&body.username)
    .bind(&body.email)
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO memberships (tenant_id, user_id) VALUES (app_current_tenant(), $1)")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    replace_roles(&mut tx, id, &roles).await?;
    let user = fetch_user(&mut tx, id).await?;
    tx.commit().await?;
    Ok(super::At::created("users", user.id, user))
}

/// One user of the tenant.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = ["users:read"])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User),
        (status = 404, description = "Not a user of this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_user(
    State(state): State<AppState>,
    guard: Guard<UsersRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<User>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let user = fetch_user(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(user))
}

/// Changes a user's email or password (home tenant only) or (de)activates
/// the user in this tenant.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = ["users:manage"])),
    params(("id" = Uuid, Path, description = "User id")), request_body = UpdateUser,
    responses((status = 200, description = "Updated", body = User),
        (status = 403, description = "Missing users:manage, or not the user's home tenant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a user of this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the tenant with no active user manager", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn update_user(
    State(state): State<AppState>,
    guard: Guard<UsersManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<axum::Json<User>, ApiError> {
    let mut v = Validator::default();
    if let Some(Some(email)) = &body.email {
        v.check(valid_email(email), "email", "must be an email address");
    }
    if let Some(pw) = &body.password {
        check_new_password("password", pw, &mut v);
    }
    v.check(
        !(body.is_active == Some(false) && id == guard.user_id),
        "is_active",
        "you cannot deactivate yourself",
    );
    v.check(
        !(body.password.is_some() && id == guard.user_id),
        "password",
        "change your own password with POST /api/v1/auth/change-password, which asks for the current one",
    );
    v.finish()?;
    let hash = match body.password.clone() {
        Some(pw) => Some(
            blocking(move || password::hash(&pw))
                .await?
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };

    let mut tx = state.db.begin(guard.ctx()).await?;
    let current = fetch_user(&mut tx, id).await?;
    protect_target(&mut tx, &guard, id).await?;
    let managed = match body.is_active {
        Some(false) => lock_user_managers(&mut tx, Some(id)).await?,
        _ => false,
    };
    let home = current.home_tenant_id == guard.tenant_id;
    if (body.email.is_some() || hash.is_some()) && !home {
        return Err(ApiError::Forbidden(
            "only the user's home tenant may change the email or password".to_owned(),
        ));
    }
    // Separate statements: the app role may write password_hash but never read it.
    if let Some(email) = &body.email {
        sqlx::query("UPDATE users SET email = $2 WHERE id = $1")
            .bind(id)
            .bind(email)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(hash) = &hash {
        sqlx::query(
            "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(active) = body.is_active {
        sqlx::query("UPDATE memberships SET is_active = $2 WHERE user_id = $1")
            .bind(id)
            .bind(active)
            .execute(&mut *tx)
            .await?;
        if home {
            sqlx::query("UPDATE users SET is_active = $2 WHERE id = $1")
                .bind(id)
                .bind(active)
                .execute(&mut *tx)
                .await?;
        }
    }
    keep_a_user_manager(&mut tx, managed).await?;
    let user = fetch_user(&mut tx, id).await?;
    tx.commit().await?;
    // A new password, or an account deactivated by its home tenant, ends
    // every session; a membership deactivated elsewhere ends only the
    // sessions in this tenant.
    if hash.is_some() || (body.is_active == Some(false) && home) {
        state.sessions.revoke_all_for_user(id).await?;
    } else if body.is_active == Some(false) {
        state
            .sessions
            .revoke_for_user_in_tenant(id, guard.tenant_id)
            .await?;
    }
    if body.is_active.is_some() {
        state.sessions.bump_authz_epoch(guard.tenant_id).await?;
    }
    Ok(axum::Json(user))
}

/// Removes the user from this tenant and ends their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = ["users:manage"])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Removed from the tenant"),
        (status = 404, description = "Not a user of this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the tenant with no active user manager", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Removing yourself", body = Problem, content_type = "application/problem+json")))]
async fn remove_user(
    State(state): State<AppState>,
    guard: Guard<UsersManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if id == guard.user_id {
        return Err(ApiError::field("id", "you cannot remove yourself"));
    }
    let mut tx = state.db.begin(guard.ctx()).await?;
    protect_target(&mut tx, &guard, id).await?;
    let managed = lock_user_managers(&mut tx, Some(id)).await?;
    let home: Option<Uuid> = sqlx::query_scalar("SELECT home_tenant_id FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let removed = sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::NotFound("user"));
    }
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1 AND home_tenant_id = app_current_tenant()")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    keep_a_user_manager(&mut tx, managed).await?;
    tx.commit().await?;
    if home == Some(guard.tenant_id) {
        // Removed from its home tenant, the account is deactivated everywhere.
        state.sessions.revoke_all_for_user(id).await?;
    } else {
        state
            .sessions
            .revoke_for_user_in_tenant(id, guard.tenant_id)
            .await?;
    }
    state.sessions.bump_authz_epoch(guard.tenant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the user's roles in this tenant; takes effect on their next request.
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "users", security(("bearer" = ["users:manage"])),
    params(("id" = Uuid, Path, description = "User id")), request_body = SetRoles,
    responses((status = 200, description = "The user with the new roles", body = User),
        (status = 404, description = "Not a user of this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the tenant with no active user manager", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown roles", body = Problem, content_type = "application/problem+json")))]
async fn set_user_roles(
    State(state): State<AppState>,
    guard: Guard<UsersManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetRoles>,
) -> Result<axum::Json<User>, ApiError> {
    let mut v = Validator::default();
    v.check(body.roles.len() <= 32, "roles", "at most 32 roles");
    v.finish()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    fetch_user(&mut tx, id).await?;
    protect_target(&mut tx, &guard, id).await?;
    let roles = role_ids(&mut tx, &body.roles).await?;
    check_grantable(&mut tx, &guard, &roles).await?;
    let managed = lock_user_managers(&mut tx, Some(id)).await?;
    replace_roles(&mut tx, id, &roles).await?;
    keep_a_user_manager(&mut tx, managed).await?;
    let user = fetch_user(&mut tx, id).await?;
    tx.commit().await?;
    state.sessions.bump_authz_epoch(guard.tenant_id).await?;
    Ok(axum::Json(user))
}
