//! `/api/v1/auth`: login, refresh, logout, me, switch-tenant, sessions,
//! change-password.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ferro_auth::password;
use ferro_auth::sessions::Rotation;
use ferro_db::cross_tenant::UserTenant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::password::{blocking, check_new_password};
use super::principal::Authenticated;
use super::session::resolve_access;
use super::tokens::{TokenPair, pair};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::validation::Validator;

/// Routes anyone may call (besides login).
pub fn public() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(refresh))
}

/// Routes for signed-in users.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(switch_tenant))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "7b0c1e2a-7f4e-4f7c-9a39-2b8e6c1d5f10.9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tenant_id": "0b5c3c2e-8a7c-4c59-9d0e-2f1d7d7c4a10"}))]
pub struct SwitchTenantRequest {
    pub tenant_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery", "new_password": "staple gun tractor beam"}))]
pub struct ChangePasswordRequest {
    #[schema(max_length = 1024)]
    pub current_password: String,
    #[schema(schema_with = crate::openapi::fields::new_password)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantRef {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub is_platform_admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: MeUser,
    pub tenant: TenantRef,
    pub roles: Vec<String>,
    #[schema(value_type = Vec<String>, example = json!(["devices:read", "jobs:run"]))]
    pub permissions: Vec<ferro_auth::Permission>,
    /// Tenants this user may switch into.
    pub tenants: Vec<TenantRef>,
    pub session_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    pub refreshed_at: Option<DateTime<Utc>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the token making this request.
    pub current: bool,
}

fn tenant_ref(t: &UserTenant) -> TenantRef {
    TenantRef {
        id: t.tenant_id,
        slug: t.slug.clone(),
        name: t.name.clone(),
    }
}

/// Exchanges a refresh token for a new pair. Refresh tokens rotate: each
/// works once, and presenting a used one revokes the whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair),
        (status = 401, description = "Unknown, expired or reused refresh token", body = Problem, content_type = "application/problem+json")))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<TokenPair, ApiError> {
    match state.sessions.rotate(&body.refresh_token).await? {
        Rotation::Rotated {
            session,
            refresh_token,
        } => {
            // Access is resolved afresh: user and tenant still active, still a
            // member, and no password change since the session began.
            let epoch = state.sessions.authz_epoch(session.tenant_id).await?;
            match resolve_access(&state.db, session.user_id, session.tenant_id).await? {
                Some(access) if access.password_changed_at <= session.born => {
                    state
                        .sessions
                        .update_permissions(
                            session.id,
                            access.is_platform_admin,
                            &access.permissions,
                            epoch,
                        )
                        .await?;
                }
                _ => {
                    state.sessions.revoke(session.id).await?;
                    return Err(ApiError::Unauthorized("the session has ended"));
                }
            }
            Ok(pair(
                &state,
                session.user_id,
                session.tenant_id,
                (session.id, session.generation),
                refresh_token,
            ))
        }
        Rotation::Reused { .. } => Err(ApiError::Unauthorized(
            "this refresh token was already used; the session has been revoked",
        )),
        Rotation::Unknown => Err(ApiError::Unauthorized(
            "the refresh token is invalid or expired",
        )),
    }
}

/// Ends the current session; its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out")))]
async fn logout(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.sessions.revoke(p.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user, the current tenant, roles and permissions.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me)))]
async fn me(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<axum::Json<Me>, ApiError> {
    let tenants = state.db.user_tenants(p.user_id).await?;
    let mut tx = state.db.begin(p.ctx()).await?;
    let (username, email, is_platform_admin): (String, Option<String>, bool) =
        sqlx::query_as("SELECT username, email, is_platform_admin FROM users WHERE id = $1")
            .bind(p.user_id)
            .fetch_one(&mut *tx)
            .await?;
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT r.name FROM membership_roles mr JOIN roles r ON r.id = mr.role_id \
         WHERE mr.user_id = $1 ORDER BY r.name",
    )
    .bind(p.user_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let tenant = tenants
        .iter()
        .find(|t| t.tenant_id == p.tenant_id)
        .map(tenant_ref)
        .ok_or(ApiError::Unauthorized("the session has ended"))?;
    Ok(axum::Json(Me {
        user: MeUser {
            id: p.user_id,
            username,
            email,
            is_platform_admin,
        },
        tenant,
        roles,
        permissions: p.sorted_permissions(),
        tenants: tenants.iter().map(tenant_ref).collect(),
        session_id: p.session_id,
    }))
}

/// Moves the session into another tenant the user belongs to (any tenant for
/// a platform administrator) and returns a new pair; the old tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/switch-tenant", tag = "auth", security(("bearer" = [])), request_body = SwitchTenantRequest,
    responses((status = 200, description = "A new token pair for the tenant", body = TokenPair),
        (status = 403, description = "Not a member of that tenant", body = Problem, content_type = "application/problem+json")))]
