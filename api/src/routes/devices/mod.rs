//! `/api/v1/devices`: the tenant's devices. SNMP settings are write-only.

use axum::extract::State;
use axum::http::StatusCode;
use ferro_db::DbError;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

mod types;

pub use types::*;

use crate::auth::{DevicesRead, DevicesWrite, Guard};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::validation::{Validator, like_pattern};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, create_device))
        .routes(routes!(get_device, update_device, delete_device))
}

/// Lists devices, filtered and sorted, a page at a time.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = ["devices:read"])), params(DeviceQuery),
    responses((status = 200, description = "A page of devices", body = Paginated<Device>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_devices(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiQuery(query): ApiQuery<DeviceQuery>,
) -> Result<axum::Json<Paginated<Device>>, ApiError> {
    let mut v = Validator::default();
    let paging = PageParams {
        page: query.page,
        size: query.size,
    }
    .validate(&mut v.0);
    let order = match query.sort.as_deref() {
        None | Some("created_at") => "created_at, id",
        Some("-created_at") => "created_at DESC, id DESC",
        Some("name") => "name, id",
        Some("-name") => "name DESC, id DESC",
        Some(_) => {
            v.check(
                false,
                "sort",
                "must be created_at, -created_at, name or -name",
            );
            ""
        }
    };
    v.check(
        query.q.as_ref().is_none_or(|q| q.chars().count() <= 200),
        "q",
        "at most 200 characters",
    );
    v.finish()?;

    // Only the filters given go into the SQL (static fragments, bound values),
    // so the common unfiltered list is the plainest query for the planner.
    let pattern = query.q.as_deref().map(like_pattern);
    let protocol = query.protocol.map(Protocol::as_str);
    let mut clauses: Vec<&str> = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    if let Some(p) = pattern {
        clauses.push("(name ILIKE $1 OR host ILIKE $1)");
        binds.push(p);
    }
    if let Some(p) = protocol {
        clauses.push(["protocol = $1", "protocol = $2"][binds.len()]);
        binds.push(p.to_owned());
    }
    if let Some(t) = &query.tag {
        clauses.push(
            [
                "tags @> ARRAY[$1::text]",
                "tags @> ARRAY[$2::text]",
                "tags @> ARRAY[$3::text]",
            ][binds.len()],
        );
        binds.push(t.clone());
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    // One statement: the page, each row carrying the total from a scalar
    // subquery (evaluated once). Only an empty page needs a separate count.
    let page_sql = format!(
        "SELECT (SELECT count(*) FROM devices{filter}) AS total, {COLUMNS} FROM devices{filter} \
         ORDER BY {order} {page}",
        page = ferro_db::limit_offset(paging.size, paging.offset())
    );
    let mut tx = state.db.begin(guard.ctx()).await?;
    let mut page = sqlx::query_as::<_, CountedDevice>(sqlx::AssertSqlSafe(page_sql));
    for value in &binds {
        page = page.bind(value);
    }
    let rows = page.fetch_all(&mut *tx).await?;
    let total = match rows.first() {
        Some(row) => row.total,
        None => {
            let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM devices{filter}"
            )));
            for value in &binds {
                count = count.bind(value);
            }
            count.fetch_one(&mut *tx).await?
        }
    };
    tx.end_read_only();
    let items = rows.into_iter().map(|r| r.device).collect();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Registers a device.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", security(("bearer" = ["devices:write"])), request_body = CreateDevice,
    responses((status = 201, description = "Created", body = Device, headers(("Location" = String, description = "Where the new resource is"))),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn create_device(
    State(state): State<AppState>,
    guard: Guard<DevicesWrite>,
    ApiJson(body): ApiJson<CreateDevice>,
) -> Result<super::At<Device>, ApiError> {
    let mut v = Validator::default();
    v.display_name("name", &body.name);
    v.check(
        valid_host(&body.host),
        "host",
        "must be a host name or IP address",
    );
    let port = body.port.unwrap_or(match body.protocol {
        Protocol::Snmp => 161,
        Protocol::Http => 80,
    });
    v.check(
        (1..=65535).contains(&port),
        "port",
        "must be between 1 and 65535",
    );
    check_tags(&mut v, &body.tags);
    match (&body.snmp, body.protocol) {
        (None, Protocol::Snmp) => v.check(false, "snmp", "is required for snmp devices"),
        (Some(_), Protocol::Http) => v.check(false, "snmp", "is only for snmp devices"),
        (Some(snmp), Protocol::Snmp) => check_snmp(&mut v, snmp),
        (None, Protocol::Http) => {}
    }
    v.finish()?;

    let mut tx = state.db.begin(guard.ctx()).await?;
    let device: Device = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO devices (tenant_id, name, protocol, host, port, tags, snmp_version, snmp_community) \
         VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(body.name.trim())
    .bind(body.protocol.as_str())
    .bind(&body.host)
    .bind(port)
    .bind(&body.tags)
    .bind(body.snmp.as_ref().map(|s| match s.version {
        SnmpVersion::V1 => "v1",
        SnmpVersion::V2c => "v2c",
    }))
    .bind(body.snmp.as_ref().map(|s| s.community.as_str()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(super::At::created("devices", device.id, device))
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = ["devices:read"])),
    params(("id" = Uuid, Path, description = "Device id")),
    responses((status = 200, description = "The device", body = Device),
        (status = 404, description = "No such device in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_device(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Device>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let device: Option<Device> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM devices WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    device.map(axum::Json).ok_or(ApiError::NotFound("device"))
}

/// Changes some fields of a device. Moving an SNMP device to another host
/// or port needs its `snmp` settings again: the community is sent to the
/// new address, so whoever moves the device must know it.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = ["devices:write"])),
    params(("id" = Uuid, Path, description = "Device id")), request_body = UpdateDevice,
    responses((status = 200, description = "Updated", body = Device),
        (status = 404, description = "No such device in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
async fn update_device(
    State(state): State<AppState>,
    guard: Guard<DevicesWrite>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateDevice>,
) -> Result<axum::Json<Device>, ApiError> {
    let mut v = Validator::default();
    if let Some(name) = &body.name {
        v.display_name("name", name);
    }
    if let Some(host) = &body.host {
        v.check(
            valid_host(host),
            "host",
            "must be a host name or IP address",
        );
    }
    if let Some(port) = body.port {
        v.check(
            (1..=65535).contains(&port),
            "port",
            "must be between 1 and 65535",
        );
    }
    if let Some(tags) = &body.tags {
        check_tags(&mut v, tags);
    }
    if let Some(snmp) = &body.snmp {
        check_snmp(&mut v, snmp);
    }
    v.finish()?;

    let mut tx = state.db.begin(guard.ctx()).await?;
    let current: Option<(String, String, i32)> =
        sqlx::query_as("SELECT protocol, host, port FROM devices WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (protocol, host, port) = current.ok_or(ApiError::NotFound("device"))?;
    if body.snmp.is_some() && protocol != "snmp" {
        return Err(ApiError::field("snmp", "is only for snmp devices"));
    }
    let moved =
        body.host.as_ref().is_some_and(|h| *h != host) || body.port.is_some_and(|p| p != port);
    if protocol == "snmp" && moved && body.snmp.is_none() {
        return Err(ApiError::field(
            "snmp",
            "is required when the host or port changes: the community is sent to the new address",
        ));
    }
    let device: Device = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE devices SET name = coalesce($2, name), host = coalesce($3, host), port = coalesce($4, port), \
         tags = coalesce($5, tags), snmp_version = coalesce($6, snmp_version), \
         snmp_community = coalesce($7, snmp_community) WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(body.name.as_deref().map(str::trim))
    .bind(&body.host)
    .bind(body.port)
    .bind(&body.tags)
    .bind(body.snmp.as_ref().map(|s| match s.version {
        SnmpVersion::V1 => "v1",
        SnmpVersion::V2c => "v2c",
    }))
    .bind(body.snmp.as_ref().map(|s| s.community.as_str()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(device))
}

fn used_by_schedules(count: i64) -> ApiError {
    ApiError::Conflict {
        detail: format!(
            "the device is used by {count} schedule(s); delete them or point them at another device first"
        ),
        field: None,
    }
}

/// Removes a device. Its past jobs stay, without the device reference; a
/// device that a schedule names is not removed (409).
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = ["devices:write"])),
    params(("id" = Uuid, Path, description = "Device id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such device in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A schedule names the device", body = Problem, content_type = "application/problem+json")))]
async fn delete_device(
    State(state): State<AppState>,
    guard: Guard<DevicesWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let schedules: i64 = sqlx::query_scalar("SELECT count(*) FROM schedules WHERE device_id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if schedules > 0 {
        return Err(used_by_schedules(schedules));
    }
    let deleted = match sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
    {
        Ok(done) => done.rows_affected(),
        // A schedule naming the device was saved in the meantime.
        Err(err) => match DbError::from(err) {
            DbError::ForeignKeyViolation { constraint }
                if constraint == "schedules_device_fkey" =>
            {
                return Err(used_by_schedules(1));
            }
            other => return Err(other.into()),
        },
    };
    tx.commit().await?;
    if deleted == 0 {
        return Err(ApiError::NotFound("device"));
    }
    Ok(StatusCode::NO_CONTENT)
}
