//! `/api/v1/mibs`: MIB modules. Uploading stores each file (as
//! `/api/v1/files` does) and submits a `mib.compile` job, which compiles the
//! tenant's modules with the new ones (the worker, `ferro_mibs::compile`);
//! the modules and the OID tree it leaves are browsed here.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_files::FileRecord;
use ferro_mibs::{MibModule, MibNode, NodeSummary, records};
use ferro_tasks::jobs::{self, Enqueued, Job, NewJob};
use ferro_tasks::{JobKind, TraceContext};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::files::{UploadForm, multipart_error, store, unexpected_part};
use crate::auth::{DevicesRead, DevicesWrite, Guard};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::submissions::Submission;
use crate::validation::{Validator, like_pattern};

/// The most files one upload may hold.
const MAX_FILES: usize = 50;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_modules, upload_mibs))
        .routes(routes!(mib_objects))
        .layer(DefaultBodyLimit::disable())
}

/// The compile an upload started, and the files it stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct MibUpload {
    /// The `mib.compile` job: follow it at `/api/v1/jobs/{id}`.
    pub job: Job,
    pub files: Vec<FileRecord>,
}

/// Uploads MIB files (multipart, one or more `file` parts, each at most
/// `UPLOAD_MAX_BYTES`) and compiles them with the tenant's other modules:
/// 202 with the `mib.compile` job. A module with a problem is stored with
/// its diagnostics (`GET /api/v1/mibs`), not a failed job.
#[utoipa::path(post, path = "/api/v1/mibs", tag = "mibs", security(("bearer" = ["devices:write"])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Stored; the compile is queued", body = MibUpload, headers(("Location" = String, description = "Where the job is"))),
        (status = 400, description = "A malformed multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A file larger than UPLOAD_MAX_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `file` part, another part, or too many files", body = Problem, content_type = "application/problem+json")))]
async fn upload_mibs(
    State(state): State<AppState>,
    guard: Guard<DevicesWrite>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut form = form.map_err(|e| ApiError::UnsupportedMediaType(e.body_text()))?;
    let mut files: Vec<FileRecord> = Vec::new();
    let outcome = async {
        while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
            if field.name() != Some("file") {
                return Err(unexpected_part(&field));
            }
            if files.len() == MAX_FILES {
                return Err(ApiError::field("file", "at most 50 files an upload"));
            }
            files.push(store(&state, &guard, &mut field).await?);
        }
        if files.is_empty() {
            return Err(ApiError::field("file", "is required"));
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        // A refused upload leaves nothing: the files stored before the
        // refusal go again.
        for file in &files {
            super::files::remove_stored(&state, &guard, file.id).await;
        }
        return Err(e);
    }
    let params = json!({"file_ids": files.iter().map(|f| f.id).collect::<Vec<_>>()});
    let enqueued = state
        .submissions
        .submit(Submission {
            ctx: guard.ctx(),
            job: NewJob {
                kind: JobKind::MibCompile,
                device_id: None,
                params,
                idempotency_key: None,
                schedule_id: None,
                scheduled_for: None,
                relay_after: jobs::PUBLISHED_BY_WRITER,
                trace: Some(TraceContext::root(uuid::Uuid::new_v4().as_u128())),
                deadline: None,
                options: jobs::JobOptions {
                    queue: Some(state.config.queues.route(JobKind::MibCompile).to_owned()),
                    ..Default::default()
                },
                step: None,
            },
            audit: None,
        })
        .await?;
    let job = match enqueued {
        Enqueued::Created { job, .. } => job,
        // No idempotency key and no uniqueness: a new job every time.
        _ => {
            return Err(ApiError::internal(std::io::Error::other(
                "a compile job without a key was not created",
            )));
        }
    };
    tracing::info!(job_id = %job.id, files = files.len(), "MIB upload: compile queued");
    let location = format!("/api/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        axum::Json(MibUpload { job, files }),
    )
        .into_response())
}

/// The tenant's MIB modules, by name, as their last compile left them.
#[utoipa::path(get, path = "/api/v1/mibs", tag = "mibs", security(("bearer" = ["devices:read"])), params(PageParams),
    responses((status = 200, description = "A page of modules", body = Paginated<MibModule>)))]
