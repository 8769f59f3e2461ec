//! An operator's actions on jobs: the attempts of one, retrying it as a new
//! job, discarding a finished one, and the same by filter in bulk. Actions
//! need `jobs:manage`; like every mutation, each request is audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_tasks::events::{self, JobEvent};
use ferro_tasks::jobs::{
    self, Attempt, BulkAction, CancelOutcome, DiscardOutcome, Job, RetryOutcome,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::search::FilterInput;
use crate::auth::{Guard, JobsManage, JobsRead, Principal};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::validation::Validator;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(job_attempts))
        .routes(routes!(retry_job))
        .routes(routes!(discard_job))
        .routes(routes!(bulk))
}

/// The job's attempts, oldest first; the running one, if any, last.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/attempts", tag = "jobs", security(("bearer" = ["jobs:read"])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The attempts", body = Vec<Attempt>),
        (status = 404, description = "No such job in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn job_attempts(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Vec<Attempt>>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let attempts = jobs::attempts(&mut tx, id).await?;
    tx.end_read_only();
    attempts.map(axum::Json).ok_or(ApiError::NotFound("job"))
}

/// Retries a failed or cancelled job: a new job with the same kind,
/// device, parameters, queue and priority, a fresh attempt budget, and
/// `retry_of` naming this one (which stays as it was). 202 with the new job.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", security(("bearer" = ["jobs:manage"])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 202, description = "The new job, queued", body = Job, headers(("Location" = String, description = "Where the new job is"))),
        (status = 403, description = "Missing jobs:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is neither failed nor cancelled", body = Problem, content_type = "application/problem+json")))]
async fn retry_job(
    State(state): State<AppState>,
    guard: Guard<JobsManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    if let Some(job) = jobs::get(&mut tx, id).await? {
        guard.may_handle_kind(&job.kind)?;
    }
    match jobs::retry(&mut tx, id).await? {
        RetryOutcome::Retried(job) => {
            tx.commit().await?;
            tracing::info!(job_id = %job.id, retry_of = %id, kind = %job.kind, "job retried");
            Ok(super::super::At::new(StatusCode::ACCEPTED, "jobs", job.id, job).into_response())
        }
        RetryOutcome::NotRetryable(job) => Err(ApiError::Conflict {
            detail: format!(
                "only failed and cancelled jobs are retried; this one is {}",
                job.status
            ),
            field: None,
        }),
        RetryOutcome::NotFound => Err(ApiError::NotFound("job")),
    }
}

/// Discards a finished job: deletes it with its results and attempts.
#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "jobs", security(("bearer" = ["jobs:manage"])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 204, description = "Discarded"),
        (status = 403, description = "Missing jobs:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not finished, or its workflow has not", body = Problem, content_type = "application/problem+json")))]
async fn discard_job(
    State(state): State<AppState>,
    guard: Guard<JobsManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    if let Some(job) = jobs::get(&mut tx, id).await? {
        guard.may_handle_kind(&job.kind)?;
    }
    match jobs::discard(&mut tx, id).await? {
        DiscardOutcome::Discarded(_) => {
            tx.commit().await?;
            Ok(StatusCode::NO_CONTENT)
        }
        DiscardOutcome::NotFinished(job) => Err(ApiError::Conflict {
            detail: format!("the job has not finished ({}); cancel it first", job.status),
            field: None,
        }),
        DiscardOutcome::WorkflowOpen(_) => Err(ApiError::Conflict {
            detail: "the job is a step of a workflow that has not finished".to_owned(),
            field: None,
        }),
        DiscardOutcome::NotFound => Err(ApiError::NotFound("job")),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "retry", "filter": {"status": ["failed"], "q": "timeout"}}))]
pub struct BulkRequest {
    /// `retry` (failed and cancelled jobs), `cancel` (scheduled, queued,
    /// running and retrying jobs) or `discard` (finished jobs).
    #[schema(pattern = "^(retry|cancel|discard)$")]
    pub action: String,
    /// Which jobs, as the list's filters; at least one filter (an empty
    /// filter would take every job: 400).
    pub filter: FilterInput,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOutcome {
    /// How many jobs the action changed (at most 1,000 a request).
    pub affected: usize,
    /// More jobs matched than one request takes: send it again for the next.
    pub more: bool,
}

/// Retries, cancels or discards the tenant's jobs that a filter selects
/// and the action applies to, newest first, at most 1,000 a request.
#[utoipa::path(post, path = "/api/v1/jobs/bulk", tag = "jobs", security(("bearer" = ["jobs:manage"])),
    request_body = BulkRequest,
    responses((status = 200, description = "How many jobs changed", body = BulkOutcome),
        (status = 400, description = "An empty filter", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action or a bad filter", body = Problem, content_type = "application/problem+json")))]
async fn bulk(
    State(state): State<AppState>,
    guard: Guard<JobsManage>,
    ApiJson(body): ApiJson<BulkRequest>,
) -> Result<axum::Json<BulkOutcome>, ApiError> {
    let mut v = Validator::default();
    let action = BulkAction::parse(&body.action);
    v.check(
        action.is_some(),
        "action",
        "must be retry, cancel or discard",
    );
    let filter = body.filter.check(&mut v, "filter.", &state);
    v.finish()?;
    let action = action.expect("checked above");
    if filter.is_empty() {
        return Err(ApiError::BadRequest {
            code: "empty_filter",
            detail: "a bulk action needs at least one filter; an empty one would take every job"
                .to_owned(),
        });
    }
    let mut tx = state.db.begin(guard.ctx()).await?;
    let (targets, more) = jobs::bulk_targets(&mut tx, &filter, action).await?;
    let mut cancelled = Vec::new();
    let mut affected = 0;
    for job in targets.iter().filter(|j| may_handle(&guard, &j.kind)) {
        let changed = match action {
            BulkAction::Retry => matches!(
                jobs::retry(&mut tx, job.id).await?,
                RetryOutcome::Retried(_)
            ),
            BulkAction::Discard => matches!(
                jobs::discard(&mut tx, job.id).await?,
                DiscardOutcome::Discarded(_)
            ),
            BulkAction::Cancel => match jobs::cancel(&mut tx, job.id).await? {
                CancelOutcome::Cancelled(job) => {
                    cancelled.push(job);
                    true
                }
                CancelOutcome::Requested(_) => true,
                _ => false,
            },
        };
        affected += usize::from(changed);
    }
    tx.commit().await?;
    // Jobs cancelled before they ran never reach a worker: their events
    // come from here, in one pipeline.
    if !cancelled.is_empty() {
        let channel = events::channel(&state.config.redis.key_prefix, guard.tenant_id);
        let messages: Vec<(String, String)> = cancelled
            .iter()
            .map(|job| {
                let payload = serde_json::to_string(&JobEvent::of(job)).unwrap_or_default();
                (channel.clone(), payload)
            })
            .collect();
        if let Err(err) = ferro_redis::publish_many(&state.redis, &messages).await {
            tracing::warn!(error = %err, "could not publish the cancel events");
        }
    }
    tracing::info!(action = body.action, affected, more, "bulk action on jobs");
    Ok(axum::Json(BulkOutcome { affected, more }))
}

/// Platform-only kinds are left alone for other callers.
fn may_handle(principal: &Principal, kind: &str) -> bool {
    principal.may_handle_kind(kind).is_ok()
}
