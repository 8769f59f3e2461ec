//! `/api/v1/jobs`: submit, list, inspect and cancel jobs. Kinds, parameters
//! and devices are checked here, so the worker never gets a job it cannot run.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferro_tasks::events::{self, JobEvent};
use ferro_tasks::jobs::{self, CancelOutcome, Enqueued, Job, JobResult, NewJob};
use ferro_tasks::{JobStatus, TraceContext, submission};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

mod event_streams;
mod operations;
mod search;
mod stats;

use crate::after_request::AuditCaller;
use crate::auth::{Guard, JobsRead, JobsRun};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::observe::RequestId;
use crate::openapi::fields;
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::submissions::Submission;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search::list_jobs, create_job))
        .routes(routes!(get_job))
        .routes(routes!(job_results))
        .routes(routes!(job_download))
        .routes(routes!(cancel_job))
        .merge(event_streams::router())
        .merge(operations::router())
        .merge(stats::router())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// One of the job kinds.
    pub kind: String,
    /// Required for `snmp.get` and `snmp.walk`: an SNMP device of this tenant.
    pub device_id: Option<Uuid>,
    #[serde(default = "empty_object")]
    pub params: Value,
    /// A configured queue (`deploy/queues.json`); default: the kind's route.
    pub queue: Option<String>,
    /// 0 to 9, higher first within the queue; default 0.
    pub priority: Option<i64>,
    /// RFC 3339: the job is `scheduled` until then.
    pub run_at: Option<String>,
    /// Seconds from now; instead of `run_at`.
    pub countdown: Option<f64>,
    /// RFC 3339: not started by then, the job ends `cancelled`.
    pub expires_at: Option<String>,
    pub max_attempts: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub unique: Option<submission::UniqueInput>,
}

impl CreateJob {
    pub(crate) fn options(&self) -> submission::OptionsInput {
        submission::OptionsInput {
            queue: self.queue.clone(),
            priority: self.priority,
            run_at: self.run_at.clone(),
            countdown: self.countdown,
            expires_at: self.expires_at.clone(),
            max_attempts: self.max_attempts,
            timeout_seconds: self.timeout_seconds,
            unique: self.unique.clone(),
        }
    }
}

/// The options every job body may carry, for the OpenAPI document.
pub(crate) fn option_properties() -> Value {
    json!({
        "queue": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$",
                  "description": "A configured queue (`deploy/queues.json`; another name is a 422). Default: the queue the kind is routed to."},
        "priority": {"type": "integer", "minimum": 0, "maximum": ferro_tasks::queues::MAX_PRIORITY,
                     "description": "0 to 9, higher first within the queue; default 0."},
        "run_at": {"type": "string", "format": "date-time",
                   "description": "Not before then: the job is `scheduled` until due. At most a minute in the past (then it runs now), at most 366 days ahead."},
        "countdown": {"type": "number", "minimum": 0, "maximum": 31_622_400,
                      "description": "Seconds from now; instead of `run_at`."},
        "expires_at": {"type": "string", "format": "date-time",
                       "description": "Not started by then, the job ends `cancelled` without running. In the future, after `run_at`."},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": submission::MAX_ATTEMPTS,
                         "description": "Attempts instead of the kind's default."},
        "timeout_seconds": {"type": "integer", "minimum": 1,
                            "description": "One attempt's time limit, at most the kind's."},
        "unique": {"type": "object", "additionalProperties": false,
                   "description": "Enqueue only if no job with this key is in `states` (default: scheduled, queued, running, retrying) and younger than `period_seconds`; otherwise answer 200 with that job.",
                   "properties": {
                       "key": {"type": "string", "minLength": 1, "maxLength": 255,
                               "description": "Default: the kind, device and parameters."},
                       "period_seconds": {"type": "integer", "minimum": 1, "maximum": 31_622_400},
                       "states": {"type": "array", "minItems": 1,
                                  "items": {"type": "string", "enum": JobStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()}}}},
    })
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Written by hand: one branch per kind, each with that kind's parameters
/// and whether it takes a device.
impl utoipa::PartialSchema for CreateJob {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        fields::schema(json!({
            "oneOf": fields::job_branches(&option_properties(), &[]),
            "example": {"kind": "snmp.get", "device_id": "0b5c3c2e-8a7c-4c59-9d0e-2f1d7d7c4a10",
                        "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}},
        }))
    }
}

