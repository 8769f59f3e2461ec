//! `GET /api/v1/jobs`: the tenant's jobs by status, queue, kind, device,
//! schedule, workflow, text and time, in a chosen order, a page at a time
//! (by number, or after a cursor for lists of any length); and the filter
//! the bulk actions take, checked the same way.

use chrono::{DateTime, Utc};
use ferro_tasks::jobs::{self, Cursor, Job, JobFilter, JobSort, PageAt};
use ferro_tasks::{JobKind, JobStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Guard, JobsRead};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::openapi::fields;
use crate::pagination::PageParams;
use crate::state::AppState;
use crate::validation::Validator;
use axum::extract::State;

const STATUS_MESSAGE: &str =
    "must be waiting, scheduled, queued, running, retrying, succeeded, failed or cancelled";

fn statuses_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    fields::schema(serde_json::json!({
        "type": "array", "items": {"type": "string", "enum": statuses},
    }))
}

fn sort_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let sorts: Vec<&str> = JobSort::ALL.iter().map(|s| s.as_str()).collect();
    fields::schema(serde_json::json!({"type": "string", "enum": sorts, "default": "-created_at"}))
}

fn time_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(serde_json::json!({"type": "string", "format": "date-time"}))
}

fn queue_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(serde_json::json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$"}))
}

fn cursor_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    fields::schema(serde_json::json!({"type": "string", "pattern": "^[0-9a-f]{2,256}$"}))
}

/// The filters, in the query or in a bulk action's body. A field left out
/// does not filter; in a body, null is refused (422 naming it) rather than
/// read as "no filter", so that a body that looks like it filters does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterInput {
    #[serde(default, deserialize_with = "present")]
    pub status: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub queue: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub device_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub schedule_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub workflow_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub q: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub created_after: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub created_before: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub finished_after: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub finished_before: Option<String>,
}

fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::Error as _;
    Option::<T>::deserialize(d)?.map(Some).ok_or_else(|| {
        D::Error::custom("must not be null (leave the field out not to filter by it)")
    })
}

/// Written by hand: at least one filter (an empty one would take every
/// job), none other allowed.
impl utoipa::PartialSchema for FilterInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        let uuid = serde_json::json!({"type": "string", "format": "uuid"});
        let time = serde_json::json!({"type": "string", "format": "date-time"});
        fields::schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "description": "Which jobs, as the list's filters; at least one.",
            "properties": {
                "status": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": statuses},
                           "description": "Any of these statuses."},
                "queue": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$",
                          "description": "A configured queue."},
                "kind": {"type": "string", "enum": kinds},
                "device_id": uuid, "schedule_id": uuid, "workflow_id": uuid,
                "q": {"type": "string", "minLength": 1, "maxLength": 200,
                      "pattern": "^[^\\u0000]*$",
                      "description": "Text in the parameters or in an attempt's error."},
                "created_after": time, "created_before": time,
                "finished_after": time, "finished_before": time,
            },
        }))
    }
}

impl utoipa::ToSchema for FilterInput {}

fn time(v: &mut Validator, field: &str, text: Option<&str>) -> Option<DateTime<Utc>> {
    let text = text?;
    let parsed = DateTime::parse_from_rfc3339(text).ok();
    v.check(parsed.is_some(), field, "must be an RFC 3339 time");
    parsed.map(|t| t.with_timezone(&Utc))
}

