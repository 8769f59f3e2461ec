//! `/api/v1/jobs`: submit, list, inspect and cancel jobs. Kinds, parameters
//! and devices are checked here, so the worker never gets a job it cannot run.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferro_tasks::events::{self, JobEvent};
use ferro_tasks::jobs::{self, CancelOutcome, Enqueued, Job, JobFilter, JobResult, NewJob};
use ferro_tasks::{JobKind, JobStatus, TraceContext, submission};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Guard, JobsRead, JobsRun};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, PageParams, Paginated, Validator};
use crate::observe::RequestId;
use crate::openapi::fields;
use crate::state::AppState;

fn job_status() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    fields::schema(fields::one_of(&statuses))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, create_job))
        .routes(routes!(get_job))
        .routes(routes!(job_results))
        .routes(routes!(job_download))
        .routes(routes!(cancel_job))
        .routes(routes!(job_events))
        .routes(routes!(jobs_ws))
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
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Written by hand: one branch per kind, each with that kind's parameters
/// and whether it takes a device.
impl utoipa::PartialSchema for CreateJob {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        fields::schema(json!({
            "oneOf": fields::job_branches(&json!({}), &[]),
            "example": {"kind": "snmp.get", "device_id": "0b5c3c2e-8a7c-4c59-9d0e-2f1d7d7c4a10",
                        "params": {"oids": ["1.3.6.1.2.1.1.1.0"]}},
        }))
    }
}

impl utoipa::ToSchema for CreateJob {}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Page number, from 1 (default 1) to 1,000,000.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `cancelled`.
    #[param(schema_with = job_status)]
    pub status: Option<String>,
    #[param(schema_with = fields::job_kind)]
    pub kind: Option<String>,
    pub device_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
}

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

