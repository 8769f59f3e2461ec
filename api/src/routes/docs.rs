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

pub async fn redoc_script() -> Response {
    let mut response = REDOC_JS.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}
