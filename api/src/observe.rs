//! The middleware around every request: request ids, the span, the time
//! limit, the request's metrics and the audit trail of mutating requests;
//! and the answers for panics and unknown routes.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::after_request::AuditCaller;
use crate::client_ip::{client_ip, peer_ip};
use crate::error::{ApiError, problem_response};
use crate::metrics::InFlight;
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request (from `X-Request-ID` or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Everything the api does around each request, in one middleware (one
/// boxed future instead of one per concern):
/// - the request id: a well-formed incoming `X-Request-ID` or a new one,
///   available to handlers and echoed on the response;
/// - a tracing span carrying method, route template and request id, so every
///   log line of the request names it;
/// - the time limit (`REQUEST_TIMEOUT_SECONDS`; 503 problem on expiry);
/// - Prometheus metrics: count and latency by method, route template and
///   status (499 for a request whose client left before the answer), and
///   requests in flight;
/// - the audit row of every mutating request an authenticated principal made,
///   whatever its outcome;
/// - mutating requests run on their own task, to the end, even if the client
///   goes away meanwhile.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id_header = match req.headers().get(REQUEST_ID) {
        Some(given) if acceptable_request_id(given) => given.clone(),
        _ => {
            let mut buf = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            let value = HeaderValue::from_str(text).expect("a UUID is a valid header value");
            req.headers_mut().insert(REQUEST_ID, value.clone());
            value
        }
    };
    let id = id_header.to_str().expect("checked or generated").to_owned();
    let method = req.method().clone();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!("request", method = %method, route, request_id = %id, user_id = tracing::field::Empty);
    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let audit = mutating.then(|| {
        let ip = client_ip(
            req.headers(),
            peer_ip(&req),
            &state.config.http.trusted_proxies,
        );
        let agent = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok());
        let caller = AuditCaller::new(method.as_str(), route, ip, agent, &id, started);
        req.extensions_mut().insert(caller.clone());
        caller
    });
    req.extensions_mut().insert(RequestId(id));

    let mut in_flight = InFlight::start(method.clone(), matched, started);
    let limit = state.config.http.request_timeout;
    let handling = {
        let state = state.clone();
        async move {
            let mut response = within(limit, next.run(req)).await;
            let status = response.status().as_u16();
            in_flight.finish(status);
            response.headers_mut().insert(REQUEST_ID, id_header);
            // The caller authentication found, whatever became of the
            // request after that: a panic or a timeout is audited too
            // (unless the handler wrote the row with its own changes).
            if let Some(caller) = audit
                && !caller.is_written()
                && let (Some(principal), Some(row)) = (caller.get(), caller.row(status))
                && let Err(err) = state.after.audit(principal.ctx(), row).await
            {
                tracing::error!(error = %crate::error::error_chain(&err), "could not write the audit log");
            }
            response
        }
    }
    .instrument(span);
    if !mutating {
        return handling.await;
    }
    // A mutation runs to the end even if its client goes away (hyper drops
    // the request's future when the connection closes): what it committed
    // keeps its audit row and its after-commit work, such as publishing a
    // new job, and a half-done change is not cut between its statements.
    match state.requests.spawn(handling).await {
        Ok(response) => response,
        Err(err) => panic_response(Box::new(err)),
    }
}

/// The response of `handling`, or a 503 problem if it takes longer than `limit`.
async fn within(limit: Duration, handling: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, handling).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The answer to a panic in a handler: a bare 500 problem.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The message is logged, never sent.
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "handler panicked");
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error",
    )
}

/// The answer for paths no route matches.
pub async fn not_found() -> Response {
    problem_response(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

/// The answer for a known path with a method it does not support.
pub async fn method_not_allowed() -> Response {
    problem_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not support that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn boom() -> &'static str {
        panic!("secret internal detail")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_bare_500_problem() {
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_response));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = body_json(response).await;
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("secret internal detail"));
    }

    #[tokio::test]
    async fn timeouts_answer_a_503_problem() {
        let limit = Duration::from_millis(50);
        let slow = within(limit, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        })
        .await;
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(slow).await["code"], "timeout");
        let fast = within(limit, async { StatusCode::OK.into_response() }).await;
        assert_eq!(fast.status(), StatusCode::OK);
    }
}