async fn switch_tenant(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiJson(body): ApiJson<SwitchTenantRequest>,
) -> Result<TokenPair, ApiError> {
    let allowed = state
        .db
        .user_tenants(p.user_id)
        .await?
        .iter()
        .any(|t| t.tenant_id == body.tenant_id);
    if !allowed {
        return Err(ApiError::Forbidden(
            "you have no access to that tenant".to_owned(),
        ));
    }
    let access = resolve_access(&state.db, p.user_id, body.tenant_id)
        .await?
        .ok_or_else(|| ApiError::Forbidden("you have no access to that tenant".to_owned()))?;
    let epoch = state.sessions.authz_epoch(body.tenant_id).await?;
    let (refresh_token, generation) = state
        .sessions
        .switch_tenant(
            p.session_id,
            body.tenant_id,
            access.is_platform_admin,
            &access.permissions,
            epoch,
        )
        .await?
        .ok_or(ApiError::Unauthorized("the session has ended"))?;
    Ok(pair(
        &state,
        p.user_id,
        body.tenant_id,
        (p.session_id, generation),
        refresh_token,
    ))
}

/// The caller's open sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])), params(PageParams),
    responses((status = 200, description = "A page of the open sessions, newest first", body = Paginated<SessionView>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<SessionView>>, ApiError> {
    let paging = page.paging()?;
    let sessions = state.sessions.list_for_user(p.user_id).await?;
    let total = sessions.len() as i64;
    let items = sessions
        .into_iter()
        .skip(paging.offset() as usize)
        .take(paging.size as usize)
        .map(|s| SessionView {
            current: s.id == p.session_id,
            id: s.id,
            tenant_id: s.tenant_id,
            created_at: s.created_at,
            refreshed_at: s.refreshed_at,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Revokes one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such session of yours", body = Problem, content_type = "application/problem+json")))]
async fn revoke_session(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state.sessions.owner_of(id).await? != Some(p.user_id) {
        return Err(ApiError::NotFound("session"));
    }
    state.sessions.revoke(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password; every other session of the user ends.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed"),
        (status = 422, description = "Wrong current password or weak new one", body = Problem, content_type = "application/problem+json")))]
async fn change_password(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let mut v = Validator::default();
    check_new_password("new_password", &body.new_password, &mut v);
    v.check(
        body.current_password.chars().count() <= 1024,
        "current_password",
        "is too long",
    );
    v.finish()?;

    // Verify and hash without holding a database connection (argon2 is
    // slow), and count the attempt like a login: a stolen access token must
    // not be a way to guess the current password.
    let mut tx = state.db.begin(p.ctx()).await?;
    let username: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(p.user_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.end_read_only();
    let throttle_key = format!("password:{}", p.user_id);
    if let Some(wait) = state.throttle.attempt(&username, &throttle_key).await? {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let stored = state
        .db
        .lookup_login_user(&username)
        .await?
        .ok_or(ApiError::Unauthorized("the session has ended"))?
        .password_hash;
    let current = body.current_password.clone();
    if !blocking(move || password::verify(&current, &stored).unwrap_or(false)).await? {
        return Err(ApiError::field(
            "current_password",
            "is not your current password",
        ));
    }
    state
        .throttle
        .record_success(&username, &throttle_key)
        .await?;
    let new = body.new_password.clone();
    let hash = blocking(move || password::hash(&new))
        .await?
        .map_err(ApiError::internal)?;
    let mut tx = state.db.begin(p.ctx()).await?;
    // The instant in the unit `resolve_access` compares sessions' births with.
    let changed_at: i64 = sqlx::query_scalar(
        "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1 \
         RETURNING floor(extract(epoch FROM password_changed_at) * 1000)::bigint",
    )
    .bind(p.user_id)
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    state.sessions.set_born(p.session_id, changed_at).await?;
    for other in state.sessions.list_for_user(p.user_id).await? {
        if other.id != p.session_id {
            state.sessions.revoke(other.id).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
