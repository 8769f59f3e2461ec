//! The api's Prometheus metrics: the recorder (rendered at `/metrics`), the
//! per-request series, requests in flight, and the connection pools.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::Method;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The Prometheus recorder, installed once per process.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn install() -> Self {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        let handle = HANDLE
            .get_or_init(|| {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full("http_request_duration_seconds".to_owned()),
                        &[
                            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                            10.0,
                        ],
                    )
                    .expect("non-empty buckets")
                    .install_recorder()
                    .expect("no other metrics recorder is installed")
            })
            .clone();
        Self { handle }
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Metric handles per route template, then method and status, so that a
/// request neither builds label sets nor allocates to find its series.
type Series = Vec<(&'static str, u16, Counter, Histogram)>;
static SERIES: LazyLock<RwLock<HashMap<Box<str>, Series>>> = LazyLock::new(Default::default);
static IN_FLIGHT: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!("http_requests_in_flight"));

fn series(method: &Method, route: &str, status: u16) -> (Counter, Histogram) {
    let method = method_label(method);
    let found = SERIES
        .read()
        .expect("metrics lock")
        .get(route)
        .and_then(|list| {
            list.iter()
                .find(|(m, s, _, _)| *m == method && *s == status)
                .map(|(_, _, c, h)| (c.clone(), h.clone()))
        });
    if let Some(handles) = found {
        return handles;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let counter = metrics::counter!("http_requests_total", &labels);
    let histogram = metrics::histogram!("http_request_duration_seconds", &labels);
    SERIES
        .write()
        .expect("metrics lock")
        .entry(route.into())
        .or_default()
        .push((method, status, counter.clone(), histogram.clone()));
    (counter, histogram)
}

/// The method as a metric label: the standard ones by name, any other as
/// `OTHER`, so that requests with invented methods cannot add series without
/// bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// A request counted in `http_requests_in_flight` until it ends. One that
/// ends without an answer, because its client went away and hyper dropped
/// it, is counted with status 499 (nginx's "client closed request").
pub struct InFlight {
    method: Method,
    route: Option<MatchedPath>,
    started: Instant,
    answered: bool,
}

impl InFlight {
    pub fn start(method: Method, route: Option<MatchedPath>, started: Instant) -> Self {
        IN_FLIGHT.increment(1.0);
        Self {
            method,
            route,
            started,
            answered: false,
        }
    }

    pub fn route(&self) -> &str {
        self.route.as_ref().map_or("unmatched", MatchedPath::as_str)
    }

    fn record(&self, status: u16) {
        let (count, latency) = series(&self.method, self.route(), status);
        count.increment(1);
        latency.record(self.started.elapsed().as_secs_f64());
    }

    pub fn finish(&mut self, status: u16) {
        self.record(status);
        self.answered = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.decrement(1.0);
        if !self.answered {
            self.record(CLIENT_CLOSED_REQUEST);
        }
    }
}

/// The status counted for requests whose client left before the answer.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Pool gauges, refreshed when `/metrics` is scraped.
pub fn record_pool_gauges(db: &ferro_db::Db, redis: &ferro_redis::RedisPool) {
    let stats = db.pool_stats();
    metrics::gauge!("db_pool_connections", "state" => "open").set(stats.size as f64);
    metrics::gauge!("db_pool_connections", "state" => "idle").set(stats.idle as f64);
    metrics::gauge!("db_pool_connections", "state" => "max").set(stats.max as f64);
    let redis = redis.status();
    metrics::gauge!("redis_pool_connections", "state" => "open").set(redis.size as f64);
    metrics::gauge!("redis_pool_connections", "state" => "idle").set(redis.available as f64);
}
