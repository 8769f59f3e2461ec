//! `/api/v1/workflows`: chains, groups and chords of jobs. Every step is
//! checked as `POST /api/v1/jobs` checks a job (faults named by their step,
//! e.g. `chain[2].params.oids`); then all of them are written in one
//! transaction and only the steps that wait for nothing are published.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_tasks::jobs::{self, NewJob};
use ferro_tasks::kinds::ParamError;
use ferro_tasks::submission;
use ferro_tasks::workflows::{self, MAX_STEPS, Workflow, WorkflowKind};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::jobs::{CreateJob, option_properties};
use crate::auth::{Guard, JobsRead, JobsRun};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::openapi::fields;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_workflow))
        .routes(routes!(get_workflow))
        .routes(routes!(cancel_workflow))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflow {
    chain: Option<Vec<Value>>,
    group: Option<Vec<Value>>,
    chord: Option<Chord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Chord {
    group: Vec<Value>,
    then: Value,
}

/// What a step may not ask for: it starts when its workflow says.
const NOT_IN_A_STEP: [&str; 3] = ["run_at", "countdown", "unique"];

/// Most faults listed in one answer.
const MOST_ERRORS: usize = 50;

impl utoipa::PartialSchema for CreateWorkflow {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let mut options = option_properties();
        if let Some(map) = options.as_object_mut() {
            for field in NOT_IN_A_STEP {
                map.remove(field);
            }
        }
        let step = json!({"oneOf": fields::job_branches(&options, &[])});
        let steps = json!({"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": step});
        let chord_group =
            json!({"type": "array", "minItems": 1, "maxItems": MAX_STEPS - 1, "items": step});
        fields::schema(json!({
            "oneOf": [
                {"type": "object", "additionalProperties": false, "required": ["chain"],
                 "properties": {"chain": steps},
                 "description": "Each step after the previous one succeeded, seeing its results."},
                {"type": "object", "additionalProperties": false, "required": ["group"],
                 "properties": {"group": steps},
                 "description": "Every step at once."},
                {"type": "object", "additionalProperties": false, "required": ["chord"],
                 "properties": {"chord": {"type": "object", "additionalProperties": false,
                     "required": ["group", "then"],
                     "properties": {"group": chord_group, "then": step}}},
                 "description": "A group, then `then` once every member succeeded, seeing their results."},
            ],
            "example": {"chain": [{"kind": "noop", "params": {"sleep_ms": 100}},
                                  {"kind": "devices.export"}]},
        }))
    }
}

impl utoipa::ToSchema for CreateWorkflow {}

/// The kind and the steps, each with the name its faults are reported under.
fn steps_of(body: CreateWorkflow) -> Result<(WorkflowKind, Vec<(String, Value)>), ApiError> {
    let named = |prefix: &str, steps: Vec<Value>| -> Vec<(String, Value)> {
        steps
            .into_iter()
            .enumerate()
            .map(|(at, step)| (format!("{prefix}[{at}]"), step))
            .collect()
    };
    let (kind, steps, field) = match body {
        CreateWorkflow {
            chain: Some(steps),
            group: None,
            chord: None,
        } => (WorkflowKind::Chain, named("chain", steps), "chain"),
        CreateWorkflow {
            chain: None,
            group: Some(steps),
            chord: None,
        } => (WorkflowKind::Group, named("group", steps), "group"),
        CreateWorkflow {
            chain: None,
            group: None,
            chord: Some(Chord { group, then }),
        } => {
            if group.is_empty() {
                return Err(ApiError::field(
                    "chord.group",
                    "must have at least one member",
                ));
            }
            let mut steps = named("chord.group", group);
            steps.push(("chord.then".to_owned(), then));
            (WorkflowKind::Chord, steps, "chord.group")
        }
        _ => {
            return Err(ApiError::field(
                "chain",
                "give exactly one of chain, group or chord",
            ));
        }
    };
    if steps.is_empty() {
        return Err(ApiError::field(field, "must have at least one step"));
    }
    if steps.len() > MAX_STEPS {
        const _: () = assert!(MAX_STEPS == 10_000, "the message below names it");
        return Err(ApiError::field(field, "at most 10000 steps in a workflow"));
    }
    Ok((kind, steps))
}