async fn list_modules(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Paginated<MibModule>>, ApiError> {
    let paging = page.paging()?;
    let mut tx = state.db.begin(guard.ctx()).await?;
    let (items, total) = records::modules(&mut tx, paging.size, paging.offset()).await?;
    tx.end_read_only();
    Ok(axum::Json(Paginated::new(items, total, paging)))
}

/// Which objects: exactly one of `oid`, `name` or `q`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ObjectQuery {
    /// A node by its numeric OID (`1.3.6.1.2.1.1`).
    #[param(
        pattern = r"^\.?[0-9]{1,10}(\.[0-9]{1,10}){0,127}$",
        example = "1.3.6.1.2.1"
    )]
    oid: Option<String>,
    /// A node by its name, or `MODULE::name`.
    #[param(max_length = 255, example = "SNMPv2-MIB::sysDescr")]
    name: Option<String>,
    /// Text in names and descriptions.
    #[param(min_length = 1, max_length = 200)]
    q: Option<String>,
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    size: Option<i64>,
}

/// A node with its children.
#[derive(Debug, Serialize, ToSchema)]
pub struct MibObject {
    #[serde(flatten)]
    pub node: MibNode,
    /// The nodes under it, by arc.
    pub children: Vec<NodeSummary>,
}

/// Nodes whose name or description holds the text, names first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MibSearch {
    pub items: Vec<NodeSummary>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MibObjects {
    Object(Box<MibObject>),
    Search(MibSearch),
}

/// One node of the tenant's OID tree (by `oid` or `name`) with its
/// children, or a search (`q`) of names and descriptions.
#[utoipa::path(get, path = "/api/v1/mibs/objects", tag = "mibs", security(("bearer" = ["devices:read"])), params(ObjectQuery),
    responses((status = 200, description = "The node and its children, or a page of matches", body = MibObjects),
        (status = 404, description = "No such node in the tenant's tree", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not exactly one of oid, name and q", body = Problem, content_type = "application/problem+json")))]
async fn mib_objects(
    State(state): State<AppState>,
    guard: Guard<DevicesRead>,
    ApiQuery(query): ApiQuery<ObjectQuery>,
) -> Result<axum::Json<MibObjects>, ApiError> {
    let mut v = Validator::default();
    let given = [query.oid.is_some(), query.name.is_some(), query.q.is_some()];
    v.check(
        given.iter().filter(|g| **g).count() == 1,
        "oid",
        "give exactly one of oid, name and q",
    );
    let oid = query.oid.as_deref().map(|o| o.trim_start_matches('.'));
    if let Some(oid) = oid {
        v.check(
            ferro_tasks::kinds::oid_arcs(oid).is_some() || valid_prefix(oid),
            "oid",
            "a numeric OID such as 1.3.6.1.2.1",
        );
    }
    if let Some(name) = &query.name {
        v.check(
            !name.is_empty() && name.chars().count() <= 255,
            "name",
            "1 to 255 characters",
        );
    }
    if let Some(q) = &query.q {
        v.check(
            !q.is_empty() && q.chars().count() <= 200,
            "q",
            "1 to 200 characters",
        );
    }
    let paging = PageParams {
        page: query.page,
        size: query.size,
    }
    .validate(&mut v.0);
    v.finish()?;

    let mut tx = state.db.begin(guard.ctx()).await?;
    let answer = if let Some(q) = &query.q {
        let (items, total) =
            records::search(&mut tx, &like_pattern(q), paging.size, paging.offset()).await?;
        MibObjects::Search(MibSearch {
            items,
            total,
            page: paging.page,
            size: paging.size,
        })
    } else {
        let node = match (oid, &query.name) {
            (Some(oid), _) => records::node_by_oid(&mut tx, oid).await?,
            (None, Some(name)) => {
                let (module, name) = match name.split_once("::") {
                    Some((module, name)) => (Some(module), name),
                    None => (None, name.as_str()),
                };
                records::node_by_name(&mut tx, module, name).await?
            }
            (None, None) => None,
        }
        .ok_or(ApiError::NotFound("MIB object"))?;
        let children = records::children(&mut tx, &node.oid).await?;
        MibObjects::Object(Box::new(MibObject { node, children }))
    };
    tx.end_read_only();
    Ok(axum::Json(answer))
}

/// `1` or `1.3` (shorter than a full OID's two arcs, still a tree node).
fn valid_prefix(oid: &str) -> bool {
    !oid.is_empty() && oid.len() <= 10 && oid.bytes().all(|b| b.is_ascii_digit())
}
