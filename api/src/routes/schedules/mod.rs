//! `/api/v1/schedules`: the tenant's cron schedules and their runs. The
//! scheduler reads them within a second of any change; built-in schedules
//! from the scheduler's configuration file (`source: config`) are shown but
//! changed only in that file.

use axum::extract::State;
use axum::http::StatusCode;
use ferro_tasks::cron::{CronSpec, MisfirePolicy};
use ferro_tasks::schedules::{self, Schedule, ScheduleSpec};
use ferro_tasks::submission;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Guard, Principal, SchedulesManage, SchedulesRead};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::openapi::fields;
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::validation::Validator;

mod runs;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
        .routes(routes!(enable_schedule))
        .routes(routes!(disable_schedule))
        .merge(runs::router())
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

fn default_params() -> Value {
    Value::Object(Default::default())
}

fn default_true() -> bool {
    true
}

fn default_policy() -> String {
    "fire_once".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    pub name: String,
    /// 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone, default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    pub kind: String,
    pub device_id: Option<Uuid>,
    #[serde(default = "default_params")]
    pub params: Value,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `fire_once` (default) or `skip`.
    #[serde(default = "default_policy")]
    pub misfire_policy: String,
}

/// Written by hand: one branch per job kind, each with that kind's
/// parameters and whether it takes a device.
impl utoipa::PartialSchema for CreateSchedule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let properties = json!({
            "name": fields::display_name(),
            "cron": cron(),
            "timezone": timezone(),
            "enabled": {"type": "boolean", "default": true},
            "misfire_policy": misfire_policy(),
        });
        fields::schema(json!({
            "oneOf": fields::job_branches(&properties, &["name", "cron"]),
            "example": {"name": "core uptime", "cron": "*/5 * * * *", "timezone": "UTC",
                        "kind": "snmp.get", "device_id": "0b5c3c2e-8a7c-4c59-9d0e-2f1d7d7c4a10",
                        "params": {"oids": ["1.3.6.1.2.1.1.3.0"]}},
        }))
    }
}

impl utoipa::ToSchema for CreateSchedule {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("TimeZone".into(), TimeZone::schema()));
    }
}

/// A cron expression ([`CronSpec::parse`]).
fn cron() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({
        "type": "string",
        "pattern": ferro_tasks::cron::CRON_PATTERN,
        "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with \
                        seconds first, in croner's syntax (`*`, lists, ranges, `*/n`, names, \
                        `L`, `W`, `#`, `?`); at most 200 characters; it must match some date",
        "example": "*/5 * * * *",
    }))
}

/// An IANA time zone, as chrono-tz names it (one component, for the
/// schedules' bodies to refer to).
pub struct TimeZone;

impl utoipa::PartialSchema for TimeZone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let mut zone = fields::one_of(&ferro_tasks::cron::timezone_names());
        zone["description"] = json!("An IANA time zone, exactly as written in its database");
        fields::schema(zone)
    }
}

impl utoipa::ToSchema for TimeZone {}

/// A reference to [`TimeZone`]; default `UTC`.
fn timezone() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(json!({"$ref": "#/components/schemas/TimeZone", "default": "UTC"}))
}

fn misfire_policy() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let mut policy = fields::one_of(&["fire_once", "skip"]);
    policy["default"] = json!("fire_once");
    fields::schema(policy)
}

/// The parameters of any job kind (which ones apply depends on the kind the
/// schedule ends up with).
fn any_params() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let all: Vec<Value> = ferro_tasks::JobKind::ALL
        .iter()
        .map(|k| k.params_schema())
        .collect();
    fields::schema(json!({"anyOf": all}))
}

/// Fields to change; the others keep their values. `device_id: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cron": "0 3 * * *", "timezone": "Europe/Paris"}))]
pub struct UpdateSchedule {
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::display_name)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = cron)]
    pub cron: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = timezone)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::job_kind)]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::patch::nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub device_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = any_params)]
    pub params: Option<Value>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = fields::boolean)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::validation::patch::required")]
    #[schema(schema_with = misfire_policy)]
    pub misfire_policy: Option<String>,
}

