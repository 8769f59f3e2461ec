//! `POST /api/v1/auth/login`: an attempt ([`attempt`]) that ends granted
//! or refused with its reason, and one place ([`login`]) that writes the
//! attempt's row in the login log and answers.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use chrono::Utc;
use ferro_auth::password;
use ferro_auth::sessions::NewSession;
use ferro_db::cross_tenant::{LoginOutcome, LoginRecord, LoginUser, UserTenant};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::password::blocking;
use super::session::resolve_access;
use super::tokens::{TokenPair, pair};
use crate::client_ip::client_ip;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::openapi::fields;
use crate::state::AppState;
use crate::validation::Validator;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "admin", "password": "admin", "tenant": "default"}))]
pub struct LoginRequest {
    /// Not only blanks; at most 256 characters.
    #[schema(schema_with = login_name)]
    pub username: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// Tenant slug or id; by default the user's home tenant.
    #[schema(schema_with = login_tenant)]
    pub tenant: Option<String>,
}

fn login_name() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(fields::not_blank(256))
}

fn login_tenant() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let mut tenant = fields::not_blank(63);
    tenant["type"] = serde_json::json!(["string", "null"]);
    fields::schema(tenant)
}

const BAD_CREDENTIALS: &str = "invalid username or password";

/// How an attempt ended.
enum Attempt {
    /// A session was opened in `tenant_id`.
    Granted {
        user_id: Uuid,
        tenant_id: Uuid,
        tokens: TokenPair,
    },
    Refused(Refusal),
}

/// A refused attempt: what the log keeps (the tenant and user it concerns,
/// as far as they are known, and why) and what the client is told.
struct Refusal {
    tenant_id: Option<Uuid>,
    user_id: Option<Uuid>,
    outcome: LoginOutcome,
    reason: &'static str,
    answer: ApiError,
}

impl Refusal {
    /// A failure concerning `user` (in its home tenant), if one is known.
    fn of(user: Option<&LoginUser>, reason: &'static str, answer: ApiError) -> Self {
        Refusal {
            tenant_id: user.map(|u| u.home_tenant_id),
            user_id: user.map(|u| u.id),
            outcome: LoginOutcome::Failure,
            reason,
            answer,
        }
    }
}

impl From<Refusal> for Attempt {
    fn from(refusal: Refusal) -> Self {
        Attempt::Refused(refusal)
    }
}

/// Who is attempting: what the log records besides the outcome.
struct Caller<'a> {
    /// As given, cut to what the log keeps.
    username: String,
    ip: Option<IpAddr>,
    user_agent: Option<&'a str>,
    /// Before the password hash is read: see the end of [`attempt`].
    started: i64,
}

/// Logs in and opens a session.
///
/// A wrong user name and a wrong password get the same 401, in similar time.
/// Repeated failures per user name or per client address get 429 with
/// `Retry-After`. Every attempt is written to the login log.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPair),
        (status = 401, description = "Wrong user name or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No access to the requested tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json")))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<TokenPair, ApiError> {
    let caller = Caller {
        started: Utc::now().timestamp_millis(),
        username: body.username.trim().chars().take(256).collect(),
        ip: client_ip(
            &headers,
            Some(peer.ip()),
            &state.config.http.trusted_proxies,
        ),
        user_agent: headers.get("user-agent").and_then(|v| v.to_str().ok()),
    };
    let attempt = attempt(&state, &caller, &body).await?;
    let (tenant_id, user_id, outcome, reason) = match &attempt {
        Attempt::Granted {
            user_id, tenant_id, ..
        } => (
            Some(*tenant_id),
            Some(*user_id),
            LoginOutcome::Success,
            None,
        ),
        Attempt::Refused(r) => (r.tenant_id, r.user_id, r.outcome, Some(r.reason)),
    };
    let row = LoginRecord {
        tenant_id,
        user_id,
        username: &caller.username,
        ip: caller.ip,
        user_agent: caller.user_agent,
        outcome,
        reason,
    };
    state.db.record_login(&row).await?;
    match attempt {
        Attempt::Granted {
            user_id,
            tenant_id,
            tokens,
        } => {
            tracing::info!(%user_id, %tenant_id, "logged in");
            Ok(tokens)
        }
        Attempt::Refused(refusal) => Err(refusal.answer),
    }
}