/// Submits a job: 202 with the job, queued. The job and its outbox record are
/// written in one transaction and published to the broker after commit. A
/// repeated `Idempotency-Key` returns the first job (with `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = ["jobs:run"])), request_body = CreateJob,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[\\x21-\\x7E]{1,255}$", description = "Makes retries of this request safe, per tenant: 1 to 255 visible ASCII characters")),
    responses((status = 202, description = "Queued (or the earlier job for this Idempotency-Key)", body = Job, headers(("Location" = String, description = "Where the job is"))),
        (status = 409, description = "Idempotency-Key already used for another job", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, bad params, or no such device", body = Problem, content_type = "application/problem+json")))]
async fn create_job(
    State(state): State<AppState>,
    guard: Guard<JobsRun>,
    headers: HeaderMap,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<CreateJob>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let trace = trace_context(&headers, &request_id);
    let trace_id = trace.trace_id().to_owned();
    let kind = submission::parse_kind(&body.kind)?;
    guard.may_handle_kind(kind.as_str())?;
    let params = submission::check_params(kind, &body.params, body.device_id)?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    submission::check_device(&mut tx, body.device_id).await??;
    let outcome = jobs::enqueue(
        &mut tx,
        NewJob {
            kind,
            device_id: body.device_id,
            params,
            idempotency_key: key,
            schedule_id: None,
            scheduled_for: None,
            // publish_now publishes it after commit.
            relay_after: jobs::PUBLISHED_BY_WRITER,
            trace: Some(trace),
            deadline: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(match outcome {
        Enqueued::Created {
            job,
            envelope,
            outbox_id,
        } => {
            tracing::info!(job_id = %job.id, kind = %kind, trace_id, "job queued");
            publish_now(&state, guard.ctx(), envelope, outbox_id).await;
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
        Enqueued::KeyReused(_) | Enqueued::SlotTaken => {
            return Err(ApiError::Conflict {
                detail: "this Idempotency-Key was already used for a different job".to_owned(),
                field: Some("Idempotency-Key"),
            });
        }
    })
}

/// The fast path: publish right after commit and mark the outbox record, so
/// the job starts without waiting for the relay. Any failure here only
/// leaves the record for the relay (in the worker) to publish.
async fn publish_now(
    state: &AppState,
    ctx: ferro_db::TenantCtx,
    envelope: ferro_tasks::TaskEnvelope,
    outbox_id: i64,
) {
    let published = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.broker.publish(&envelope),
    )
    .await;
    match published {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(job_id = %envelope.job_id, error = %err, "publish failed; the outbox relay will retry");
            return;
        }
        Err(_) => {
            tracing::warn!(job_id = %envelope.job_id, "publish timed out; the outbox relay will retry");
            return;
        }
    }
    if let Err(err) = state.after.published(ctx, outbox_id).await {
        // Published but not marked: the relay publishes it again and the
        // worker's guarded claim skips the duplicate.
        tracing::warn!(job_id = %envelope.job_id, error = %err, "could not mark the outbox record published");
    }
}

/// Lists the tenant's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = ["jobs:read"])), params(JobQuery),
    responses((status = 200, description = "A page of jobs", body = Paginated<Job>),
        (status = 422, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
async fn list_jobs(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> Result<axum::Json<Paginated<Job>>, ApiError> {
    let mut v = Validator::default();
    let paging = PageParams {
        page: q.page,
        size: q.size,
    }
    .validate(&mut v.0);
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => match s.parse::<JobStatus>() {
            Ok(st) => Some(st),
            Err(_) => {
                v.check(
                    false,
                    "status",
                    "must be queued, running, retrying, succeeded, failed or cancelled",
                );
                None
            }
        },
    };
    if let Some(kind) = &q.kind {
        v.check(JobKind::parse(kind).is_some(), "kind", "unknown job kind");
    }
    v.finish()?;
    let filter = JobFilter {
        status,
        kind: q.kind,
        device_id: q.device_id,
        schedule_id: q.schedule_id,
    };
    let mut tx = state.db.begin(guard.ctx()).await?;
    let (items, total) = jobs::list(&mut tx, &filter, paging.size, paging.offset()).await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(items, total, paging)))
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

struct EventStream {
    first: Option<JobEvent>,
    messages: std::pin::Pin<Box<dyn Stream<Item = JobEvent> + Send>>,
    seq: u64,
    done: bool,
    _sink: redis::aio::PubSubSink,
    /// Every [`STREAM_CHECK`] the session is looked up again: a logout or
    /// revocation ends the stream, as it ends the token's other requests.
    check: tokio::time::Interval,
    state: AppState,
    principal: crate::auth::Principal,
}

/// The job's events as Server-Sent Events: first its current state, then
/// every status (`event: status`) and progress (`event: progress`) change,
/// each with an increasing `id` and the job as JSON data; the stream ends
/// when the job ends, or within 5 s of the session ending (logout,
/// revocation). Comments keep the connection alive every 15 s. A client
/// that reconnects (it sends `Last-Event-ID`, as EventSource does after the
/// stream ends) to a job that has ended gets 204, which tells EventSource to
/// stop reconnecting.
#[utoipa::path(get, path = "/api/v1/jobs/events/{id}", tag = "jobs", security(("bearer" = ["jobs:read"])),
    params(("id" = Uuid, Path, description = "Job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by EventSource when it reconnects")),
    responses((status = 200, description = "text/event-stream of JobEvent", body = JobEvent, content_type = "text/event-stream"),
        (status = 204, description = "A reconnection (Last-Event-ID) to a job that has ended: nothing more will come"),
        (status = 404, description = "No such job in this tenant, or streams disabled (ENABLE_SSE=false)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event bus (Redis) is unavailable", body = Problem, content_type = "application/problem+json")))]
async fn job_events(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config.http.enable_sse {
        return Err(ApiError::NotFound("event stream"));
    }
    // Subscribe before reading the current state, so no change falls between.
    let pubsub = subscribe_tenant_events(&state, guard.tenant_id).await?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let job = jobs::get(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    tx.end_read_only();
    let reconnected = headers.contains_key("last-event-id");
    if reconnected && JobEvent::of(&job).is_final() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }

    // The sink must live as long as the stream: dropping it ends the
    // subscription's connection and with it the messages.
    let (sink, messages) = pubsub.split();
    let messages = messages.filter_map(move |msg| async move {
        let payload: String = msg.get_payload().ok()?;
        let event: JobEvent = serde_json::from_str(&payload).ok()?;
        (event.job_id == id).then_some(event)
    });
    let mut check = tokio::time::interval(STREAM_CHECK);
    check.reset();
    let state = EventStream {
        first: Some(JobEvent::of(&job)),
        messages: Box::pin(messages),
        seq: 0,
        done: false,
        _sink: sink,
        check,
        principal: guard.principal.clone(),
        state,
    };
    // Ends right after the job's final event (a finished job: its state only).
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let event = match st.first.take() {
            Some(event) => event,
            None => loop {
                tokio::select! {
                    event = st.messages.next() => break event?,
                    // The api is shutting down: the client reconnects.
                    _ = st.state.stopping.cancelled() => return None,
                    _ = st.check.tick() => {
                        if !session_alive(&st.state, &st.principal).await {
                            return None;
                        }
                    }
                }
            },
        };
        st.seq += 1;
        st.done = event.is_final();
        let sse = Event::default()
            .id(st.seq.to_string())
            .event(event.kind())
            .json_data(&event)
            .unwrap_or_else(|_| Event::default().comment("unserialisable event"));
        Some((Ok::<_, Infallible>(sse), st))
    });
    Ok(Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response())
}

