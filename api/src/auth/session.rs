//! Authentication of every protected request: the bearer token, then the
//! session in Redis, and the caller's access, resolved again when it may
//! have changed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ferro_auth::Permission;
use ferro_auth::jwt::JwtError;
use ferro_db::{Db, TenantCtx};
use uuid::Uuid;

use super::principal::{Principal, TokenSession};
use crate::after_request::AuditCaller;
use crate::error::ApiError;
use crate::state::AppState;

/// The WebSocket subprotocol that carries an access token: a browser cannot
/// set headers on a WebSocket handshake, so it connects with
/// `new WebSocket(url, ["bearer", token])` and the server answers with
/// `bearer` as the chosen subprotocol.
pub const WS_BEARER_PROTOCOL: &str = "bearer";

/// The access token: from `Authorization: Bearer`, or, on a WebSocket
/// handshake without that header, from the subprotocols `bearer, <token>`.
fn bearer(req: &Request) -> Option<&str> {
    let headers = req.headers();
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    let upgrade = headers.get(axum::http::header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    let protocols = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    let mut items = protocols.split(',').map(str::trim);
    items.find(|p| *p == WS_BEARER_PROTOCOL)?;
    items.next().filter(|token| !token.is_empty())
}

/// Middleware for protected routes; see the module docs.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(&req).ok_or(ApiError::Unauthorized("a bearer token is required"))?;
    let claims = state.jwt.decode(token).map_err(|e| match e {
        JwtError::Expired => ApiError::Unauthorized("the access token has expired"),
        JwtError::Invalid => ApiError::Unauthorized("the access token is invalid"),
    })?;
    let principal = principal_of(&state, TokenSession::of(&claims)).await?;
    tracing::Span::current().record("user_id", tracing::field::display(principal.user_id));
    // For the audit row the observe middleware writes (mutations only).
    if let Some(caller) = req.extensions().get::<AuditCaller>() {
        caller.set(&principal);
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// The caller an access token's claims stand for, checked against the
/// session in Redis (gone, or from before a switch of tenant: 401), with the
/// permissions resolved again if the tenant's authorization epoch moved (a
/// deactivated user, tenant or membership, or a changed password, ends the
/// session). Run for every request, and again by long-lived event streams.
pub(crate) async fn principal_of(
    state: &AppState,
    claims: TokenSession,
) -> Result<Principal, ApiError> {
    let (mut session, epoch) = state
        .sessions
        .load(claims.session_id, claims.tenant_id, claims.generation)
        .await?
        .filter(|(s, _)| s.user_id == claims.user_id)
        .ok_or(ApiError::Unauthorized("the session has ended"))?;
    if session.needs_check(epoch, ACCESS_RECHECK) {
        match resolve_access(&state.db, session.user_id, session.tenant_id).await? {
            Some(access) if access.password_changed_at <= session.born => {
                session.is_platform_admin = access.is_platform_admin;
                session.permissions = access.permissions;
                state
                    .sessions
                    .update_permissions(
                        session.id,
                        access.is_platform_admin,
                        &session.permissions,
                        epoch,
                    )
                    .await?;
            }
            _ => {
                // Deactivated user, tenant or membership, or a password
                // changed since the session began: the session is over.
                state.sessions.revoke(session.id).await?;
                return Err(ApiError::Unauthorized("the session has ended"));
            }
        }
    }
    Ok(Principal {
        user_id: session.user_id,
        tenant_id: session.tenant_id,
        session_id: session.id,
        generation: claims.generation,
        is_platform_admin: session.is_platform_admin,
        permissions: Arc::new(
            session
                .permissions
                .iter()
                .filter_map(|p| Permission::from_code(p))
                .collect(),
        ),
    })
}

/// How often a session's cached access is resolved again even when no change
/// was signalled (a safety net for a lost epoch bump or a demoted platform
/// administrator).
pub const ACCESS_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// What a user may do in a tenant.
#[derive(Debug, Clone)]
pub struct Access {
    pub is_platform_admin: bool,
    pub permissions: Vec<String>,
    /// When the user's password last changed (unix milliseconds); sessions
    /// born before it are void.
    pub password_changed_at: i64,
}

/// Resolves `user`'s access to `tenant` from the database: `None` if the
/// tenant is inactive, or the user is neither an active member nor an active
/// platform administrator. Members get the permissions of their roles;
/// platform administrators get every permission.
pub async fn resolve_access(
    db: &Db,
    user_id: Uuid,
    tenant_id: Uuid,
) -> Result<Option<Access>, ApiError> {
    type Row = (Option<bool>, bool, bool, Vec<String>, i64);
    let mut tx = db.begin(TenantCtx::new(tenant_id, Some(user_id))).await?;
    let (tenant_active, platform_admin, member, codes, password_changed_at): Row = sqlx::query_as(
        "SELECT (SELECT is_active FROM tenants WHERE id = app_current_tenant()), \
           auth_is_platform_admin($1), \
           EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id \
                   WHERE m.user_id = $1 AND m.is_active AND u.is_active), \
           ARRAY(SELECT DISTINCT rp.permission FROM membership_roles mr \
                 JOIN role_permissions rp ON rp.role_id = mr.role_id \
                 WHERE mr.user_id = $1 ORDER BY 1), \
           coalesce((SELECT floor(extract(epoch FROM password_changed_at) * 1000)::bigint \
                     FROM users WHERE id = $1), 0)",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.end_read_only();
    if tenant_active != Some(true) {
        return Ok(None);
    }
    if platform_admin {
        let all = Permission::ALL
            .iter()
            .map(|p| p.code().to_owned())
            .collect();
        return Ok(Some(Access {
            is_platform_admin: true,
            permissions: all,
            password_changed_at,
        }));
    }
    Ok(member.then_some(Access {
        is_platform_admin: false,
        permissions: codes,
        password_changed_at,
    }))
}
