//! The baseline for the api's health benchmark: a bare axum handler with no
//! middleware, answering what `/api/v1/health` answers. Usage: `baseline-health PORT`.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18100);
    let app = Router::new().route(
        "/api/v1/health",
        get(|| async { axum::Json(serde_json_ok()) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}

fn serde_json_ok() -> std::collections::BTreeMap<&'static str, &'static str> {
    std::collections::BTreeMap::from([("status", "ok")])
}