/// Checks one step as a job body; its faults are named under `name`.
fn check_step(
    state: &AppState,
    guard: &Guard<JobsRun>,
    name: &str,
    step: Value,
    errors: &mut Vec<ParamError>,
) -> Option<NewJob> {
    let under = |err: ParamError| ParamError::new(format!("{name}.{}", err.field), err.message);
    let body: CreateJob = match serde_json::from_value(step) {
        Ok(body) => body,
        Err(err) => {
            errors.push(ParamError::new(name, err.to_string()));
            return None;
        }
    };
    let kind = match submission::parse_kind(&body.kind) {
        Ok(kind) => kind,
        Err(err) => {
            errors.push(under(err));
            return None;
        }
    };
    if guard.may_handle_kind(kind.as_str()).is_err() {
        errors.push(ParamError::new(
            format!("{name}.kind"),
            "a platform administrator's kind",
        ));
        return None;
    }
    let options = body.options();
    let mut refused = Vec::new();
    if options.run_at.is_some() || options.countdown.is_some() {
        refused.push(ParamError::new(
            format!("{name}.run_at"),
            "a step starts when its workflow says; no run_at or countdown",
        ));
    }
    if options.unique.is_some() {
        refused.push(ParamError::new(
            format!("{name}.unique"),
            "a step cannot be unique",
        ));
    }
    let params = submission::check_params(kind, &body.params, body.device_id);
    let checked = submission::check_options(
        kind,
        body.device_id,
        params.as_ref().unwrap_or(&body.params),
        &options,
        &state.config.queues,
        chrono::Utc::now(),
    );
    let (params, checked) = match (params, checked) {
        (Ok(params), Ok(checked)) if refused.is_empty() => (params, checked),
        (params, checked) => {
            errors.extend(params.err().into_iter().flatten().map(under));
            errors.extend(checked.err().into_iter().flatten().map(under));
            errors.extend(refused);
            return None;
        }
    };
    Some(NewJob {
        kind,
        device_id: body.device_id,
        params,
        idempotency_key: None,
        schedule_id: None,
        scheduled_for: None,
        // The first steps are published after commit, right here.
        relay_after: jobs::PUBLISHED_BY_WRITER,
        trace: None,
        deadline: checked.expires_at,
        options: checked.options,
        step: None,
    })
}

/// Starts a workflow: every step written at once, the ones that wait for
/// nothing published after commit; 202 with the workflow.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", security(("bearer" = ["jobs:run"])), request_body = CreateWorkflow,
    responses((status = 202, description = "Started", body = Workflow, headers(("Location" = String, description = "Where the workflow is"))),
        (status = 422, description = "Not exactly one of chain, group or chord; no steps or too many; a bad step (named by its place)", body = Problem, content_type = "application/problem+json")))]
async fn create_workflow(
    State(state): State<AppState>,
    guard: Guard<JobsRun>,
    ApiJson(body): ApiJson<CreateWorkflow>,
) -> Result<Response, ApiError> {
    let (kind, steps) = steps_of(body)?;
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(steps.len());
    let mut devices = BTreeSet::new();
    for (name, step) in steps {
        if let Some(job) = check_step(&state, &guard, &name, step, &mut errors) {
            if let Some(device) = job.device_id {
                devices.insert((device, name));
            }
            checked.push(job);
        }
        if errors.len() >= MOST_ERRORS {
            break;
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let mut tx = state.db.begin(guard.ctx()).await?;
    for (device, name) in devices {
        if let Err(err) = submission::check_device(&mut tx, Some(device)).await? {
            errors.push(ParamError::new(
                format!("{name}.{}", err.field),
                err.message,
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let created = workflows::create(&mut tx, kind, checked).await?;
    tx.commit().await?;
    let ctx = guard.ctx();
    state.submissions.publish_committed(
        created
            .publish
            .into_iter()
            .map(|(envelope, outbox)| (ctx, envelope, outbox))
            .collect(),
    );
    let workflow = created.workflow;
    tracing::info!(workflow_id = %workflow.id, kind = kind.as_str(), steps = workflow.jobs.len(), "workflow started");
    Ok(super::At::new(StatusCode::ACCEPTED, "workflows", workflow.id, workflow).into_response())
}

/// One workflow, with its jobs in step order.
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", security(("bearer" = ["jobs:read"])),
    params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow", body = Workflow),
        (status = 404, description = "No such workflow in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_workflow(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Workflow>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let workflow = workflows::get(&mut tx, id).await?;
    tx.end_read_only();
    workflow
        .map(axum::Json)
        .ok_or(ApiError::NotFound("workflow"))
}

/// Cancels what has not ended: waiting and queued steps at once, running
/// ones are told to stop.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/cancel", tag = "workflows", security(("bearer" = ["jobs:run"])),
    params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "Cancelled, or cancellation requested", body = Workflow),
        (status = 404, description = "No such workflow in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Every step already ended", body = Problem, content_type = "application/problem+json")))]
async fn cancel_workflow(
    State(state): State<AppState>,
    guard: Guard<JobsRun>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<Workflow>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let Some(before) = workflows::get(&mut tx, id).await? else {
        return Err(ApiError::NotFound("workflow"));
    };
    for job in &before.jobs {
        guard.may_handle_kind(&job.kind)?;
    }
    if before.status != "running" {
        return Err(ApiError::Conflict {
            detail: format!("the workflow already ended ({})", before.status),
            field: None,
        });
    }
    let after = workflows::cancel(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("workflow"))?;
    tx.commit().await?;
    Ok(axum::Json(after))
}
