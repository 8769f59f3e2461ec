//! What the users routes read and answer, with the rules each field
//! follows and how the OpenAPI document states them.

use crate::openapi::fields;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    /// Active in this tenant (membership and account both active).
    pub is_active: bool,
    pub roles: Vec<String>,
    /// The tenant that created the user and manages its account.
    pub home_tenant_id: Uuid,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

pub(super) const SELECT: &str = "SELECT u.id, u.username, u.email, (u.is_active AND m.is_active) AS is_active, \
    coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.name IS NOT NULL), '{}') AS roles, \
    u.home_tenant_id, u.created_at, u.updated_at \
    FROM memberships m JOIN users u ON u.id = m.user_id \
    LEFT JOIN membership_roles mr ON mr.tenant_id = m.tenant_id AND mr.user_id = m.user_id \
    LEFT JOIN roles r ON r.id = mr.role_id";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "alice", "password": "correct horse battery", "email": "alice@example.com", "roles": ["operator"]}))]
pub struct CreateUser {
    #[schema(pattern = "^[A-Za-z0-9._@-]{3,64}$")]
    pub username: String,
    #[schema(schema_with = fields::new_password)]
    pub password: String,
    #[schema(schema_with = optional_email)]
    pub email: Option<String>,
    /// Role names in this tenant, at most 32.
    #[serde(default)]
    #[schema(schema_with = role_names)]
    pub roles: Vec<String>,
}

/// Role names (at most 32; each must exist in the tenant).
pub(super) fn role_names() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({
        "type": "array", "maxItems": 32,
        "items": {"type": "string", "pattern": fields::ROLE_NAME},
    }))
}

/// An email address, or null for none.
pub(super) fn optional_email() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let mut email = fields::email();
    email["type"] = json!(["string", "null"]);
    fields::schema(email)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "alice@example.org", "is_active": true}))]
pub struct UpdateUser {
    /// Only the user's home tenant may change the email or password.
    /// `null` removes the email.
    #[serde(default, deserialize_with = "crate::validation::patch::nullable")]
    #[schema(schema_with = optional_email)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::new_password)]
    pub password: Option<String>,
    /// Deactivating ends the user's sessions.
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::boolean)]
    pub is_active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"roles": ["operator", "viewer"]}))]
pub struct SetRoles {
    #[schema(schema_with = role_names)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// Case-insensitive substring of the username or email.
    #[param(schema_with = fields::search)]
    pub q: Option<String>,
}

pub(super) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.chars().count() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace())
        && !domain.contains('@')
}