/// Checks everything about a schedule and builds its spec; errors name fields.
async fn check(
    caller: &Principal,
    tx: &mut ferro_db::TenantTx,
    body: CreateSchedule,
) -> Result<ScheduleSpec, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut v = Validator::default();
    v.display_name("name", &body.name);
    if let Err(ApiError::Validation(mut more)) = v.finish() {
        errors.append(&mut more);
    }
    if let Err(spec_errors) = CronSpec::parse(&body.cron, &body.timezone) {
        errors.extend(
            spec_errors
                .into_iter()
                .map(|(field, message)| FieldError::new(field, message)),
        );
    }
    let policy = MisfirePolicy::parse(&body.misfire_policy);
    if policy.is_none() {
        errors.push(FieldError::new(
            "misfire_policy",
            "must be fire_once or skip",
        ));
    }
    let job = match submission::parse_kind(&body.kind) {
        Ok(kind) => {
            caller.may_handle_kind(kind.as_str())?;
            match submission::check_params(kind, &body.params, body.device_id) {
                Ok(params) => Some((kind, params)),
                Err(more) => {
                    errors.extend(more.into_iter().map(FieldError::from));
                    None
                }
            }
        }
        Err(unknown) => {
            errors.push(unknown.into());
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    submission::check_device(tx, body.device_id).await??;
    let (kind, params) = job.expect("checked above");
    Ok(ScheduleSpec {
        name: body.name.trim().to_owned(),
        cron: body.cron.trim().to_owned(),
        timezone: body.timezone,
        kind,
        device_id: body.device_id,
        params,
        enabled: body.enabled,
        misfire_policy: policy.expect("checked above"),
    })
}

/// The schedule, locked for this change, if this caller may change it: one made through the api
/// (built-in schedules live in the scheduler's file), of a kind the caller
/// may handle (a tenant user may not take over, retarget or remove a
/// platform-only schedule).
async fn editable(
    caller: &Principal,
    tx: &mut ferro_db::TenantTx,
    id: Uuid,
) -> Result<Schedule, ApiError> {
    let current = schedules::get_for_update(tx, id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    if current.source != "api" {
        return Err(built_in());
    }
    caller.may_handle_kind(&current.kind)?;
    Ok(current)
}

fn built_in() -> ApiError {
    ApiError::Conflict {
        detail:
            "this is a built-in schedule from the scheduler's configuration file; change it there"
                .to_owned(),
        field: None,
    }
}

/// Lists the tenant's schedules, oldest first.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", security(("bearer" = ["schedules:read"])), params(PageParams),
    responses((status = 200, description = "A page of schedules", body = Paginated<Schedule>)))]
async fn list_schedules(
    State(state): State<AppState>,
    guard: Guard<SchedulesRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<Schedule>>, ApiError> {
    let paging = page.paging()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let (items, total) = schedules::list(&mut tx, paging.size, paging.offset()).await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Creates a schedule; it fires from its next slot on.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", security(("bearer" = ["schedules:manage"])),
    request_body = CreateSchedule,
    responses((status = 201, description = "Created, with next_run_at", body = Schedule, headers(("Location" = String, description = "Where the new resource is"))),
        (status = 403, description = "Missing schedules:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A schedule with this name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad cron, time zone, kind, params or device; errors name the field", body = Problem, content_type = "application/problem+json")))]
async fn create_schedule(
    State(state): State<AppState>,
    guard: Guard<SchedulesManage>,
    ApiJson(body): ApiJson<CreateSchedule>,
) -> Result<super::At<Schedule>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let spec = check(&guard, &mut tx, body).await?;
    let schedule = schedules::create(&mut tx, &spec, "api").await?;
    tx.commit().await?;
    tracing::info!(schedule_id = %schedule.id, cron = %schedule.cron, kind = %schedule.kind, "schedule created");
    Ok(super::At::created("schedules", schedule.id, schedule))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", security(("bearer" = ["schedules:read"])),
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, description = "The schedule", body = Schedule),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_schedule(
    State(state): State<AppState>,
    guard: Guard<SchedulesRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Schedule>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let schedule = schedules::get(&mut tx, id).await?;
    tx.end_read_only();
    schedule
        .map(axum::Json)
        .ok_or(ApiError::NotFound("schedule"))
}

