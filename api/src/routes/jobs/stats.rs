//! `GET /api/v1/jobs/stats`: the tenant's throughput, failures and
//! latencies per kind over a window, for the monitor's charts.

use axum::extract::State;
use ferro_tasks::jobs::{self, KindSeries, Window};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Guard, JobsRead};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::validation::Validator;

/// The most points a series may have (window / bucket).
const MAX_POINTS: i64 = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// How far back: a number and `s`, `m`, `h` or `d`, at most 31 days
    /// (default `1h`).
    #[param(pattern = "^[0-9]{1,6}[smhd]$", example = "1h")]
    pub window: Option<String>,
    /// The width of each point, the same way, at least 10 s and at most
    /// the window, with at most 1,000 points (default `1m`).
    #[param(pattern = "^[0-9]{1,6}[smhd]$", example = "1m")]
    pub bucket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    #[schema(example = "1h")]
    pub window: String,
    #[schema(example = "1m")]
    pub bucket: String,
    /// One series per kind that had attempts end in the window.
    pub series: Vec<KindSeries>,
}

/// Per kind, for each bucket of the window: attempts that succeeded,
/// failed for good, or were retried, and the 50th and 95th percentiles of
/// run time and of first attempts' wait, computed from the attempts'
/// history.
#[utoipa::path(get, path = "/api/v1/jobs/stats", tag = "jobs", security(("bearer" = ["jobs:read"])), params(StatsQuery),
    responses((status = 200, description = "The series", body = Stats),
        (status = 422, description = "Bad window or bucket", body = Problem, content_type = "application/problem+json")))]
async fn job_stats(
    State(state): State<AppState>,
    guard: Guard<JobsRead>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<axum::Json<Stats>, ApiError> {
    let window_text = q.window.unwrap_or_else(|| "1h".to_owned());
    let bucket_text = q.bucket.unwrap_or_else(|| "1m".to_owned());
    let mut v = Validator::default();
    let window = Window::parse(&window_text).filter(|w| w.0 <= chrono::Duration::days(31));
    v.check(
        window.is_some(),
        "window",
        "a number and s, m, h or d, up to 31 days",
    );
    let bucket = Window::parse(&bucket_text).filter(|b| b.0 >= chrono::Duration::seconds(10));
    v.check(
        bucket.is_some(),
        "bucket",
        "a number and s, m, h or d, at least 10 s",
    );
    if let (Some(w), Some(b)) = (window, bucket) {
        v.check(
            b.0 <= w.0 && w.0.num_seconds() / b.0.num_seconds() <= MAX_POINTS,
            "bucket",
            "at most the window, and at most 1000 points in it",
        );
    }
    v.finish()?;
    let (window, bucket) = (window.expect("checked"), bucket.expect("checked"));
    let mut tx = state.db.begin(guard.ctx()).await?;
    let series = jobs::stats(&mut tx, window, bucket, chrono::Utc::now()).await?;
    tx.end_read_only();
    Ok(axum::Json(Stats {
        window: window_text,
        bucket: bucket_text,
        series,
    }))
}
