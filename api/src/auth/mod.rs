//! Who is calling, and what they may do.
//!
//! [`authenticate`] runs before every protected route: it checks the bearer
//! token (HS256, issuer, audience, expiry), then the session in Redis (so a
//! logout or revocation takes effect at once), refreshes the cached
//! permissions when the tenant's authorization epoch moved, and puts a
//! [`Principal`] in the request. Handlers declare what they need with
//! [`Guard<R>`] (a permission) or [`Authenticated`] (any signed-in user).

mod login;
mod password;
mod principal;
mod routes;
mod session;
mod tokens;

pub use password::{blocking, check_new_password};
pub use principal::{
    AuditRead, Authenticated, DevicesRead, DevicesWrite, Guard, JobsManage, JobsRead, JobsRun,
    Principal, Requirement, RolesManage, RolesRead, SchedulesManage, SchedulesRead, TenantsManage,
    UsersManage, UsersRead, require_holds,
};
pub use routes::router;
pub(crate) use session::principal_of;
pub use session::{ACCESS_RECHECK, Access, WS_BEARER_PROTOCOL, authenticate, resolve_access};

/// The auth routes anyone may call: login and refresh.
pub fn public_router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    login::router().merge(routes::public())
}