/// Changes a schedule; `next_run_at` is recomputed from now.
#[utoipa::path(patch, path = "/api/v1/schedules/{id}", tag = "schedules", security(("bearer" = ["schedules:manage"])),
    params(("id" = Uuid, Path, description = "Schedule id")), request_body = UpdateSchedule,
    responses((status = 200, description = "The schedule", body = Schedule),
        (status = 403, description = "Missing schedules:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken, or a built-in schedule", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad fields; errors name them", body = Problem, content_type = "application/problem+json")))]
async fn update_schedule(
    State(state): State<AppState>,
    guard: Guard<SchedulesManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateSchedule>,
) -> Result<axum::Json<Schedule>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let current = editable(&guard, &mut tx, id).await?;
    let merged = CreateSchedule {
        name: body.name.unwrap_or(current.name),
        cron: body.cron.unwrap_or(current.cron),
        timezone: body.timezone.unwrap_or(current.timezone),
        kind: body.kind.unwrap_or(current.kind),
        device_id: body.device_id.unwrap_or(current.device_id),
        params: body.params.unwrap_or(current.params),
        enabled: body.enabled.unwrap_or(current.enabled),
        misfire_policy: body.misfire_policy.unwrap_or(current.misfire_policy),
    };
    let spec = check(&guard, &mut tx, merged).await?;
    let schedule = schedules::update(&mut tx, id, &spec)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    tx.commit().await?;
    Ok(axum::Json(schedule))
}

async fn set_enabled(
    state: &AppState,
    guard: &Guard<SchedulesManage>,
    id: Uuid,
    enabled: bool,
) -> Result<axum::Json<Schedule>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let current = editable(guard, &mut tx, id).await?;
    let spec = ScheduleSpec {
        name: current.name,
        cron: current.cron,
        timezone: current.timezone,
        kind: ferro_tasks::JobKind::parse(&current.kind)
            .ok_or_else(|| ApiError::field("kind", "this kind no longer exists"))?,
        device_id: current.device_id,
        params: current.params,
        enabled,
        misfire_policy: MisfirePolicy::parse(&current.misfire_policy)
            .unwrap_or(MisfirePolicy::FireOnce),
    };
    let schedule = schedules::update(&mut tx, id, &spec)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    tx.commit().await?;
    Ok(axum::Json(schedule))
}

/// Enables a schedule: it fires from its next slot after now (missed slots
/// while disabled do not fire).
#[utoipa::path(post, path = "/api/v1/schedules/{id}/enable", tag = "schedules", security(("bearer" = ["schedules:manage"])),
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, description = "The schedule", body = Schedule),
        (status = 403, description = "Missing schedules:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in schedule", body = Problem, content_type = "application/problem+json")))]
async fn enable_schedule(
    State(state): State<AppState>,
    guard: Guard<SchedulesManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Schedule>, ApiError> {
    set_enabled(&state, &guard, id, true).await
}

/// Disables a schedule: it stops firing (`next_run_at` becomes null).
#[utoipa::path(post, path = "/api/v1/schedules/{id}/disable", tag = "schedules", security(("bearer" = ["schedules:manage"])),
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, description = "The schedule", body = Schedule),
        (status = 403, description = "Missing schedules:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in schedule", body = Problem, content_type = "application/problem+json")))]
async fn disable_schedule(
    State(state): State<AppState>,
    guard: Guard<SchedulesManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Schedule>, ApiError> {
    set_enabled(&state, &guard, id, false).await
}

/// Deletes a schedule; the jobs it made stay.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", security(("bearer" = ["schedules:manage"])),
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Missing schedules:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in schedule", body = Problem, content_type = "application/problem+json")))]
async fn delete_schedule(
    State(state): State<AppState>,
    guard: Guard<SchedulesManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    editable(&guard, &mut tx, id).await?;
    schedules::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
