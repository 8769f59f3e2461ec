//! `/api/v1/tenants`: platform administration, through the platform_*
//! SECURITY DEFINER functions (which re-check the caller in the database).

use axum::extract::State;
use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Guard, TenantsManage};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::fields;
use crate::pagination::Paginated;
use crate::state::AppState;
use crate::validation::{Validator, search};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant))
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub is_active: bool,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slug": "acme", "name": "Acme Corp"}))]
pub struct CreateTenant {
    /// Lower-case letters, digits and `-`, neither first nor last; 1 to 63.
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: String,
    #[schema(schema_with = fields::display_name)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Corporation"}))]
pub struct UpdateTenant {
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::display_name)]
    pub name: Option<String>,
    /// Deactivated tenants cannot be logged into.
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::boolean)]
    pub is_active: Option<bool>,
}

/// A page of tenants, optionally searched.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// Case-insensitive substring of the slug or name.
    #[param(schema_with = fields::search)]
    pub q: Option<String>,
}

fn valid_slug(slug: &str) -> bool {
    let b = slug.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Lists every tenant.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = ["tenants:manage"])), params(TenantQuery),
    responses((status = 200, description = "A page of tenants", body = Paginated<Tenant>)))]
async fn list_tenants(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<axum::Json<Paginated<Tenant>>, ApiError> {
    let (paging, pattern) = search(query.page, query.size, query.q.as_deref())?;
    let filter = "WHERE ($1::text IS NULL OR slug ILIKE $1 OR name ILIKE $1)";
    let mut tx = state.db.begin(guard.ctx()).await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM platform_list_tenants() {filter}"
    )))
    .bind(&pattern)
    .fetch_one(&mut *tx)
    .await?;
    let items: Vec<Tenant> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM platform_list_tenants() {filter} ORDER BY slug {}",
        ferro_db::limit_offset(paging.size, paging.offset())
    )))
    .bind(&pattern)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Creates a tenant with the built-in roles `admin`, `operator` and `viewer`.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = ["tenants:manage"])), request_body = CreateTenant,
    responses((status = 201, description = "Created", body = Tenant, headers(("Location" = String, description = "Where the new resource is"))),
        (status = 409, description = "Slug taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn create_tenant(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<super::At<Tenant>, ApiError> {
    let mut v = Validator::default();
    v.check(
        valid_slug(&body.slug),
        "slug",
        "must be 1-63 lowercase letters, digits or dashes, not starting or ending with a dash",
    );
    v.display_name("name", &body.name);
    v.finish()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let tenant: Tenant = sqlx::query_as("SELECT * FROM platform_create_tenant($1, $2)")
        .bind(&body.slug)
        .bind(body.name.trim())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(super::At::created("tenants", tenant.id, tenant))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants", security(("bearer" = ["tenants:manage"])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = Tenant),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_tenant(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Tenant>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let tenant: Option<Tenant> =
        sqlx::query_as("SELECT * FROM platform_list_tenants() WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    tenant.map(axum::Json).ok_or(ApiError::NotFound("tenant"))
}

/// Renames or (de)activates a tenant.
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "tenants", security(("bearer" = ["tenants:manage"])),
    params(("id" = Uuid, Path, description = "Tenant id")), request_body = UpdateTenant,
    responses((status = 200, description = "Updated", body = Tenant),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn update_tenant(
    State(state): State<AppState>,
    guard: Guard<TenantsManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<axum::Json<Tenant>, ApiError> {
    let mut v = Validator::default();
    if let Some(name) = &body.name {
        v.display_name("name", name);
    }
    v.check(
        !(body.is_active == Some(false) && id == guard.tenant_id),
        "is_active",
        "you cannot deactivate the tenant you are in",
    );
    v.finish()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let tenant: Option<Tenant> = sqlx::query_as("SELECT * FROM platform_update_tenant($1, $2, $3)")
        .bind(id)
        .bind(body.name.as_deref().map(str::trim))
        .bind(body.is_active)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    if body.is_active.is_some() {
        // Every session in the tenant resolves its access again on its next
        // request; in a deactivated tenant that ends it.
        state.sessions.bump_authz_epoch(id).await?;
    }
    tenant.map(axum::Json).ok_or(ApiError::NotFound("tenant"))
}
