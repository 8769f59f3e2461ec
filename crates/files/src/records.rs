//! The `files` table: one record per stored file, in the tenant's
//! transaction (row-level security keeps each tenant to its own).

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use uuid::Uuid;

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FileRecord {
    pub id: Uuid,
    /// The name the client gave (its last path segment): shown, never used
    /// as a path.
    #[schema(example = "IF-MIB.txt")]
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// What the content's first bytes show (`text/plain`, `application/zip`,
    /// `application/xml`, ...), not what the client claimed.
    #[schema(example = "text/plain")]
    pub content_type: String,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
}

/// What [`insert`] writes.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    pub content_type: &'a str,
}

const COLUMNS: &str = "id, name, size, sha256, content_type, created_at";

pub async fn insert(tx: &mut TenantTx, file: &NewFile<'_>) -> Result<FileRecord, DbError> {
    let (tenant, user) = (tx.tenant_id(), tx.user_id());
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO files (id, tenant_id, name, size, sha256, content_type, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(file.id)
    .bind(tenant)
    .bind(file.name)
    .bind(file.size as i64)
    .bind(file.sha256)
    .bind(file.content_type)
    .bind(user)
    .fetch_one(&mut **tx)
    .await?)
}

/// A page of the tenant's files, newest first, and how many there are.
pub async fn list(
    tx: &mut TenantTx,
    size: i64,
    offset: i64,
) -> Result<(Vec<FileRecord>, i64), DbError> {
    let items: Vec<FileRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM files ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    )))
    .bind(size)
    .bind(offset)
    .fetch_all(&mut **tx)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM files")
        .fetch_one(&mut **tx)
        .await?;
    Ok((items, total))
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<FileRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM files WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Deletes the record; the caller removes the bytes once this commits.
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<FileRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM files WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}