impl FilterInput {
    /// The filter, with each bad field named in `v`. `prefix` goes before
    /// the field names (`filter.` in a body).
    pub fn check(&self, v: &mut Validator, prefix: &str, state: &AppState) -> JobFilter {
        let field = |name: &str| format!("{prefix}{name}");
        let mut statuses = Vec::new();
        v.check(
            self.status.as_ref().is_none_or(|s| !s.is_empty()),
            &field("status"),
            "at least one status",
        );
        for text in self.status.iter().flatten() {
            match text.parse::<JobStatus>() {
                Ok(status) if !statuses.contains(&status) => statuses.push(status),
                Ok(_) => {}
                Err(_) => v.check(false, &field("status"), STATUS_MESSAGE),
            }
        }
        if let Some(queue) = &self.queue {
            v.check(
                state.config.queues.contains(queue),
                &field("queue"),
                "not a configured queue",
            );
        }
        if let Some(kind) = &self.kind {
            v.check(
                JobKind::parse(kind).is_some(),
                &field("kind"),
                "unknown job kind",
            );
        }
        if let Some(q) = &self.q {
            v.check(
                (1..=200).contains(&q.chars().count()) && !q.contains('\0'),
                &field("q"),
                "1 to 200 characters, no NUL",
            );
        }
        JobFilter {
            statuses,
            queue: self.queue.clone(),
            kind: self.kind.clone(),
            device_id: self.device_id,
            schedule_id: self.schedule_id,
            workflow_id: self.workflow_id,
            q: self.q.clone(),
            created_after: time(v, &field("created_after"), self.created_after.as_deref()),
            created_before: time(v, &field("created_before"), self.created_before.as_deref()),
            finished_after: time(v, &field("finished_after"), self.finished_after.as_deref()),
            finished_before: time(
                v,
                &field("finished_before"),
                self.finished_before.as_deref(),
            ),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Page number, from 1 (default 1) to 1,000,000; not with `cursor`.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// The `next_cursor` of the page before, for the same `sort`: the page
    /// after it, however deep (instead of `page`).
    #[param(schema_with = cursor_schema)]
    pub cursor: Option<String>,
    /// `-created_at` (default), `created_at`, `-started_at`, `started_at`,
    /// `-finished_at` or `finished_at`; `-` is newest first. Jobs not
    /// started or not finished come last newest first.
    #[param(schema_with = sort_schema)]
    pub sort: Option<String>,
    /// Any of these statuses: repeat the parameter, or separate them with
    /// commas.
    #[param(schema_with = statuses_schema, style = Form, explode)]
    pub status: Option<String>,
    /// A configured queue.
    #[param(schema_with = queue_schema)]
    pub queue: Option<String>,
    #[param(schema_with = fields::job_kind)]
    pub kind: Option<String>,
    pub device_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    /// Text in the parameters or in an attempt's error (case-insensitive,
    /// `%` and `_` literal).
    #[param(schema_with = fields::search)]
    pub q: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(schema_with = time_schema)]
    pub created_after: Option<String>,
    /// Created before.
    #[param(schema_with = time_schema)]
    pub created_before: Option<String>,
    /// Finished at or after.
    #[param(schema_with = time_schema)]
    pub finished_after: Option<String>,
    /// Finished before.
    #[param(schema_with = time_schema)]
    pub finished_before: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<Job>,
    /// How many jobs match, counted up to 10,000: beyond that it says
    /// 10,000 and `total_capped` is true.
    pub total: i64,
    pub total_capped: bool,
    /// The page number (1 when paging by cursor).
    pub page: i64,
    pub size: i64,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Lists the tenant's jobs, newest first unless `sort` says otherwise.
/// Filters combine; `status` may be repeated. Page by `page`, or through
/// any number of jobs by `cursor`.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = ["jobs:read"])), params(JobQuery),
    responses((status = 200, description = "A page of jobs", body = JobList),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn list_jobs(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> Result<axum::Json<JobList>, ApiError> {
    let mut v = Validator::default();
    let paging = PageParams {
        page: q.page,
        size: q.size,
    }
    .validate(&mut v.0);
    let input = FilterInput {
        status: q
            .status
            .as_deref()
            .map(|s| s.split(',').map(str::to_owned).collect()),
        queue: q.queue,
        kind: q.kind,
        device_id: q.device_id,
        schedule_id: q.schedule_id,
        workflow_id: q.workflow_id,
        q: q.q,
        created_after: q.created_after,
        created_before: q.created_before,
        finished_after: q.finished_after,
        finished_before: q.finished_before,
    };
    let filter = input.check(&mut v, "", &state);
    let sort = match q.sort.as_deref() {
        None => JobSort::default(),
        Some(text) => JobSort::parse(text).unwrap_or_else(|| {
            v.check(false, "sort", "must be -created_at, created_at, -started_at, started_at, -finished_at or finished_at");
            JobSort::default()
        }),
    };
    let at = match &q.cursor {
        None => PageAt::Offset(paging.offset()),
        Some(text) => {
            v.check(q.page.is_none(), "page", "not with cursor");
            match Cursor::decode(text, sort) {
                Some(cursor) => PageAt::After(cursor),
                None => {
                    v.check(false, "cursor", "not a next_cursor of this sort");
                    PageAt::Offset(0)
                }
            }
        }
    };
    v.finish()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let page = jobs::list(&mut tx, &filter, sort, &at, paging.size).await?;
    tx.end_read_only();
    Ok(axum::Json(JobList {
        items: page.items,
        total: page.total,
        total_capped: page.total_capped,
        page: paging.page,
        size: paging.size,
        next_cursor: page.next_cursor,
    }))
}
