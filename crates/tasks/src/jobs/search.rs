//! Finding jobs: the filters of `GET /jobs` and of bulk actions, the sort
//! orders, and keyset pages that stay fast however many jobs there are.
//!
//! The statement is written for the filters given (no `$1 IS NULL OR ...`
//! for the ones left out), so the planner sees only the conditions that
//! apply and can drive the scan from the one that selects best: the
//! tenant's jobs newest first (`jobs_tenant_created_idx`), or, for `q`,
//! the trigram indexes on the parameters' text and on the attempts' errors
//! (through `app_jobs_matching`, which applies the tenant itself).

use chrono::{DateTime, SecondsFormat, Utc};
use ferro_db::{DbError, TenantTx};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::job::{COLUMNS, Job};
use crate::JobStatus;

/// At most this many matches are counted: beyond, `total` says "at least".
pub const COUNT_CAP: i64 = 10_000;

/// Which jobs: every field given must match (an empty filter matches all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Any of these statuses (none: any status).
    pub statuses: Vec<JobStatus>,
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub device_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    /// Text anywhere in the parameters or in an attempt's error, matched
    /// case-insensitively and literally (`%` and `_` are themselves).
    pub q: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub finished_after: Option<DateTime<Utc>>,
    pub finished_before: Option<DateTime<Utc>>,
}

impl JobFilter {
    /// True if it would match every job of the tenant.
    pub fn is_empty(&self) -> bool {
        *self == JobFilter::default()
    }

    /// Appends ` AND ...` for each condition to a statement that reads
    /// `jobs` (unaliased).
    pub(crate) fn push_conditions(&self, sql: &mut QueryBuilder<Postgres>) {
        if !self.statuses.is_empty() {
            let statuses: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            sql.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
        if let Some(queue) = &self.queue {
            sql.push(" AND queue = ").push_bind(queue.clone());
        }
        if let Some(kind) = &self.kind {
            sql.push(" AND kind = ").push_bind(kind.clone());
        }
        if let Some(id) = self.device_id {
            sql.push(" AND device_id = ").push_bind(id);
        }
        if let Some(id) = self.schedule_id {
            sql.push(" AND schedule_id = ").push_bind(id);
        }
        if let Some(id) = self.workflow_id {
            sql.push(" AND workflow_id = ").push_bind(id);
        }
        if let Some(q) = &self.q {
            let pattern = like_pattern(q);
            // Through a definer function: under row-level security the
            // planner may not use the trigram indexes for ILIKE.
            sql.push(" AND id IN (SELECT app_jobs_matching(")
                .push_bind(pattern)
                .push("))");
        }
        let ranges = [
            ("created_at >= ", self.created_after),
            ("created_at < ", self.created_before),
            ("finished_at >= ", self.finished_after),
            ("finished_at < ", self.finished_before),
        ];
        for (condition, bound) in ranges {
            if let Some(at) = bound {
                sql.push(" AND ").push(condition).push_bind(at);
            }
        }
    }
}

/// A case-insensitive `ILIKE` pattern matching `q` anywhere, with `%`, `_`
/// and `\` in `q` taken literally.
fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The order of a list: a time, newest (`-`) or oldest first; ties by id.
/// Jobs without the time (not started, not finished) come last newest
/// first, and first oldest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobSort {
    #[default]
    CreatedDesc,
    CreatedAsc,
    StartedDesc,
    StartedAsc,
    FinishedDesc,
    FinishedAsc,
}

impl JobSort {
    pub const ALL: [JobSort; 6] = [
        JobSort::CreatedDesc,
        JobSort::CreatedAsc,
        JobSort::StartedDesc,
        JobSort::StartedAsc,
        JobSort::FinishedDesc,
        JobSort::FinishedAsc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobSort::CreatedDesc => "-created_at",
            JobSort::CreatedAsc => "created_at",
            JobSort::StartedDesc => "-started_at",
            JobSort::StartedAsc => "started_at",
            JobSort::FinishedDesc => "-finished_at",
            JobSort::FinishedAsc => "finished_at",
        }
    }

    pub fn parse(text: &str) -> Option<JobSort> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn descending(self) -> bool {
        matches!(
            self,
            JobSort::CreatedDesc | JobSort::StartedDesc | JobSort::FinishedDesc
        )
    }

    /// The sort key in SQL; `created_at` bare, so that the index serves it.
    fn key_sql(self) -> &'static str {
        match self {
            JobSort::CreatedDesc | JobSort::CreatedAsc => "created_at",
            JobSort::StartedDesc | JobSort::StartedAsc => {
                "coalesce(started_at, '-infinity'::timestamptz)"
            }
            JobSort::FinishedDesc | JobSort::FinishedAsc => {
                "coalesce(finished_at, '-infinity'::timestamptz)"
            }
        }
    }

    fn key_of(self, job: &Job) -> Option<DateTime<Utc>> {
        match self {
            JobSort::CreatedDesc | JobSort::CreatedAsc => Some(job.created_at),
            JobSort::StartedDesc | JobSort::StartedAsc => job.started_at,
            JobSort::FinishedDesc | JobSort::FinishedAsc => job.finished_at,
        }
    }
}

