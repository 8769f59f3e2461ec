//! `/api/v1/files`: the tenant's uploaded files. An upload streams to disk
//! as it arrives (`ferro_files::Upload`: hashed, counted against
//! `UPLOAD_MAX_BYTES`, its type sniffed from its first bytes), is renamed
//! into place under its id, and becomes visible when its record commits.
//! Reading needs `devices:read`, uploading and deleting `devices:write`:
//! files are the device domain's material (MIB texts, data models).

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferro_files::{FileRecord, NewFile, records};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{DevicesRead, DevicesWrite, Guard};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_files, upload_file))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(file_content))
        // An upload is limited by `UPLOAD_MAX_BYTES` as it streams
        // (`Upload::write`), not by the api's general body limit.
        .layer(DefaultBodyLimit::disable())
}

/// The multipart form of an upload (for the OpenAPI document; the handler
/// reads the parts as they stream).
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its name is kept to show, its content type is sniffed.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Stores a file (multipart, part `file`), streamed to storage: at most
/// `UPLOAD_MAX_BYTES` (default 20 MiB).
#[utoipa::path(post, path = "/api/v1/files", tag = "files", security(("bearer" = ["devices:write"])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored", body = FileRecord, headers(("Location" = String, description = "Where the new resource is"))),
        (status = 400, description = "A malformed multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than UPLOAD_MAX_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `file` part, or another part", body = Problem, content_type = "application/problem+json")))]
async fn upload_file(
    State(state): State<AppState>,
    guard: Guard<DevicesWrite>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<super::At<FileRecord>, ApiError> {
    let mut form = form.map_err(|e| ApiError::UnsupportedMediaType(e.body_text()))?;
    let mut field = match form.next_field().await.map_err(multipart_error)? {
        Some(field) if field.name() == Some("file") => field,
        Some(field) => return Err(unexpected_part(&field)),
        None => return Err(ApiError::field("file", "is required")),
    };
    let record = store(&state, &guard, &mut field).await?;
    drop(field);
    if let Some(extra) = form.next_field().await.map_err(multipart_error)? {
        // Only one file a request: the one stored goes again.
        remove(&state, &guard, record.id).await?;
        return Err(unexpected_part(&extra));
    }
    tracing::info!(file_id = %record.id, size = record.size, content_type = %record.content_type, "file stored");
    Ok(super::At::created("files", record.id, record))
}

/// Streams the part to disk, then writes its record and puts the bytes in
/// place in one step: either both are there, or neither.
pub(crate) async fn store(
    state: &AppState,
    guard: &Guard<DevicesWrite>,
    field: &mut Field<'_>,
) -> Result<FileRecord, ApiError> {
    let name = display_name(field.file_name());
    let mut upload = state
        .files
        .begin(guard.tenant_id)
        .await
        .map_err(file_error)?;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        upload.write(&chunk).await.map_err(file_error)?;
    }
    let received = upload.finish().await.map_err(file_error)?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let record = records::insert(
        &mut tx,
        &NewFile {
            id: upload.id(),
            name: &name,
            size: received.size,
            sha256: &received.sha256,
            content_type: received.content_type,
        },
    )
    .await?;
    upload.place().await.map_err(|e| file_error(e.into()))?;
    if let Err(e) = tx.commit().await {
        let _ = state.files.remove(guard.tenant_id, record.id).await;
        return Err(e.into());
    }
    Ok(record)
}

/// The name to show: the last segment of what the client sent, without
/// control characters, at most 255 characters; `upload` if nothing is left.
fn display_name(sent: Option<&str>) -> String {
    let last = sent.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "upload".to_owned()
    } else {
        clean.to_owned()
    }
}

pub(super) fn unexpected_part(field: &Field<'_>) -> ApiError {
    ApiError::field(
        field.name().unwrap_or("(unnamed part)"),
        "is not taken: send one part named `file`",
    )
}

pub(super) fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    ApiError::BadRequest {
        code: "bad_multipart",
        detail: format!("the multipart body is malformed: {}", e.body_text()),
    }
}

