//! `/monitor`: the operator's page (what Flower is to Celery), served by the
//! api itself so it works with no CDN and under the proxy's
//! Content-Security-Policy (`script-src 'self'`). It holds no data: it signs
//! in with `POST /api/v1/auth/login` (tokens in the tab's sessionStorage) and
//! is built on the api's own endpoints (jobs search and actions, queues,
//! workers, schedules, statistics) and the tenant's job WebSocket.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use crate::extract::ApiPath;

/// The page's scripts and style, by file name.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/monitor/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/monitor/api.js"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/monitor/jobs.js"),
    ),
    (
        "ops.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/monitor/ops.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/monitor/charts.js"),
    ),
    (
        "monitor.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/monitor/monitor.css"),
    ),
];

/// `GET /monitor`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../../assets/monitor/index.html"))
}

/// `GET /monitor/{file}`: the page's scripts and style. They change with a
/// release only, but a release must reach open tabs, so browsers revalidate
/// (`no-cache`) rather than keep them blindly.
pub async fn asset(ApiPath(file): ApiPath<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            *body,
        )
            .into_response(),
        None => crate::observe::not_found().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_the_page_imports_is_served() {
        let served: Vec<&str> = super::ASSETS.iter().map(|(name, _, _)| *name).collect();
        let sources = super::ASSETS
            .iter()
            .map(|(_, _, body)| *body)
            .chain([include_str!("../../assets/monitor/index.html")]);
        for source in sources {
            for (at, _) in source.match_indices("\"/monitor/") {
                let rest = &source[at + 10..];
                let name = &rest[..rest.find('"').unwrap()];
                assert!(served.contains(&name), "/monitor/{name} is not served");
            }
        }
    }
}
