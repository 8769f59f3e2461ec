//! `/api/v1/roles` (built-in and custom roles of the tenant) and
//! `/api/v1/permissions` (the catalog).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ferro_auth::Permission;
use ferro_db::TenantTx;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Guard, RolesManage, RolesRead, require_holds};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::fields;
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::user_managers::{keep_a_user_manager, lock_user_managers};
use crate::validation::{Validator, search};

/// Before a change (`changing`) of a role that carries `users:manage`: the
/// lock and answer of [`lock_user_managers`], for [`keep_a_user_manager`]
/// after the change; `None` when the change cannot take the permission away.
async fn lock_if_it_manages(
    tx: &mut TenantTx,
    role: &Role,
    changing: bool,
) -> Result<Option<bool>, ApiError> {
    let manages = role
        .permissions
        .iter()
        .any(|p| p == Permission::UsersManage.code());
    if !(manages && changing) {
        return Ok(None);
    }
    Ok(Some(lock_user_managers(tx, None).await?))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_permissions))
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Role {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `admin`, `operator` and `viewer` are built in and cannot be changed.
    pub is_builtin: bool,
    pub permissions: Vec<String>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT r.id, r.name, r.description, r.is_builtin, \
    coalesce(array_agg(rp.permission ORDER BY rp.permission) FILTER (WHERE rp.permission IS NOT NULL), '{}') AS permissions, \
    r.created_at, r.updated_at FROM roles r LEFT JOIN role_permissions rp ON rp.role_id = r.id";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "auditor", "description": "Reads the logs", "permissions": ["audit:read"]}))]
pub struct CreateRole {
    #[schema(pattern = "^[a-z][a-z0-9_-]{1,62}$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    #[schema(schema_with = grantable)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"permissions": ["audit:read", "devices:read"]}))]
pub struct UpdateRole {
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = grantable)]
    pub permissions: Option<Vec<String>>,
}

/// Permissions a role may carry: every one but `tenants:manage`, which only
/// platform administrators hold.
fn grantable() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let codes: Vec<&str> = Permission::ALL
        .iter()
        .filter(|p| **p != Permission::TenantsManage)
        .map(|p| p.code())
        .collect();
    fields::schema(json!({"type": "array", "items": fields::one_of(&codes)}))
}

fn description() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({"type": "string", "maxLength": 500}))
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct PermissionInfo {
    #[schema(example = "devices:read")]
    pub code: String,
    pub description: String,
    /// Held only by platform administrators; not grantable to roles.
    pub platform_only: bool,
}

fn check_permissions(v: &mut Validator, codes: &[String]) {
    for code in codes {
        match Permission::from_code(code) {
            None => v.check(false, "permissions", &format!("unknown permission {code}")),
            Some(Permission::TenantsManage) => v.check(
                false,
                "permissions",
                "tenants:manage is for platform administrators only",
            ),
            Some(_) => {}
        }
    }
}

fn check_role_name(v: &mut Validator, name: &str) {
    let ok = (2..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    v.check(
        ok,
        "name",
        "must be 2-63 lowercase letters, digits, _ or -, starting with a letter",
    );
}

async fn fetch_role(tx: &mut TenantTx, id: Uuid) -> Result<Role, ApiError> {
    let role: Option<Role> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.id = $1 GROUP BY r.id"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    role.ok_or(ApiError::NotFound("role"))
}

async fn set_permissions(tx: &mut TenantTx, role: Uuid, codes: &[String]) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
        .bind(role)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO role_permissions (tenant_id, role_id, permission) \
         SELECT app_current_tenant(), $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING",
    )
    .bind(role)
    .bind(codes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A page of roles, optionally searched.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoleQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// Case-insensitive substring of the name or description.
    #[param(schema_with = fields::search)]
    pub q: Option<String>,
}

/// Lists the tenant's roles with their permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", security(("bearer" = ["roles:read"])), params(RoleQuery),
    responses((status = 200, description = "A page of roles", body = Paginated<Role>)))]
