//! The resources under `/api/v1`, one module each; each owns its router,
//! handlers and SQL.

pub mod devices;
pub mod docs;
pub mod files;
pub mod health;
pub mod jobs;
pub mod logs;
pub mod mibs;
pub mod monitor;
pub mod monitor_page;
pub mod queues;
pub mod rate_limits;
pub mod roles;
pub mod schedules;
pub mod tenants;
pub mod users;
pub mod workers;
pub mod workflows;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// An answer that points at a resource: `status` with `Location:
/// /api/v1/{collection}/{id}` and the resource as JSON (201 for a created
/// resource, 202 for an accepted job).
pub(crate) struct At<T> {
    status: StatusCode,
    location: String,
    body: T,
}

impl<T> At<T> {
    pub(crate) fn created(collection: &str, id: Uuid, body: T) -> Self {
        Self::new(StatusCode::CREATED, collection, id, body)
    }

    pub(crate) fn new(status: StatusCode, collection: &str, id: Uuid, body: T) -> Self {
        Self {
            status,
            location: format!("/api/v1/{collection}/{id}"),
            body,
        }
    }
}

impl<T: serde::Serialize> IntoResponse for At<T> {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::LOCATION, self.location)],
            axum::Json(self.body),
        )
            .into_response()
    }
}
