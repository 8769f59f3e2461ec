//! Extractors whose rejections are problem+json: malformed JSON (400), wrong
//! content type (415), unknown or mistyped fields (422 naming the field),
//! bad path parameters (400), bad query strings (422), oversized bodies (413),
//! and text holding U+0000 (422 naming the field: PostgreSQL stores no NUL
//! in `text` or `jsonb`, so it must not get that far).

use axum::body::Bytes;
use axum::extract::rejection::{
    JsonRejection, MissingJsonContentType, PathRejection, QueryRejection,
};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// `Json<T>` with problem+json rejections.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(json_rejection(MissingJsonContentType::default().into()));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(e.into()))?;
        // The escape is the only way a NUL can be in a JSON text; the rare
        // body that has one is parsed once more to find where.
        if bytes.windows(NUL_ESCAPE.len()).any(|w| w == NUL_ESCAPE)
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
        {
            let mut errors = Vec::new();
            nul_fields(&value, &mut String::new(), &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
        }
        // Every body here is an object; serde would also take a struct's
        // fields from an array, by position.
        if bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b != b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(ApiError::BadRequest {
                code: "not_an_object",
                detail: "the request body must be a JSON object".to_owned(),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            // JSON Schema calls `3.0` an integer, and so does the document:
            // a body refused for such a number is read again with it
            // written as one (only this rare body pays for the second read).
            Err(JsonRejection::JsonDataError(rejection))
                if rejection.body_text().contains("floating point") =>
            {
                let mut value: Value =
                    serde_json::from_slice(&bytes).map_err(|_| malformed_json())?;
                ferro_tasks::kinds::whole_numbers(&mut value);
                serde_json::from_value(value)
                    .map(ApiJson)
                    .map_err(|_| json_rejection(JsonRejection::JsonDataError(rejection)))
            }
            // serde stops at the first problem it meets, so a body cut off
            // after an unknown key reads as a data error: it is malformed.
            Err(JsonRejection::JsonDataError(_))
                if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() =>
            {
                Err(malformed_json())
            }
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Content-Type: application/json` or `application/*+json`, as axum's `Json`
/// decides it.
fn json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

const NUL_ESCAPE: &[u8] = b"\\u0000";
const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// The paths (`params.subject`, `tags[1]`, as serde names them) of the keys
/// and strings in `value` that hold a NUL.
fn nul_fields(value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(s) if s.contains('\0') => {
            errors.push(FieldError::new(path.clone(), NUL_MESSAGE));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                nul_fields(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if key.contains('\0') {
                    errors.push(FieldError::new(path.clone(), NUL_MESSAGE));
                } else {
                    nul_fields(item, path, errors);
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "expected a JSON body with Content-Type: application/json".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(_) => malformed_json(),
        JsonRejection::JsonDataError(err) => {
            let text = std::error::Error::source(&err)
                .map(|s| s.to_string())
                .unwrap_or_else(|| err.body_text());
            ApiError::Validation(vec![serde_field_error(&text, "")])
        }
        JsonRejection::BytesRejection(err) => {
            if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else if caused_by::<tower_http::timeout::TimeoutError>(&err) {
                ApiError::BodyTimeout
            } else {
                ApiError::BadRequest {
                    code: "unreadable_body",
                    detail: "the request body could not be read".to_owned(),
                }
            }
        }
        other => ApiError::BadRequest {
            code: "bad_request",
            detail: other.body_text(),
        },
    }
}

fn malformed_json() -> ApiError {
    ApiError::BadRequest {
        code: "malformed_json",
        detail: "the request body is not valid JSON".to_owned(),
    }
}

/// Whether `E` is anywhere in `err`'s chain of causes.
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<E>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A field error from serde's message through serde_path_to_error
/// (`path: message`): the field is the path, or `root` when there is none; a
/// missing field is named with its parent's path (`snmp.community`: "is
/// required"), and the JSON position (`at line 1 column 48`) is dropped.
fn serde_field_error(text: &str, root: &str) -> FieldError {
    let (path, message) = match text.split_once(": ") {
        Some((path, msg)) if !path.contains(' ') && path != "." => (path, msg),
        Some((".", msg)) => ("", msg),
        _ => ("", text),
    };
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    };
    let join = |parent: &str, name: &str| {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .filter(|name| !name.is_empty())
    };
    if let Some(name) = named("missing field `") {
        return FieldError::new(join(path, name), "is required");
    }
    if path.is_empty()
        && let Some(name) = named("unknown field `").or_else(|| named("duplicate field `"))
    {
        return FieldError::new(name.to_owned(), message.to_owned());
    }
    let field = if path.is_empty() { root } else { path };
    FieldError::new(field.to_owned(), message.to_owned())
}

/// `Path<T>` with problem+json rejections.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection: PathRejection| ApiError::BadRequest {
                code: "invalid_path",
                detail: match rejection {
                    PathRejection::FailedToDeserializePathParams(_) => {
                        "a path parameter is malformed (expected a UUID)".to_owned()
                    }
                    other => other.body_text(),
                },
            })
    }
}

/// `Query<T>` with problem+json rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.contains("%00")
            && let Ok(axum::extract::Query(pairs)) =
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        {
            let errors: Vec<FieldError> = pairs
                .iter()
                .filter(|(k, v)| k.contains('\0') || v.contains('\0'))
                .map(|(k, _)| FieldError::new(k.replace('\0', ""), NUL_MESSAGE))
                .collect();
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
        }
        if let Some(merged) = repeated_keys_joined(query) {
            return serde_urlencoded::from_str::<T>(&merged)
                .map(ApiQuery)
                .map_err(|err| {
                    ApiError::Validation(vec![serde_field_error(&err.to_string(), "query")])
                });
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection: QueryRejection| {
                let text = rejection.body_text();
                let message = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::Validation(vec![serde_field_error(message, "query")])
            })
    }
}

/// A query string whose repeated parameters (`status=a&status=b`) are
/// joined into one, comma-separated (`status=a,b`), which is how the lists
/// take several values of a filter; `None` if no parameter repeats.
fn repeated_keys_joined(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let given = pairs.len();
    let mut merged: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => merged.push((key, value)),
        }
    }
    if merged.len() == given {
        return None;
    }
    serde_urlencoded::to_string(&merged).ok()
}

#[cfg(test)]
mod tests {
    use super::{repeated_keys_joined, serde_field_error};

    #[test]
    fn repeated_parameters_are_joined_with_commas() {
        assert_eq!(
            repeated_keys_joined("status=failed&size=5&status=cancelled").as_deref(),
            Some("status=failed%2Ccancelled&size=5")
        );
        assert_eq!(repeated_keys_joined("status=failed&size=5"), None);
    }

    fn pair(text: &str, root: &str) -> (String, String) {
        let e = serde_field_error(text, root);
        (e.field.to_string(), e.message.to_string())
    }

    #[test]
    fn serde_messages_become_named_fields() {
        let cases = [
            (
                ".: missing field `name` at line 1 column 48",
                ("name", "is required"),
            ),
            (
                "snmp: missing field `community` at line 1 column 90",
                ("snmp.community", "is required"),
            ),
            (
                "port: invalid type: string \"x\", expected i32 at line 1 column 12",
                ("port", "invalid type: string \"x\", expected i32"),
            ),
            (
                "tags[1]: invalid type: integer `3`, expected a string",
                ("tags[1]", "invalid type: integer `3`, expected a string"),
            ),
            (
                ".: unknown field `colour`, expected `name` or `tags`",
                (
                    "colour",
                    "unknown field `colour`, expected `name` or `tags`",
                ),
            ),
            ("expected value at line 1 column 1", ("", "expected value")),
        ];
        for (text, (field, message)) in cases {
            assert_eq!(
                pair(text, ""),
                (field.to_owned(), message.to_owned()),
                "{text}"
            );
        }
        // A query's message with no path names the query.
        assert_eq!(
            pair("size: invalid digit found in string", "query").0,
            "size"
        );
        assert_eq!(pair("something odd", "query").0, "query");
    }
}