/// Where a keyset page starts: after the job with this sort key and id.
/// Opaque to clients (`next_cursor` of the page before): hex of the
/// sort, the key and the id.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    sort: JobSort,
    /// `None` for a job without the sort's time.
    key: Option<DateTime<Utc>>,
    id: Uuid,
}

impl Cursor {
    fn after(sort: JobSort, job: &Job) -> Cursor {
        Cursor {
            sort,
            key: sort.key_of(job),
            id: job.id,
        }
    }

    pub fn encode(&self) -> String {
        let key = self.key.map_or_else(
            || "-".to_owned(),
            |k| k.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        let text = format!("{}|{key}|{}", self.sort.as_str(), self.id);
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// The cursor, if `text` is one made for `sort`.
    pub fn decode(text: &str, sort: JobSort) -> Option<Cursor> {
        if !text.len().is_multiple_of(2) || text.len() > 256 {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '|');
        let (made_for, key, id) = (parts.next()?, parts.next()?, parts.next()?);
        if made_for != sort.as_str() {
            return None;
        }
        let key = match key {
            "-" => None,
            k => Some(DateTime::parse_from_rfc3339(k).ok()?.with_timezone(&Utc)),
        };
        Some(Cursor {
            sort,
            key,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Which page: by number (with offset), or after a cursor.
#[derive(Debug, Clone, PartialEq)]
pub enum PageAt {
    Offset(i64),
    After(Cursor),
}

/// A page of jobs.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub items: Vec<Job>,
    /// How many jobs match, counted up to [`COUNT_CAP`] (then: at least).
    pub total: i64,
    pub total_capped: bool,
    /// Where the next page starts, if this one was full.
    pub next_cursor: Option<String>,
}

/// A page of the tenant's jobs matching `filter`, in `sort` order.
pub async fn list(
    tx: &mut TenantTx,
    filter: &JobFilter,
    sort: JobSort,
    at: &PageAt,
    size: i64,
) -> Result<JobPage, DbError> {
    // The page and the count in one statement, so that both come from one
    // snapshot; the count stops at the cap so that it costs a bounded walk.
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE true",
    );
    filter.push_conditions(&mut sql);
    sql.push(" LIMIT ")
        .push(COUNT_CAP + 1)
        .push(") counted) AS total, ")
        .push(COLUMNS)
        .push(" FROM jobs WHERE true");
    filter.push_conditions(&mut sql);
    let (key, order) = (
        sort.key_sql(),
        if sort.descending() { "DESC" } else { "ASC" },
    );
    if let PageAt::After(cursor) = at {
        let cmp = if sort.descending() { "<" } else { ">" };
        sql.push(format_args!(" AND ({key}, id) {cmp} ("));
        match cursor.key {
            Some(at) => sql.push_bind(at),
            None => sql.push("'-infinity'::timestamptz"),
        };
        sql.push(", ").push_bind(cursor.id).push(")");
    }
    sql.push(format_args!(" ORDER BY {key} {order}, id {order} LIMIT "))
        .push(size.max(0));
    if let PageAt::Offset(offset) = at {
        sql.push(" OFFSET ").push((*offset).max(0));
    }
    let rows: Vec<CountedJob> = sql.build_query_as().fetch_all(&mut **tx).await?;
    let total = match rows.first() {
        Some(row) => row.total,
        None => count(tx, filter).await?,
    };
    let items: Vec<Job> = rows.into_iter().map(|r| r.job).collect();
    let next_cursor = (items.len() as i64 == size && size > 0)
        .then(|| items.last().map(|job| Cursor::after(sort, job).encode()))
        .flatten();
    Ok(JobPage {
        items,
        total: total.min(COUNT_CAP),
        total_capped: total > COUNT_CAP,
        next_cursor,
    })
}

#[derive(sqlx::FromRow)]
struct CountedJob {
    total: i64,
    #[sqlx(flatten)]
    job: Job,
}

/// How many jobs match, up to the cap plus one.
async fn count(tx: &mut TenantTx, filter: &JobFilter) -> Result<i64, DbError> {
    let mut sql =
        QueryBuilder::<Postgres>::new("SELECT count(*) FROM (SELECT 1 FROM jobs WHERE true");
    filter.push_conditions(&mut sql);
    sql.push(" LIMIT ").push(COUNT_CAP + 1).push(") counted");
    Ok(sql.build_query_scalar::<i64>().fetch_one(&mut **tx).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let cursor = Cursor {
            sort: JobSort::FinishedDesc,
            key: Some(at),
            id: Uuid::nil(),
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, JobSort::FinishedDesc), Some(cursor));
        assert_eq!(Cursor::decode(&text, JobSort::CreatedDesc), None);
        let unset = Cursor {
            sort: JobSort::StartedAsc,
            key: None,
            id: Uuid::nil(),
        };
        assert_eq!(
            Cursor::decode(&unset.encode(), JobSort::StartedAsc),
            Some(unset)
        );
        assert_eq!(Cursor::decode("not a cursor", JobSort::CreatedDesc), None);
    }

    #[test]
    fn sorts_parse_from_their_names_only() {
        for sort in JobSort::ALL {
            assert_eq!(JobSort::parse(sort.as_str()), Some(sort));
        }
        assert_eq!(JobSort::parse("created"), None);
    }

    #[test]
    fn patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