/// Checks the request, the throttle, the password and the tenant, and opens
/// the session. An error is a dependency that failed (nothing is logged
/// then); every decision is an [`Attempt`].
async fn attempt(
    state: &AppState,
    caller: &Caller<'_>,
    body: &LoginRequest,
) -> Result<Attempt, ApiError> {
    if let Err(invalid) = check(body) {
        return Ok(Refusal::of(None, "invalid request", invalid).into());
    }
    let username = caller.username.as_str();
    let ip_text = caller.ip.map(|i| i.to_string()).unwrap_or_default();
    let wait = match state.throttle.attempt(username, &ip_text).await {
        Ok(wait) => wait,
        // Without the throttle's counts no password is checked.
        Err(err) => {
            let answer = err.into();
            return Ok(Refusal::of(None, "login throttle unavailable", answer).into());
        }
    };
    if let Some(wait) = wait {
        // Named, so that the tenant sees the attempts on its users in its
        // login log (the password is not looked at).
        let user = state.db.lookup_login_user(username).await?;
        let answer = ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        };
        let throttled = Refusal {
            outcome: LoginOutcome::Throttled,
            ..Refusal::of(user.as_ref(), "too many failures", answer)
        };
        return Ok(throttled.into());
    }

    let user = state.db.lookup_login_user(username).await?;
    let verified = verify(user.as_ref(), &body.password).await?;
    let failure = match &user {
        None => Some("unknown user"),
        Some(_) if !verified => Some("wrong password"),
        Some(u) if !u.is_active => Some("inactive user"),
        _ => None,
    };
    if let Some(reason) = failure {
        let answer = ApiError::Unauthorized(BAD_CREDENTIALS);
        return Ok(Refusal::of(user.as_ref(), reason, answer).into());
    }
    let user = user.expect("checked above");

    let tenants = state.db.user_tenants(user.id).await?;
    let no_access = || ApiError::Forbidden("you have no access to that tenant".to_owned());
    let Some(tenant) = choose_tenant(&tenants, &user, body.tenant.as_deref()) else {
        return Ok(Refusal::of(Some(&user), "no access to tenant", no_access()).into());
    };
    let Some(access) = resolve_access(&state.db, user.id, tenant.tenant_id).await? else {
        let refused = Refusal {
            tenant_id: Some(tenant.tenant_id),
            ..Refusal::of(Some(&user), "no access to tenant", no_access())
        };
        return Ok(refused.into());
    };
    let epoch = state.sessions.authz_epoch(tenant.tenant_id).await?;
    let ip_for_session = caller.ip.map(|i| i.to_string());
    let (session, refresh_token) = state
        .sessions
        .create(NewSession {
            user_id: user.id,
            tenant_id: tenant.tenant_id,
            is_platform_admin: access.is_platform_admin,
            permissions: &access.permissions,
            authz_epoch: epoch,
            ip: ip_for_session.as_deref(),
            user_agent: caller.user_agent,
            born: caller.started,
        })
        .await?;
    // A password change that committed after the hash was read ends the
    // user's sessions only once its transaction is over, and may have done so
    // before this session existed: if the hash checked is no longer the
    // user's, this login is undone.
    let current = state.db.lookup_login_user(username).await?;
    if current.is_none_or(|c| c.id != user.id || c.password_hash != user.password_hash) {
        state.sessions.revoke(session.id).await?;
        let answer = ApiError::Unauthorized(BAD_CREDENTIALS);
        let changed = Refusal::of(Some(&user), "password changed during login", answer);
        return Ok(changed.into());
    }
    state.throttle.record_success(username, &ip_text).await?;
    tracing::debug!(session_id = %session.id, "session opened");
    let ids = (session.id, session.generation);
    Ok(Attempt::Granted {
        user_id: user.id,
        tenant_id: tenant.tenant_id,
        tokens: pair(state, user.id, tenant.tenant_id, ids, refresh_token),
    })
}

/// The request's fields, before anything is looked up.
fn check(body: &LoginRequest) -> Result<(), ApiError> {
    let mut v = Validator::default();
    v.check(
        !body.username.trim().is_empty() && body.username.chars().count() <= 256,
        "username",
        "is required (at most 256 characters)",
    );
    v.check(
        !body.password.is_empty() && body.password.chars().count() <= 1024,
        "password",
        "is required (at most 1024 characters)",
    );
    if let Some(tenant) = &body.tenant {
        v.check(
            !tenant.trim().is_empty() && tenant.chars().count() <= 63,
            "tenant",
            "is a tenant slug or id (1 to 63 characters) when given",
        );
    }
    v.finish()
}

/// Whether `presented` is the user's password, checked on the blocking
/// pool; for an unknown user, against a stand-in hash, so that a wrong user
/// name takes as long as a wrong password.
async fn verify(user: Option<&LoginUser>, presented: &str) -> Result<bool, ApiError> {
    let stored = user.map(|u| u.password_hash.clone());
    let presented = presented.to_owned();
    blocking(move || {
        // The stand-in for unknown users, made off the runtime by the first
        // login of all, whoever it names: so the first unknown user takes no
        // longer than a known one (and an idle api has not spent the
        // hash's memory).
        let dummy = password::dummy_hash();
        let hash = match &stored {
            Some(hash) => hash.as_str(),
            None => dummy,
        };
        password::verify(&presented, hash).unwrap_or(false)
    })
    .await
}

/// The tenant the login enters: the one asked for (slug or id), or the
/// user's home tenant, or any tenant the user is a member of, or (for a
/// platform administrator) any tenant at all.
fn choose_tenant<'a>(
    tenants: &'a [UserTenant],
    user: &LoginUser,
    wanted: Option<&str>,
) -> Option<&'a UserTenant> {
    match wanted {
        Some(wanted) => {
            // Slugs are lower case; an id may be written in either case.
            let wanted = wanted.trim();
            let id = Uuid::parse_str(wanted).ok();
            tenants
                .iter()
                .find(|t| Some(t.tenant_id) == id || t.slug.eq_ignore_ascii_case(wanted))
        }
        None => tenants
            .iter()
            .find(|t| t.tenant_id == user.home_tenant_id && t.is_member)
            .or_else(|| tenants.iter().find(|t| t.is_member))
            .or_else(|| tenants.first()),
    }
}