async fn list_roles(
    State(state): State<AppState>,
    guard: Guard<RolesRead>,
    ApiQuery(query): ApiQuery<RoleQuery>,
) -> Result<axum::Json<Paginated<Role>>, ApiError> {
    let (paging, pattern) = search(query.page, query.size, query.q.as_deref())?;
    let filter = "WHERE ($1::text IS NULL OR r.name ILIKE $1 OR r.description ILIKE $1)";
    let mut tx = state.db.begin(guard.ctx()).await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM roles r {filter}"
    )))
    .bind(&pattern)
    .fetch_one(&mut *tx)
    .await?;
    let items: Vec<Role> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} {filter} GROUP BY r.id ORDER BY r.name, r.id {page}",
        page = ferro_db::limit_offset(paging.size, paging.offset())
    )))
    .bind(&pattern)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Creates a custom role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", security(("bearer" = ["roles:manage"])), request_body = CreateRole,
    responses((status = 201, description = "Created", body = Role, headers(("Location" = String, description = "Where the new resource is"))),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn create_role(
    State(state): State<AppState>,
    guard: Guard<RolesManage>,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<super::At<Role>, ApiError> {
    let mut v = Validator::default();
    check_role_name(&mut v, &body.name);
    v.check(
        body.description.chars().count() <= 500,
        "description",
        "at most 500 characters",
    );
    check_permissions(&mut v, &body.permissions);
    v.finish()?;
    require_holds(
        &guard,
        &body.permissions,
        "you cannot put permissions you do not hold into a role",
    )?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO roles (tenant_id, name, description) VALUES (app_current_tenant(), $1, $2) RETURNING id",
    )
    .bind(&body.name)
    .bind(&body.description)
    .fetch_one(&mut *tx)
    .await?;
    set_permissions(&mut tx, id, &body.permissions).await?;
    let role = fetch_role(&mut tx, id).await?;
    tx.commit().await?;
    Ok(super::At::created("roles", role.id, role))
}

/// One role.
#[utoipa::path(get, path = "/api/v1/roles/{id}", tag = "roles", security(("bearer" = ["roles:read"])),
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 200, description = "The role", body = Role),
        (status = 404, description = "No such role in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_role(
    State(state): State<AppState>,
    guard: Guard<RolesRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Role>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let role = fetch_role(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(role))
}

/// Changes a custom role's description or permissions; members get the new
/// permissions on their next request.
#[utoipa::path(patch, path = "/api/v1/roles/{id}", tag = "roles", security(("bearer" = ["roles:manage"])),
    params(("id" = Uuid, Path, description = "Role id")), request_body = UpdateRole,
    responses((status = 200, description = "Updated", body = Role),
        (status = 404, description = "No such role in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in role, or it would leave the tenant with no active user manager", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn update_role(
    State(state): State<AppState>,
    guard: Guard<RolesManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> Result<axum::Json<Role>, ApiError> {
    let mut v = Validator::default();
    if let Some(d) = &body.description {
        v.check(
            d.chars().count() <= 500,
            "description",
            "at most 500 characters",
        );
    }
    if let Some(p) = &body.permissions {
        check_permissions(&mut v, p);
    }
    v.finish()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let role = fetch_role(&mut tx, id).await?;
    if role.is_builtin {
        return Err(ApiError::Conflict {
            detail: "built-in roles cannot be changed".to_owned(),
            field: None,
        });
    }
    // Changing a role takes power over everyone holding it, and may add to it.
    require_holds(
        &guard,
        &role.permissions,
        "you cannot change a role with permissions you do not hold",
    )?;
    if let Some(p) = &body.permissions {
        require_holds(
            &guard,
            p,
            "you cannot put permissions you do not hold into a role",
        )?;
    }
    // Taking users:manage out of a role may leave the tenant without anyone
    // who can manage its users.
    let managers = lock_if_it_manages(&mut tx, &role, body.permissions.is_some()).await?;
    if body.description.is_some() || body.permissions.is_some() {
        // A change of permissions alone is a change of the role too.
        sqlx::query(
            "UPDATE roles SET description = coalesce($2, description), updated_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(&body.description)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(p) = &body.permissions {
        set_permissions(&mut tx, id, p).await?;
    }
    if let Some(had) = managers {
        keep_a_user_manager(&mut tx, had).await?;
    }
    let role = fetch_role(&mut tx, id).await?;
    tx.commit().await?;
    state.sessions.bump_authz_epoch(guard.tenant_id).await?;
    Ok(axum::Json(role))
}

/// Deletes a custom role; its members lose its permissions at once.
#[utoipa::path(delete, path = "/api/v1/roles/{id}", tag = "roles", security(("bearer" = ["roles:manage"])),
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such role in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in role, or it would leave the tenant with no active user manager", body = Problem, content_type = "application/problem+json")))]
async fn delete_role(
    State(state): State<AppState>,
    guard: Guard<RolesManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let role = fetch_role(&mut tx, id).await?;
    if role.is_builtin {
        return Err(ApiError::Conflict {
            detail: "built-in roles cannot be deleted".to_owned(),
            field: None,
        });
    }
    require_holds(
        &guard,
        &role.permissions,
        "you cannot delete a role with permissions you do not hold",
    )?;
    let managers = lock_if_it_manages(&mut tx, &role, true).await?;
    sqlx::query("DELETE FROM roles WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if let Some(had) = managers {
        keep_a_user_manager(&mut tx, had).await?;
    }
    tx.commit().await?;
    state.sessions.bump_authz_epoch(guard.tenant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The permission catalog.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "roles", security(("bearer" = ["roles:read"])), params(PageParams),
    responses((status = 200, description = "A page of the catalog", body = Paginated<PermissionInfo>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_permissions(
    State(state): State<AppState>,
    guard: Guard<RolesRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<PermissionInfo>>, ApiError> {
    let paging = page.paging()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM permissions")
        .fetch_one(&mut *tx)
        .await?;
    let items: Vec<PermissionInfo> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT code, description, platform_only FROM permissions ORDER BY code {}",
        ferro_db::limit_offset(paging.size, paging.offset())
    )))
    .fetch_all(&mut *tx)
    .await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}
