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
pub mod metrics;
pub mod observe;
pub mod routes;
pub mod state;
pub mod user_managers;

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
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use config::ApiConfig;
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferrostack API", description = "REST API of the Ferrostack backend stack. \
        Errors are application/problem+json (RFC 9457) with a stable `code`."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Login, tokens, sessions"),
        (name = "tenants", description = "Platform administration"),
        (name = "users", description = "Users of the current tenant"),
        (name = "roles", description = "Roles and the permission catalog"),
        (name = "devices", description = "Managed devices"),
        (name = "jobs", description = "Jobs run by the worker"),
        (name = "schedules", description = "Cron schedules fired by the scheduler"),
        (name = "logs", description = "Audit and login logs"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from POST /api/v1/auth/login"))
                    .build(),
            ),
        );
    }
}

/// The `/api/v1` routes with their OpenAPI document.
pub fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let protected = OpenApiRouter::new()
        .merge(auth::router())
        .merge(routes::tenants::router())
        .merge(routes::users::router())
        .merge(routes::roles::router())
        .merge(routes::devices::router())
        .merge(routes::jobs::router())
        .merge(routes::schedules::router())
        .merge(routes::logs::router())
        .merge(routes::monitor::router())
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    let v1 = OpenApiRouter::new()
        .merge(auth::public_router())
        .merge(routes::health::router())
        .merge(protected);
    // Each route carries its full path (`/api/v1/...` in its `#[utoipa::path]`)
    // instead of being nested under `/api/v1`: a nested route rebuilds the
    // request's URI without the prefix on every request.
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(v1)
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi(state: &AppState) -> utoipa::openapi::OpenApi {
    with_request_errors(api_routes(state).into_openapi())
}

/// Adds to every operation the problems its request itself can earn, which
/// the extractors answer alike on every route: 400 for a malformed path
/// parameter or JSON body, 413 and 415 for a body too large or not JSON,
/// 422 for fields or query parameters that are wrong; and the 503 of an
/// unavailable dependency or a request out of time, which any can meet. An operation that
/// documents one of these already keeps its own description.
fn with_request_errors(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{Operation, ParameterIn};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    let complete = |op: &mut Operation| {
        let params = op.parameters.as_deref().unwrap_or_default();
        let located = |place: fn(&ParameterIn) -> bool| {
            params
                .iter()
                .any(|p| matches!(p, RefOr::T(p) if place(&p.parameter_in)))
        };
        let in_path = located(|p| matches!(p, ParameterIn::Path));
        let in_query = located(|p| matches!(p, ParameterIn::Query));
        let body = op.request_body.is_some();
        let mut add = |status: &str, description: &str| {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| problem(description));
        };
        if body || in_path {
            add(
                "400",
                "Malformed request: a path parameter that is not a UUID, or a body that is not a JSON object",
            );
        }
        if body {
            add(
                "413",
                "The body is larger than MAX_BODY_BYTES (1 MiB unless configured)",
            );
            add("415", "The body is not application/json");
        }
        if body || in_query {
            add(
                "422",
                "Invalid fields or query parameters, each named in `errors`",
            );
        }
        add(
            "503",
            "A service the api depends on is unavailable, or the request ran out of time \
             (REQUEST_TIMEOUT_SECONDS)",
        );
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete(op);
        }
    }
    doc
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes(&state).split_for_parts();
    let openapi = with_request_errors(openapi);
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
        .route("/monitor", get(routes::monitor::page))
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
            "JWT_SECRET is not set: using a random secret; tokens die with this process"
        );
    }
    let broker = ferro_broker::Broker::from_config(&config.broker)
        .map_err(|e| anyhow::anyhow!("BROKER_URL: {e}"))?;
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
