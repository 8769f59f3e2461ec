//! Job events: a job's Server-Sent Events until it ends
//! (`/api/v1/jobs/events/{id}`), and all of the tenant's over a WebSocket
//! (`/api/v1/jobs/ws`); both stop when the caller's session does.

use crate::auth::{Guard, JobsRead};
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferro_tasks::events::{self, JobEvent};
use ferro_tasks::jobs::{self};
use futures_util::{Stream, StreamExt};
use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(job_events))
        .routes(routes!(jobs_ws))
}

pub(super) struct EventStream {
    pub(super) first: Option<JobEvent>,
    pub(super) messages: std::pin::Pin<Box<dyn Stream<Item = JobEvent> + Send>>,
    pub(super) seq: u64,
    pub(super) done: bool,
    pub(super) _sink: redis::aio::PubSubSink,
    /// Every [`STREAM_CHECK`] the session is looked up again: a logout or
    /// revocation ends the stream, as it ends the token's other requests.
    pub(super) check: tokio::time::Interval,
    pub(super) state: AppState,
    pub(super) principal: crate::auth::Principal,
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
pub(super) async fn job_events(
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
pub(super) async fn subscribe_tenant_events(
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
pub(super) const STREAM_CHECK: Duration = Duration::from_secs(5);

/// Whether the stream's caller may still read the tenant's jobs: the
/// session lives on (no logout, revocation or switch of tenant) and still
/// holds `jobs:read` (its roles may have changed). An unreachable Redis or
/// database counts as no: the stream ends, and the client can reconnect.
pub(super) async fn session_alive(state: &AppState, principal: &crate::auth::Principal) -> bool {
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
pub(super) async fn jobs_ws(
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

pub(super) async fn forward_events(
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
