//! Who is calling, and what they may do: the [`Principal`] that
//! authentication puts in every protected request, and the guards handlers
//! declare ([`Guard<R>`] for a permission, [`Authenticated`] for anyone
//! signed in).

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferro_auth::Permission;
use ferro_db::TenantCtx;
use uuid::Uuid;

use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    /// The session's tenant generation the token was issued at.
    pub generation: u32,
    pub is_platform_admin: bool,
    pub permissions: Arc<HashSet<Permission>>,
}

impl Principal {
    /// The tenant and user every database transaction of this request is bound to.
    pub fn ctx(&self) -> TenantCtx {
        TenantCtx::new(self.tenant_id, Some(self.user_id))
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Refuses a caller who is not a platform administrator a platform-only
    /// kind (`sessions.cleanup`): to run, schedule, cancel, enable, disable or
    /// delete such jobs and schedules alike.
    pub fn may_handle_kind(&self, kind: &str) -> Result<(), ApiError> {
        match ferro_tasks::JobKind::parse(kind) {
            Some(kind) if kind.platform_only() && !self.is_platform_admin => Err(
                ApiError::Forbidden(format!("{kind} jobs are for platform administrators")),
            ),
            _ => Ok(()),
        }
    }

    pub fn sorted_permissions(&self) -> Vec<Permission> {
        let mut all: Vec<Permission> = self.permissions.iter().copied().collect();
        all.sort();
        all
    }
}

/// A permission a handler requires; see [`Guard`].
pub trait Requirement: Send + Sync + 'static {
    const PERMISSION: Permission;
}

macro_rules! requirements {
    ($($name:ident => $perm:ident),* $(,)?) => {
        $(
            #[doc = concat!("Requires `", stringify!($perm), "`.")]
            pub struct $name;
            impl Requirement for $name {
                const PERMISSION: Permission = Permission::$perm;
            }
        )*
    };
}

requirements! {
    TenantsManage => TenantsManage,
    UsersRead => UsersRead,
    UsersManage => UsersManage,
    RolesRead => RolesRead,
    RolesManage => RolesManage,
    DevicesRead => DevicesRead,
    DevicesWrite => DevicesWrite,
    JobsRead => JobsRead,
    JobsRun => JobsRun,
    JobsManage => JobsManage,
    SchedulesRead => SchedulesRead,
    SchedulesManage => SchedulesManage,
    AuditRead => AuditRead,
}

/// The declarative guard: `guard: Guard<DevicesWrite>` in a handler's
/// arguments answers 401 without a principal and 403 without the permission.
pub struct Guard<R: Requirement> {
    pub principal: Principal,
    _requirement: PhantomData<R>,
}

impl<R: Requirement> std::ops::Deref for Guard<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<S: Send + Sync, R: Requirement> FromRequestParts<S> for Guard<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized("authentication required"))?;
        if !principal.has(R::PERMISSION) {
            return Err(ApiError::Forbidden(format!(
                "this needs the permission {}",
                R::PERMISSION
            )));
        }
        Ok(Guard {
            principal,
            _requirement: PhantomData,
        })
    }
}

/// Any signed-in user, whatever their permissions.
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authenticated)
            .ok_or(ApiError::Unauthorized("authentication required"))
    }
}

/// What an access token says of its session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenSession {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub generation: u32,
}

impl TokenSession {
    pub fn of(claims: &ferro_auth::jwt::Claims) -> Self {
        Self {
            user_id: claims.sub,
            tenant_id: claims.tid,
            session_id: claims.sid,
            generation: claims.generation,
        }
    }
}

impl Principal {
    /// The session this caller's token named, to check again later.
    pub(crate) fn token_session(&self) -> TokenSession {
        TokenSession {
            user_id: self.user_id,
            tenant_id: self.tenant_id,
            session_id: self.session_id,
            generation: self.generation,
        }
    }
}

/// Refuses (403) unless `caller` holds every permission in `codes`: nobody
/// hands out, or takes power over, more than they have.
pub fn require_holds(caller: &Principal, codes: &[String], message: &str) -> Result<(), ApiError> {
    let missing: Vec<&str> = codes
        .iter()
        .filter(|code| !Permission::from_code(code).is_some_and(|p| caller.has(p)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{message}: {}",
            missing.join(", ")
        )))
    }
}
