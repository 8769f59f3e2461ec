//! The token pair a login, a refresh or a switch of tenant answers with.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
    pub tenant_id: Uuid,
}

/// Tokens are never to be stored by a cache on the way (RFC 6749 5.1).
impl axum::response::IntoResponse for TokenPair {
    fn into_response(self) -> axum::response::Response {
        (
            [
                (axum::http::header::CACHE_CONTROL, "no-store"),
                (axum::http::header::PRAGMA, "no-cache"),
            ],
            axum::Json(self),
        )
            .into_response()
    }
}

/// A new access token for the session `(id, generation)`, with its refresh token.
pub fn pair(
    state: &AppState,
    user: Uuid,
    tenant: Uuid,
    (session, generation): (Uuid, u32),
    refresh_token: String,
) -> TokenPair {
    TokenPair {
        access_token: state.jwt.issue(user, tenant, session, generation),
        refresh_token,
        token_type: "Bearer",
        expires_in: state.jwt.lifetime_secs(),
        tenant_id: tenant,
    }
}
