//! `/redoc`: the API reference rendered by Redoc, with its script served by
//! the api itself (no CDN). Swagger UI (`/docs`) comes from
//! utoipa-swagger-ui's vendored build, wired in `lib.rs`.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

pub async fn redoc_page() -> Html<&'static str> {
    Html(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Ferrostack API reference</title></head><body>",
        "<redoc spec-url=\"/openapi.json\"></redoc>",
        "<script src=\"/redoc/redoc.standalone.js\"></script></body></html>\n"
    ))
}

/// How long browsers may keep the docs' scripts, styles and images: they
/// change only with a release.
const ASSET_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=86400");

pub async fn redoc_script() -> Response {
    let mut response = REDOC_JS.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, ASSET_CACHE);
    response
}

/// For Swagger UI's router (`map_response`): its scripts, styles and images
/// get [`ASSET_CACHE`] (utoipa-swagger-ui sends no caching headers, so its
/// 1.5 MB bundle was fetched again on every visit); its page and the
/// document stay uncached.
pub async fn cache_swagger_assets(mut response: Response) -> Response {
    let asset = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("text/javascript")
                || t.starts_with("application/javascript")
                || t.starts_with("text/css")
                || t.starts_with("image/")
        });
    if asset && response.status().is_success() {
        response
            .headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(ASSET_CACHE);
    }
    response
}
