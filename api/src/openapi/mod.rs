//! The OpenAPI document: its frame ([`ApiDoc`]: info, tags, the bearer
//! scheme) and what [`complete`] adds to every operation in one place (the
//! problems any request can earn). Each route documents itself with
//! `#[utoipa::path]` beside its handler.

mod common;
pub mod fields;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

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
        (name = "files", description = "Uploaded files (MIB texts, data models)"),
        (name = "mibs", description = "MIB modules, compiled, and their OID tree"),
        (name = "jobs", description = "Jobs run by the worker"),
        (name = "workflows", description = "Chains, groups and chords of jobs"),
        (name = "operations", description = "Queues and workers (platform administrators)"),
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

/// The document as served: what each route says of itself, completed in
/// one place with what holds for every operation alike ([`common`]).
pub fn complete(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut json = serde_json::to_value(&doc).expect("the document serialises");
    common::add_common_responses(&mut json);
    common::refuse_nul_in_strings(&mut json);
    serde_json::from_value(json).expect("the completed document is still a document")
}