/// A pub/sub connection subscribed to the tenant's job events (SSE and
/// WebSocket both start here).
async fn subscribe_tenant_events(
    state: &AppState,
    tenant: Uuid,
) -> Result<redis::aio::PubSub, ApiError> {
    let unavailable = |_| ApiError::Unavailable("event bus");
    let client = redis::Client::open(state.config.redis.url.expose()).map_err(unavailable)?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| ApiError::Unavailable("event bus"))?
        .map_err(unavailable)?;
    pubsub
        .subscribe(events::channel(&state.config.redis.key_prefix, tenant))
        .await
        .map_err(unavailable)?;
    Ok(pubsub)
}

/// How often an event stream (SSE or WebSocket) checks its session, and a
/// WebSocket is pinged: a logout or revocation ends it within this time.
const STREAM_CHECK: Duration = Duration::from_secs(5);

/// Whether the stream's caller may still read the tenant's jobs: the
/// session lives on (no logout, revocation or switch of tenant) and still
/// holds `jobs:read` (its roles may have changed). An unreachable Redis or
/// database counts as no: the stream ends, and the client can reconnect.
async fn session_alive(state: &AppState, principal: &crate::auth::Principal) -> bool {
    crate::auth::principal_of(state, principal.token_session())
        .await
        .is_ok_and(|now| now.has(ferro_auth::Permission::JobsRead))
}

/// All of the tenant's job events over a WebSocket: one JSON `JobEvent` per
/// text message, for as long as the client stays (and its session lives).
/// Authenticate with the `Authorization: Bearer` header or, from a browser,
/// with the subprotocols `bearer` and the token
/// (`new WebSocket(url, ["bearer", token])`).
#[utoipa::path(get, path = "/api/v1/jobs/ws", tag = "jobs", security(("bearer" = ["jobs:read"])),
    responses((status = 101, description = "Switching to WebSocket; text messages carry JobEvent JSON", body = JobEvent),
        (status = 400, description = "Not a WebSocket handshake (a plain GET, say)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Streams disabled (ENABLE_SSE=false)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event bus (Redis) is unavailable", body = Problem, content_type = "application/problem+json")))]
async fn jobs_ws(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if !state.config.http.enable_sse {
        return Err(ApiError::NotFound("event stream"));
    }
    let ws = ws.map_err(|rejection| ApiError::BadRequest {
        code: "not_a_websocket_handshake",
        detail: format!("this route answers WebSocket handshakes only: {rejection}"),
    })?;
    let pubsub = subscribe_tenant_events(&state, guard.tenant_id).await?;
    let principal = guard.principal.clone();
    // Echo the token-carrying subprotocol if the client offered it (a
    // browser refuses a connection whose offered protocol is not chosen).
    Ok(ws
        .protocols([crate::auth::WS_BEARER_PROTOCOL])
        .on_upgrade(move |socket| forward_events(socket, pubsub, state, principal)))
}

async fn forward_events(
    mut socket: WebSocket,
    pubsub: redis::aio::PubSub,
    state: AppState,
    principal: crate::auth::Principal,
) {
    let (_sink, mut messages) = pubsub.split();
    let mut check = tokio::time::interval(STREAM_CHECK);
    check.tick().await;
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { break };
                let Ok(payload) = msg.get_payload::<String>() else { continue };
                if socket.send(Message::Text(payload.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                _ => {}
            },
            _ = state.stopping.cancelled() => break,
            _ = check.tick() => {
                if !session_alive(&state, &principal).await || socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
