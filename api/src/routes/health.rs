//! Liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{Problem, with_problem_type};
use crate::metrics::record_pool_gauges;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(live_alias))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    pub database: &'static str,
    pub redis: &'static str,
    pub broker: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub checks: Checks,
}

/// The 503 answer: a problem (RFC 9457, code `not_ready`, `detail` naming
/// what is down) with the checks as an extension member.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    #[serde(flatten)]
    pub problem: Problem,
    pub checks: Checks,
}

/// Liveness: the process answers. Touches nothing.
#[utoipa::path(get, path = "/api/v1/health", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Liveness at the root, for probes that do not know the API's prefix.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn live_alias() -> axum::Json<Health> {
    live().await
}

/// Readiness: PostgreSQL, Redis and the broker all answer.
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "health",
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Something is down; `detail` names it", body = NotReady, content_type = "application/problem+json")))]
async fn ready(State(state): State<AppState>) -> Response {
    let (db, redis, broker) = tokio::join!(
        async { state.db.ping(CHECK_TIMEOUT).await.is_ok() },
        check_redis(&state.redis),
        check_broker(&state),
    );
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let down: Vec<&str> = [("database", db), ("redis", redis), ("broker", broker)]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();
    let checks = Checks {
        database: word(db),
        redis: word(redis),
        broker: word(broker),
    };
    if down.is_empty() {
        return axum::Json(Readiness {
            status: "ok",
            checks,
        })
        .into_response();
    }
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let detail = format!("not ready: {} down", down.join(", "));
    let body = NotReady {
        problem: Problem::new(status, "not_ready", &detail),
        checks,
    };
    with_problem_type(status, serde_json::to_vec(&body).unwrap_or_default())
}

async fn check_redis(pool: &ferro_redis::RedisPool) -> bool {
    let ping = async {
        let mut conn = ferro_redis::connection(pool).await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Some(_)))
}

/// The broker is usable with the api's own client and credentials
/// (`Broker::check`: for RabbitMQ its publishing connection, logged in and
/// with the vhost open; a PING for Redis Streams). A server that answers but
/// refuses the login is down for this api.
async fn check_broker(state: &AppState) -> bool {
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, state.broker.check()).await,
        Ok(Ok(()))
    )
}

/// Prometheus text format: requests by method, route template and status
/// (count and latency histogram), requests in flight, database pool gauges.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    record_pool_gauges(&state.db, &state.redis);
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
