//! The API's one error type, and the one place errors become HTTP responses:
//! `application/problem+json` (RFC 9457) with a stable `code`, and for
//! validation errors an `errors: [{field, message}]` list. Bodies never carry
//! internal details; 5xx causes are logged with their whole chain instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferro_db::DbError;
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<ferro_tasks::kinds::ParamError> for FieldError {
    fn from(err: ferro_tasks::kinds::ParamError) -> Self {
        FieldError::new(err.field, err.message)
    }
}

/// A problem document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:ferrostack:problem:validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "the request has invalid fields",
    "code": "validation_failed",
    "errors": [{"field": "port", "message": "must be between 1 and 65535"}]
}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<&'static str>,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the file is larger than {limit} bytes (UPLOAD_MAX_BYTES)")]
    FileTooLarge { limit: u64 },
    #[error("too many attempts; try again later")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    #[error("the request took too long")]
    Timeout,
    #[error("the client stopped sending the request body")]
    BodyTimeout,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn field(field: &str, message: &str) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(err))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge | ApiError::FileTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge | ApiError::FileTooLarge { .. } => "payload_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let errors = match self {
            ApiError::Validation(errors) => errors.clone(),
            ApiError::Conflict {
                detail,
                field: Some(field),
            } => vec![FieldError::new(*field, detail.clone())],
            _ => Vec::new(),
        };
        Problem {
            kind: format!("urn:ferrostack:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
            errors,
        }
    }
}

/// A bare problem response for the given status (used where no `ApiError`
/// exists: panics, unmatched routes).
pub fn problem_response(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = Problem::new(status, code, detail);
    with_problem_type(status, serde_json::to_vec(&body).unwrap_or_default())
}

impl Problem {
    /// A problem with no field errors.
    pub fn new(status: StatusCode, code: &str, detail: &str) -> Self {
        Problem {
            kind: format!("urn:ferrostack:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.to_owned(),
            code: code.to_owned(),
            errors: Vec::new(),
        }
    }
}

/// `body` (a serialized problem, or a problem with extension members) with
/// `status` and the problem content type.
pub fn with_problem_type(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %error_chain(&self), code = self.code(), "request failed");
        }
        let problem = self.problem();
        let mut response = with_problem_type(
            self.status(),
            serde_json::to_vec(&problem).unwrap_or_default(),
        );
        match &self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

pub use ferro_telemetry::error_chain;

/// Constraint names mapped to the field and message a client can act on.
/// Handlers validate first; these catch what only the database can know
/// (uniqueness, references) and anything validation missed.
fn constraint_field(constraint: &str) -> (&'static str, &'static str) {
    match constraint {
        "tenants_slug_key" => ("slug", "a tenant with this slug already exists"),
        "tenants_slug_format" => ("slug", "must be lowercase letters, digits and dashes"),
        "users_username_key" => ("username", "this username is taken"),
        "users_username_format" => ("username", "must be 3-64 letters, digits or ._@-"),
        "users_email_format" => ("email", "must be an email address"),
        "memberships_pkey" => ("username", "the user is already a member"),
        "roles_tenant_name_key" => ("name", "a role with this name already exists"),
        "roles_name_format" => ("name", "must be lowercase letters, digits, _ or -"),
        "devices_tenant_name_key" => ("name", "a device with this name already exists"),
        "devices_port_range" => ("port", "must be between 1 and 65535"),
        "devices_protocol_check" => ("protocol", "must be snmp or http"),
        "devices_host_format" => ("host", "must be a host name or IP address"),
        "devices_snmp_settings" => ("snmp", "is required for snmp devices"),
        "devices_tags_count" => ("tags", "at most 32 tags"),
        "jobs_device_fkey" | "schedules_device_fkey" => ("device_id", "no such device"),
        "schedules_tenant_name_key" => ("name", "a schedule with this name already exists"),
        "role_permissions_permission_fkey" => ("permissions", "unknown permission"),
        _ => ("", ""),
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(_) => {
                tracing::warn!(error = %error_chain(&err), "database unavailable");
                ApiError::Unavailable("database")
            }
            DbError::NotFound => ApiError::NotFound("resource"),
            DbError::UniqueViolation { ref constraint } => {
                let (field, message) = constraint_field(constraint);
                ApiError::Conflict {
                    detail: if message.is_empty() {
                        "conflicts with an existing resource".to_owned()
                    } else {
                        message.to_owned()
                    },
                    field: (!field.is_empty()).then_some(field),
                }
            }
            DbError::ForeignKeyViolation { ref constraint }
            | DbError::CheckViolation { ref constraint } => {
                let (field, message) = constraint_field(constraint);
                if field.is_empty() {
                    ApiError::Validation(vec![FieldError::new("", "the request violates a rule")])
                } else {
                    ApiError::field(field, message)
                }
            }
            DbError::NotNullViolation { column } => {
                ApiError::Validation(vec![FieldError::new(column, "is required")])
            }
            DbError::InvalidValue { .. } => ApiError::Validation(vec![FieldError::new(
                "",
                "a value is out of range or malformed",
            )]),
            DbError::PermissionDenied(_) => ApiError::Forbidden("not permitted".to_owned()),
            other => ApiError::internal(other),
        }
    }
}

impl From<ferro_auth::StoreError> for ApiError {
    fn from(err: ferro_auth::StoreError) -> Self {
        match err {
            ferro_auth::StoreError::Unavailable(_) | ferro_auth::StoreError::Redis(_) => {
                tracing::warn!(error = %error_chain(&err), "redis unavailable");
                ApiError::Unavailable("session store")
            }
            other => ApiError::internal(other),
        }
    }
}

/// Redis away (the rate limits' store): 503, the cause logged.
impl From<ferro_redis::Error> for ApiError {
    fn from(err: ferro_redis::Error) -> Self {
        tracing::warn!(error = %error_chain(&err), "redis unavailable");
        ApiError::Unavailable("redis")
    }
}

impl From<ferro_tasks::kinds::ParamError> for ApiError {
    fn from(err: ferro_tasks::kinds::ParamError) -> Self {
        ApiError::Validation(vec![err.into()])
    }
}

impl From<Vec<ferro_tasks::kinds::ParamError>> for ApiError {
    fn from(errors: Vec<ferro_tasks::kinds::ParamError>) -> Self {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        ApiError::from(DbError::from(err))
    }
}