fn file_error(e: ferro_files::FileError) -> ApiError {
    match e {
        ferro_files::FileError::TooLarge { limit } => ApiError::FileTooLarge { limit },
        ferro_files::FileError::Db(e) => e.into(),
        other => ApiError::internal(other),
    }
}

/// Lists the tenant's files, newest first.
#[utoipa::path(get, path = "/api/v1/files", tag = "files", security(("bearer" = ["devices:read"])), params(PageParams),
    responses((status = 200, description = "A page of files", body = Paginated<FileRecord>),
        (status = 422, description = "Bad paging", body = Problem, content_type = "application/problem+json")))]
async fn list_files(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<FileRecord>>, ApiError> {
    let paging = page.paging()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let (items, total) = records::list(&mut tx, paging.size, paging.offset()).await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// A file's record.
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = ["devices:read"])),
    params(("id" = Uuid, Path, description = "File id")),
    responses((status = 200, description = "The file's record", body = FileRecord),
        (status = 404, description = "No such file in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn get_file(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::Json<FileRecord>, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let record = records::get(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    tx.end_read_only();
    Ok(axum::Json(record))
}

/// The file's bytes, as an attachment (never shown inline).
#[utoipa::path(get, path = "/api/v1/files/{id}/content", tag = "files", security(("bearer" = ["devices:read"])),
    params(("id" = Uuid, Path, description = "File id")),
    responses((status = 200, description = "The content (Content-Disposition: attachment), typed as sniffed at upload", body = String, content_type = "*/*"),
        (status = 404, description = "No such file in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn file_content(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    let record = records::get(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    tx.end_read_only();
    let file = state
        .files
        .open(guard.tenant_id, id)
        .await
        .map_err(|e| file_error(e.into()))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, record.content_type.clone()),
            (header::CONTENT_LENGTH, record.size.to_string()),
            (header::CONTENT_DISPOSITION, attachment(&record.name)),
        ],
        body,
    )
        .into_response())
}

/// `attachment` with the name: an ASCII fallback and the exact UTF-8 name
/// (RFC 6266, RFC 8187).
fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Deletes a file: its record, then its bytes.
#[utoipa::path(delete, path = "/api/v1/files/{id}", tag = "files", security(("bearer" = ["devices:write"])),
    params(("id" = Uuid, Path, description = "File id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such file in this tenant", body = Problem, content_type = "application/problem+json")))]
async fn delete_file(
    State(state): State<AppState>,
    guard: Guard<DevicesWrite>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &guard, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a file stored earlier in a request that was then refused: its
/// record and bytes; a failure is logged (an unlisted file at worst).
pub(super) async fn remove_stored(state: &AppState, guard: &Guard<DevicesWrite>, id: Uuid) {
    if let Err(e) = remove(state, guard, id).await {
        tracing::warn!(file_id = %id, error = %e, "could not remove the file of a refused upload");
    }
}

async fn remove(state: &AppState, guard: &Guard<DevicesWrite>, id: Uuid) -> Result<(), ApiError> {
    let mut tx = state.db.begin(guard.ctx()).await?;
    records::delete(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    tx.commit().await?;
    state
        .files
        .remove(guard.tenant_id, id)
        .await
        .map_err(|e| file_error(e.into()))
}

#[cfg(test)]
mod tests {
    use super::{attachment, display_name};

    #[test]
    fn names_are_shown_never_used_as_paths() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("C:\\mibs\\IF-MIB.txt")), "IF-MIB.txt");
        assert_eq!(display_name(Some("..")), "upload");
        assert_eq!(display_name(Some("a\u{0}b\nc")), "abc");
        assert_eq!(display_name(None), "upload");
        assert_eq!(display_name(Some(&"x".repeat(300))).len(), 255);
    }

    #[test]
    fn a_download_names_its_file_safely() {
        assert_eq!(
            attachment("IF-MIB.txt"),
            "attachment; filename=\"IF-MIB.txt\"; filename*=UTF-8''IF-MIB.txt"
        );
        assert_eq!(
            attachment("a \"b\".txt"),
            "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt"
        );
        assert_eq!(
            attachment("grüß"),
            "attachment; filename=\"gr__\"; filename*=UTF-8''gr%C3%BC%C3%9F"
        );
    }
}
