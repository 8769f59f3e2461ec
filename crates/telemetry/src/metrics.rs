//! The Prometheus endpoint of the background services (worker, scheduler):
//! a small listener of their own, `GET /metrics` and `GET /health`. The api
//! renders `/metrics` from its own router instead.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Installs the process-wide Prometheus recorder, with histogram buckets
/// (in seconds) for each named histogram. Call once, before recording.
pub fn install_recorder(histograms: &[(&str, &[f64])]) -> PrometheusHandle {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in histograms {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .expect("non-empty buckets");
    }
    builder
        .install_recorder()
        .expect("no other metrics recorder is installed")
}

/// Serves `GET /metrics` (Prometheus text) and `GET /health` (200 while the
/// process runs) on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    stop: CancellationToken,
) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = handle.render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/health", axum::routing::get(|| async { "ok" }));
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %err, "the metrics listener stopped");
    }
}

/// Binds `addr` for [`serve`]; the error names `variable`.
pub async fn bind(variable: &str, addr: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{variable}: cannot listen on {addr}: {e}"))
}
