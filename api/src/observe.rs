//! Cross-cutting request handling: request ids, Prometheus metrics, the
//! audit trail of mutating requests, timeouts, and the client address.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::Principal;
use crate::error::{ApiError, problem_response};
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request (from `X-Request-ID` or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| s.to_owned())
}

/// Accepts a well-formed incoming `X-Request-ID` or generates one, makes it
/// available to handlers and logs, and echoes it on the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).expect("checked or generated");
    req.headers_mut().insert(REQUEST_ID, value.clone());
    req.extensions_mut().insert(RequestId(id));
    let mut response = next.run(req).await;
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// The tracing span of a request: method, route template and request id.
pub fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("unmatched");
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), route, request_id = id)
}

/// Bounds a request's handling time; answers 503 problem+json on expiry.
pub async fn timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The Prometheus recorder, installed once per process.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn install() -> Self {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        let handle = HANDLE
            .get_or_init(|| {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full("http_request_duration_seconds".to_owned()),
                        &[
                            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                            10.0,
                        ],
                    )
                    .expect("non-empty buckets")
                    .install_recorder()
                    .expect("no other metrics recorder is installed")
            })
            .clone();
        Self { handle }
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Request count, latency histogram (by method, route template, status) and
/// the number of requests in flight.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    let response = next.run(req).await;
    in_flight.decrement(1.0);
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most address in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Writes an audit row for every mutating request made by an authenticated
/// principal (whatever its outcome), after the response is known.
pub async fn audit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !mutating {
        return next.run(req).await;
    }
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().chars().take(500).collect());
    let ip = client_ip(
        req.headers(),
        peer_ip(&req),
        &state.config.http.trusted_proxies,
    );
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect::<String>());
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let response = next.run(req).await;
    let Some(principal) = response.extensions().get::<Principal>().cloned() else {
        return response;
    };
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let status = response.status().as_u16() as i16;
    let result = async {
        let mut tx = state.db.begin(principal.ctx()).await?;
        sqlx_audit_insert(
            &mut tx,
            principal.user_id,
            &method,
            &route,
            status,
            latency_ms,
            ip,
            user_agent,
            request_id,
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(err) = result {
        tracing::error!(error = %crate::error::error_chain(&err), "could not write the audit log");
    }
    response
}

#[allow(clippy::too_many_arguments)]
async fn sqlx_audit_insert(
    tx: &mut ferro_db::TenantTx,
    user_id: uuid::Uuid,
    method: &str,
    route: &str,
    status: i16,
    latency_ms: i32,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
    request_id: Option<String>,
) -> Result<(), ferro_db::DbError> {
    sqlx::query(
        "INSERT INTO audit_logs (tenant_id, user_id, method, route, status, latency_ms, ip, user_agent, request_id) \
         VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user_id)
    .bind(method)
    .bind(route)
    .bind(status)
    .bind(latency_ms)
    .bind(ip)
    .bind(user_agent)
    .bind(request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The answer to a panic in a handler: a bare 500 problem.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
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

/// Pool gauges, refreshed when `/metrics` is scraped.
pub fn record_pool_gauges(state: &AppState) {
    let stats = state.db.pool_stats();
    metrics::gauge!("db_pool_connections", "state" => "open").set(stats.size as f64);
    metrics::gauge!("db_pool_connections", "state" => "idle").set(stats.idle as f64);
    metrics::gauge!("db_pool_connections", "state" => "max").set(stats.max as f64);
    let redis = state.redis.status();
    metrics::gauge!("redis_pool_connections", "state" => "open").set(redis.size as f64);
    metrics::gauge!("redis_pool_connections", "state" => "idle").set(redis.available as f64);
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
    async fn slow_requests_time_out_with_a_503_problem() {
        let limit = Duration::from_millis(50);
        let app: Router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/fast", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(move |req, next| {
                timeout(limit, req, next)
            }));
        let slow = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(slow).await["code"], "timeout");
        let fast = app
            .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        let proxy = Some("127.0.0.1".parse().unwrap());
        let stranger = Some("192.0.2.5".parse().unwrap());
        assert_eq!(
            client_ip(&headers, proxy, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(client_ip(&headers, stranger, &trusted), stranger);
        assert_eq!(client_ip(&HeaderMap::new(), proxy, &trusted), proxy);
    }
}
