//! The Ferrostack REST API.
//!
//! `main.rs` only loads [`ApiConfig`] and calls [`run`]. [`router`] builds
//! the whole application (used as is by the tests), [`serve`] runs it with
//! graceful shutdown.

pub mod after_request;
pub mod auth;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod extract;
pub mod healthcheck;
pub mod memory;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod pagination;
pub mod routes;
pub mod state;
pub mod submissions;
pub mod user_managers;
pub mod validation;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use config::ApiConfig;
pub use state::AppState;

/// The `/api/v1` routes, each with its part of the OpenAPI document; the
/// protected ones behind [`auth::authenticate`].
pub fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let protected =
        protected_routes().route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    public_routes().merge(protected)
}

/// The routes anyone may call.
fn public_routes() -> OpenApiRouter<AppState> {
    // Each route carries its full path (`/api/v1/...` in its `#[utoipa::path]`)
    // instead of being nested under `/api/v1`: a nested route rebuilds the
    // request's URI without the prefix on every request.
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(auth::public_router())
        .merge(routes::health::router())
}

/// The routes for signed-in callers.
fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(routes::tenants::router())
        .merge(routes::users::router())
        .merge(routes::roles::router())
        .merge(routes::devices::router())
        .merge(routes::files::router())
        .merge(routes::mibs::router())
        .merge(routes::jobs::router())
        .merge(routes::workflows::router())
        .merge(routes::rate_limits::router())
        .merge(routes::queues::router())
        .merge(routes::workers::router())
        .merge(routes::schedules::router())
        .merge(routes::logs::router())
        .merge(routes::monitor::router())
}

/// The OpenAPI document, as served at `/openapi.json` (and printed by
/// `api openapi`): needs no running service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let routes = public_routes().merge(protected_routes());
    openapi::complete(routes.into_openapi())
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes(&state).split_for_parts();
    let openapi = openapi::complete(openapi);
    let http = &state.config.http;
    let cors = if http.cors_origins.is_empty() {
        None
    } else {
        let origins = if http.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                http.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    HeaderName::from_static(observe::REQUEST_ID),
                    HeaderName::from_static("idempotency-key"),
                    // Sent by jobs clients: the caller's trace, and an event
                    // stream's reconnect.
                    HeaderName::from_static("traceparent"),
                    HeaderName::from_static("last-event-id"),
                ])
                // What a browser client needs to read: its request's id, how
                // long to wait after a 429 or 503, a replayed job, and where
                // a created resource or a download is.
                .expose_headers([
                    HeaderName::from_static(observe::REQUEST_ID),
                    axum::http::header::RETRY_AFTER,
                    HeaderName::from_static("idempotent-replayed"),
                    axum::http::header::LOCATION,
                    axum::http::header::CONTENT_DISPOSITION,
                ])
                .max_age(std::time::Duration::from_secs(600)),
        )
    };

    let routes = Router::new()
        .merge(api)
        .merge(
            Router::from(
                SwaggerUi::new("/docs")
                    .url("/openapi.json", openapi)
                    // No badge from validator.swagger.io: the page loads nothing from outside.
                    .config(
                        utoipa_swagger_ui::Config::new(["/openapi.json"]).validator_url("none"),
                    ),
            )
            .layer(axum::middleware::map_response(
                routes::docs::cache_swagger_assets,
            )),
        )
        .route("/monitor", get(routes::monitor_page::page))
        .route("/monitor/{file}", get(routes::monitor_page::asset))
        .route("/redoc", get(routes::docs::redoc_page))
        .route(
            "/redoc/redoc.standalone.js",
            get(routes::docs::redoc_script),
        );
    with_middleware(routes, cors, state)
}

/// The fallbacks and the middleware every request goes through, around
/// `routes`: request id, span, time limit, metrics and audit (`observe`),
/// panics caught, CORS, compression, the body limits.
fn with_middleware(routes: Router<AppState>, cors: Option<CorsLayer>, state: AppState) -> Router {
    let max_body = state.config.http.max_body_bytes;
    routes
        .fallback(observe::not_found)
        .method_not_allowed_fallback(observe::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state.clone(), observe::observe))
                .layer(CatchPanicLayer::custom(observe::panic_response))
                .option_layer(cors)
                .layer(CompressionLayer::new())
                .layer(DefaultBodyLimit::max(max_body))
                .layer(RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT)),
        )
        .with_state(state)
}

/// `routes` (signed-in callers only) inside the api's whole middleware
/// stack: for tests of what the stack does around a handler (a panic, say)
/// that no real route can be made to do.
#[doc(hidden)]
pub fn protected_with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let routes = routes.route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    with_middleware(routes, None, state)
}

/// How long a request body may go without sending anything: a client that
/// stalls while sending its body gets a 408 (`body_timeout`), not the 503
/// of a handler that ran out of time.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects to PostgreSQL and Redis and builds the state.
pub async fn build_state(config: ApiConfig) -> anyhow::Result<AppState> {
    let db = ferro_db::Db::connect(&config.database, config.app_env, "api").await?;
    let redis = ferro_redis::create_pool(
        config.redis.url.expose(),
        16,
        std::time::Duration::from_secs(2),
    )
    .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
    if config.http.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: signing with the development secret (never in production)"
        );
    }
    let files = ferro_files::Storage::new(&config.uploads);
    let swept = files
        .prepare(std::time::Duration::from_secs(3600))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "UPLOADS_DIR: cannot use {}: {e}",
                config.uploads.dir.display()
            )
        })?;
    if swept > 0 {
        tracing::info!(swept, "removed partial uploads left by an earlier crash");
    }
    let broker = ferro_broker::Broker::from_config(&config.broker)
        .map_err(|e| anyhow::anyhow!("BROKER_URL: {e}"))?
        .with_queues(config.queues.names());
    Ok(AppState::new(
        config,
        db,
        redis,
        broker,
        metrics::Metrics::install(),
    ))
}

/// Serves `state`'s application on `listener` until `shutdown` resolves;
/// in-flight requests then get `SHUTDOWN_GRACE_SECONDS` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.config.http.shutdown_grace;
    let app = router(state.clone());
    // Start-up is over: what it allocated and freed, and the code only it
    // ran, leave the resident set.
    memory::give_back();
    memory::drop_start_up_pages();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stopping = state.stopping.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        stopping.cancel();
        let _ = stop_tx.send(true);
    });
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = server.into_future() => {
            // Mutations whose clients went away are not on any connection
            // the server waited for; they get the same grace.
            state.requests.close();
            if tokio::time::timeout(grace, state.requests.wait()).await.is_err() {
                tracing::warn!(grace_secs = grace.as_secs(), "abandoned mutations did not finish in time");
            }
            result
        }
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
            Ok(())
        }
    };
    state.db.close().await;
    result
}

/// Binds `HOST:PORT` and serves until SIGTERM or SIGINT.
pub async fn run(config: ApiConfig) -> anyhow::Result<()> {
    let addr = format!("{}:{}", config.http.host, config.http.port);
    let state = build_state(config).await?;
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "could not listen on {addr} (HOST and PORT): is another process using the port?"
            )
        })?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    serve(listener, state, ferro_telemetry::shutdown_signal()).await?;
    tracing::info!("api stopped");
    Ok(())
}
