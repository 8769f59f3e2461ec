//! A schedule's runs: the jobs it made, and running it now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_tasks::jobs::{self, Job, JobFilter, JobSort, PageAt};
use ferro_tasks::schedules::{self, RanNow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Guard, JobsManage, SchedulesRead};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(schedule_runs))
        .routes(routes!(run_schedule))
}

/// Runs a schedule now, enabled or not: a job like its fires (kind,
/// device, parameters, queue), linked to it, outside its cron (the next
/// fire stays as it was). 202 with the job.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/run", tag = "schedules", security(("bearer" = ["jobs:manage"])),
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 202, description = "The job, queued", body = Job, headers(("Location" = String, description = "Where the job is"))),
        (status = 403, description = "Missing jobs:manage, or a platform-only kind", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The schedule's kind is no longer known", body = Problem, content_type = "application/problem+json")))]
async fn run_schedule(
    State(state): State<AppState>,
    guard: Guard<JobsManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    if let Some(schedule) = schedules::get(&mut tx, id).await? {
        guard.may_handle_kind(&schedule.kind)?;
    }
    match schedules::run_now(&mut tx, id, &state.config.queues).await? {
        RanNow::Job(job) => {
            tx.commit().await?;
            tracing::info!(schedule_id = %id, job_id = %job.id, "schedule run now");
            Ok(super::super::At::new(StatusCode::ACCEPTED, "jobs", job.id, *job).into_response())
        }
        RanNow::NotFound => Err(ApiError::NotFound("schedule")),
        RanNow::UnknownKind(kind) => Err(ApiError::Conflict {
            detail: format!("the schedule's kind {kind} is not one this server runs"),
            field: None,
        }),
    }
}

/// The jobs this schedule made, newest first: its run history.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/runs", tag = "schedules", security(("bearer" = ["schedules:read"])),
    params(("id" = Uuid, Path, description = "Schedule id"), PageParams),
    responses((status = 200, description = "A page of jobs", body = Paginated<Job>),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn schedule_runs(
    State(state): State<AppState>,
    guard: Guard<SchedulesRead>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<Job>>, ApiError> {
    let paging = page.paging()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    if schedules::get(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("schedule"));
    }
    let filter = JobFilter {
        schedule_id: Some(id),
        ..Default::default()
    };
    let page = jobs::list(
        &mut tx,
        &filter,
        JobSort::default(),
        &PageAt::Offset(paging.offset()),
        paging.size,
    )
    .await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(page.items, page.total, paging)))
}
