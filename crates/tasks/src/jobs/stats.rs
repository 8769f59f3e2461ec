//! A tenant's job statistics over a window, per kind and time bucket: how
//! many attempts succeeded, failed for good or were retried, and the 50th
//! and 95th percentiles of their run time and of the wait of first
//! attempts (from ready to started).
//!
//! Computed when asked from `job_attempts`, whose covering index on
//! (tenant, finished_at) makes it an index-only scan of the window's
//! attempts: exact percentiles, nothing to keep in step, and a cost that
//! grows with the window's attempts, not with the jobs kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;

/// A length of time as the query gives it: `90s`, `15m`, `1h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub Duration);

/// The width of a point of the series, written like a [`Window`].
pub type Bucket = Window;

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        let split = text.len().checked_sub(1)?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() || number.len() > 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i64 = number.parse().ok()?;
        let span = match unit {
            "s" => Duration::seconds(n),
            "m" => Duration::minutes(n),
            "h" => Duration::hours(n),
            "d" => Duration::days(n),
            _ => return None,
        };
        (n > 0).then_some(Window(span))
    }
}

/// One bucket of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Point {
    /// The bucket's start.
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub at: DateTime<Utc>,
    pub succeeded: i64,
    /// Attempts that failed with none left (the job failed).
    pub failed: i64,
    /// Attempts that failed with another to come.
    pub retried: i64,
    #[schema(required = true)]
    pub run_p50_ms: Option<f64>,
    #[schema(required = true)]
    pub run_p95_ms: Option<f64>,
    /// First attempts: from ready (created, or due) to started.
    #[schema(required = true)]
    pub wait_p50_ms: Option<f64>,
    #[schema(required = true)]
    pub wait_p95_ms: Option<f64>,
}

impl Point {
    fn empty(at: DateTime<Utc>) -> Point {
        Point {
            at,
            succeeded: 0,
            failed: 0,
            retried: 0,
            run_p50_ms: None,
            run_p95_ms: None,
            wait_p50_ms: None,
            wait_p95_ms: None,
        }
    }
}

/// One kind's series: a point for every bucket of the window, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KindSeries {
    pub kind: String,
    pub points: Vec<Point>,
}

#[derive(sqlx::FromRow)]
struct Row {
    kind: String,
    #[sqlx(flatten)]
    point: Point,
}

/// The series of every kind with attempts that ended in the `window`
/// before `now`, in buckets of `bucket` aligned to the bucket's width.
/// The caller keeps `window / bucket` to a sane number of points.
pub async fn stats(
    tx: &mut TenantTx,
    window: Window,
    bucket: Bucket,
    now: DateTime<Utc>,
) -> Result<Vec<KindSeries>, DbError> {
    let origin = (now - window.0)
        .duration_trunc(bucket.0)
        .unwrap_or(now - window.0);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT kind, date_bin(make_interval(secs => $1), finished_at, $2) AS at, \
           count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded, \
           count(*) FILTER (WHERE outcome = 'failed') AS failed, \
           count(*) FILTER (WHERE outcome = 'retried') AS retried, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY run_ms) \
             FILTER (WHERE outcome IN ('succeeded', 'failed', 'retried', 'cancelled')) AS run_p50_ms, \
           percentile_cont(0.95) WITHIN GROUP (ORDER BY run_ms) \
             FILTER (WHERE outcome IN ('succeeded', 'failed', 'retried', 'cancelled')) AS run_p95_ms, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms) FILTER (WHERE attempt = 1) AS wait_p50_ms, \
           percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms) FILTER (WHERE attempt = 1) AS wait_p95_ms \
         FROM (SELECT kind, finished_at, outcome, attempt, \
                 extract(epoch FROM finished_at - started_at)::float8 * 1000 AS run_ms, \
                 extract(epoch FROM started_at - queued_at)::float8 * 1000 AS wait_ms \
               FROM job_attempts WHERE finished_at >= $2 AND finished_at < $3) a \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(bucket.0.num_seconds() as f64)
    .bind(origin)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let mut by_kind: BTreeMap<String, BTreeMap<DateTime<Utc>, Point>> = BTreeMap::new();
    for row in rows {
        by_kind
            .entry(row.kind)
            .or_default()
            .insert(row.point.at, row.point);
    }
    let starts: Vec<DateTime<Utc>> = std::iter::successors(Some(origin), |at| Some(*at + bucket.0))
        .take_while(|at| *at < now)
        .collect();
    Ok(by_kind
        .into_iter()
        .map(|(kind, mut points)| KindSeries {
            kind,
            points: starts
                .iter()
                .map(|at| points.remove(at).unwrap_or_else(|| Point::empty(*at)))
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_a_number_and_a_unit() {
        assert_eq!(Window::parse("90s"), Some(Window(Duration::seconds(90))));
        assert_eq!(Window::parse("1h"), Some(Window(Duration::hours(1))));
        assert_eq!(Window::parse("7d"), Some(Window(Duration::days(7))));
        for bad in ["", "h", "0m", "1w", "-1h", "1.5h", "1234567h", "1 h"] {
            assert_eq!(Window::parse(bad), None, "{bad}");
        }
    }
}