impl utoipa::ToSchema for CreateJob {}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )
    })
}

/// The trace the job joins: the caller's W3C `traceparent` (and
/// `tracestate`) if it sent a valid one, else a new trace whose id is the
/// request id when that is a UUID (as the ones the api makes are), so the
/// job's log lines can be found from the request's and back.
fn trace_context(headers: &HeaderMap, request_id: &RequestId) -> TraceContext {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("traceparent")
        .and_then(|parent| TraceContext::from_headers(parent, header("tracestate")))
        .unwrap_or_else(|| {
            TraceContext::root(Uuid::parse_str(&request_id.0).map_or(0, |id| id.as_u128()))
        })
}

/// Submits a job: 202 with the job, queued (or `scheduled` until its
/// `run_at`). The job and its outbox record are written in one transaction
/// and published to the broker after commit (a deferred job when it is
/// due). A repeated `Idempotency-Key` returns the first job (with
/// `Idempotent-Replayed: true`); a `unique` job that matches a live one
/// answers 200 with that job and enqueues nothing.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = ["jobs:run"])), request_body = CreateJob,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[\\x21-\\x7E]{1,255}$", description = "Makes retries of this request safe, per tenant: 1 to 255 visible ASCII characters")),
    responses((status = 202, description = "Queued or scheduled (or the earlier job for this Idempotency-Key)", body = Job, headers(("Location" = String, description = "Where the job is"))),
        (status = 200, description = "A unique job matched this live job; nothing was enqueued", body = Job, headers(("Location" = String, description = "Where the job is"))),
        (status = 409, description = "Idempotency-Key already used for another job", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, bad params or options, or no such device", body = Problem, content_type = "application/problem+json")))]
async fn create_job(
    State(state): State<AppState>,
    guard: Guard<JobsRun>,
    headers: HeaderMap,
    Extension(request_id): Extension<RequestId>,
    caller: Option<Extension<AuditCaller>>,
    ApiJson(body): ApiJson<CreateJob>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let trace = trace_context(&headers, &request_id);
    let trace_id = trace.trace_id().to_owned();
    let kind = submission::parse_kind(&body.kind)?;
    guard.may_handle_kind(kind.as_str())?;
    let params = submission::check_params(kind, &body.params, body.device_id)?;
    let checked = submission::check_options(
        kind,
        body.device_id,
        &params,
        &body.options(),
        &state.config.queues,
        chrono::Utc::now(),
    )?;
    if body.device_id.is_some() {
        let mut tx = state.db.begin(guard.ctx()).await?;
        submission::check_device(&mut tx, body.device_id).await??;
        tx.end_read_only();
    }
    // The request's audit row goes with the job, in the same transaction.
    let audit = caller
        .as_ref()
        .and_then(|c| c.row(StatusCode::ACCEPTED.as_u16()));
    let audited = audit.is_some();
    let outcome = state
        .submissions
        .submit(Submission {
            ctx: guard.ctx(),
            job: NewJob {
                kind,
                device_id: body.device_id,
                params,
                idempotency_key: key,
                schedule_id: None,
                scheduled_for: None,
                // Published after commit by the submissions' batch.
                relay_after: jobs::PUBLISHED_BY_WRITER,
                trace: Some(trace),
                deadline: checked.expires_at,
                options: checked.options,
                step: None,
            },
            audit,
        })
        .await?;
    if audited
        && outcome.is_accepted()
        && let Some(Extension(caller)) = &caller
    {
        caller.written();
    }
    Ok(match outcome {
        Enqueued::Created { job, .. } => {
            tracing::info!(job_id = %job.id, kind = %kind, status = %job.status, trace_id, "job submitted");
            super::At::new(StatusCode::ACCEPTED, "jobs", job.id, job).into_response()
        }
        Enqueued::Existing(job) => {
            let mut response =
                super::At::new(StatusCode::ACCEPTED, "jobs", job.id, job).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        Enqueued::Duplicate(job) => {
            tracing::info!(job_id = %job.id, kind = %kind, trace_id, "unique job already live");
            super::At::new(StatusCode::OK, "jobs", job.id, job).into_response()
        }
        Enqueued::KeyReused(_) | Enqueued::SlotTaken => {
            return Err(ApiError::Conflict {
                detail: "this Idempotency-Key was already used for a different job".to_owned(),
                field: Some("Idempotency-Key"),
            });
        }
    })
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", security(("bearer" = ["jobs:read"])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_job(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Job>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let job = jobs::get(&mut tx, id).await?;
    tx.end_read_only();
    job.map(axum::Json).ok_or(ApiError::NotFound("job"))
}

/// What the job's attempts recorded, oldest first.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/results", tag = "jobs", security(("bearer" = ["jobs:read"])),
    params(("id" = Uuid, Path, description = "Job id"), PageParams),
    responses((status = 200, description = "A page of results", body = Paginated<JobResult>),
        (status = 404, description = "No such job in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn job_results(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<JobResult>>, ApiError> {
    let paging = page.paging()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    if jobs::get(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("job"));
    }
    let (items, total) = jobs::results(&mut tx, id, paging.size, paging.offset()).await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// The file a finished job produced, as an attachment: the CSV of a
/// `devices.export` job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/download", tag = "jobs", security(("bearer" = ["jobs:read"])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The file (Content-Disposition: attachment)", body = String, content_type = "text/csv"),
        (status = 404, description = "No such job in this tenant, or its kind makes no file", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not succeeded", body = Problem, content_type = "application/problem+json")))]
async fn job_download(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let outcome = jobs::file(&mut tx, id).await?;
    tx.end_read_only();
    match outcome {
        jobs::FileOutcome::File(file) => Ok((
            [
                (header::CONTENT_TYPE, file.content_type.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", file.file_name),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_owned()),
            ],
            file.body,
        )
            .into_response()),
        jobs::FileOutcome::NotFound => Err(ApiError::NotFound("job")),
        jobs::FileOutcome::NoFile => Err(ApiError::NotFound("file of this job")),
        jobs::FileOutcome::NotReady(status) => Err(ApiError::Conflict {
            detail: format!("the job has no file until it succeeds (it is {status})"),
            field: None,
        }),
    }
}

/// Cancels a job: a queued one never starts (status `cancelled` at once); a
/// running one is told to stop and ends `cancelled`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = ["jobs:run"])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "Cancelled, or cancellation requested", body = Job),
        (status = 403, description = "Missing jobs:run, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already finished", body = Problem, content_type = "application/problem+json")))]
async fn cancel_job(
    State(state): State<AppState>,
    guard: Guard<JobsRun>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Job>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let outcome = jobs::cancel(&mut tx, id).await?;
    if let CancelOutcome::Cancelled(job)
    | CancelOutcome::Requested(job)
    | CancelOutcome::AlreadyFinished(job) = &outcome
    {
        // Refused: the transaction is dropped, so the cancel rolls back.
        guard.may_handle_kind(&job.kind)?;
    }
    tx.commit().await?;
    match outcome {
        CancelOutcome::Cancelled(job) => {
            // The worker never sees this job: its event comes from here.
            let channel = events::channel(&state.config.redis.key_prefix, guard.tenant_id);
            let payload = serde_json::to_string(&JobEvent::of(&job)).unwrap_or_default();
            if let Err(err) = ferro_redis::publish(&state.redis, &channel, &payload).await {
                tracing::warn!(job_id = %job.id, error = %err, "could not publish the cancel event");
            }
            Ok(axum::Json(job))
        }
        CancelOutcome::Requested(job) => Ok(axum::Json(job)),
        CancelOutcome::AlreadyFinished(job) => Err(ApiError::Conflict {
            detail: format!("the job already finished ({})", job.status),
            field: None,
        }),
        CancelOutcome::NotFound => Err(ApiError::NotFound("job")),
    }
}
