//! The scheduler: turns due schedules into jobs, exactly once per slot.
//!
//! Every instance runs this loop; one leads. Leadership is a PostgreSQL
//! advisory lock held on a connection of its own ([`ferro_db::leader`]):
//! standbys try to take it every half second, so one takes over within about
//! a second of the leader's death. The leader asks for due schedules
//! (`scheduler_due`, across tenants), and fires each inside its tenant
//! ([`ferro_tasks::schedules::fire`]): the job and its outbox record are
//! written with the slot as a unique key, so even two instances that both
//! believe they lead cannot make two jobs for one slot. The envelope is
//! published right after commit; the outbox relay covers a broker outage.
//! The leader then sleeps until the next schedule is due, but never longer
//! than half a second, so changes made through the api apply at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chrono::Utc;
use ferro_broker::Broker;
use ferro_config::{ConfigError, Env};
use ferro_db::leader::LeaderLock;
use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs;
use ferro_tasks::queues::QueueTable;
use ferro_tasks::schedules::{self, Fired, ScheduleSpec};
use tokio_util::sync::CancellationToken;

/// The advisory lock key of the scheduler's leadership ("ferrosch").
pub const LEADER_KEY: i64 = 0x6665_7272_6f73_6368;

/// How often a standby tries for the lock, and the leader's longest sleep.
const TICK: Duration = Duration::from_millis(500);

/// The scheduler's own settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// `SCHEDULER_MISFIRE_GRACE_MS`, default 1000: a slot fired at most this
    /// late is on time; later, it was missed, and the schedule's misfire
    /// policy decides.
    pub grace: Duration,
    /// Identifies this instance in logs and its heartbeat (host and pid).
    pub instance: String,
    /// The built-in schedules (`SCHEDULER_CONFIG`, by default
    /// `deploy/schedules.json` when present), synced into tenant `default`
    /// whenever this instance becomes the leader.
    pub builtins: Vec<ScheduleSpec>,
    /// `QUEUES_CONFIG` (default `deploy/queues.json` when present): where
    /// each kind's jobs go.
    pub queues: QueueTable,
}

impl SchedulerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const GRACE: &str = "milliseconds, from 100 to 3600000";
        let grace = env.parse_or("SCHEDULER_MISFIRE_GRACE_MS", 1000u64, GRACE)?;
        if !(100..=3_600_000).contains(&grace) {
            return Err(ConfigError::Invalid {
                variable: "SCHEDULER_MISFIRE_GRACE_MS",
                expected: GRACE,
            });
        }
        let host = ferro_redis::heartbeat::host_name();
        Ok(Self {
            grace: Duration::from_millis(grace),
            instance: format!("{host}:{}", std::process::id()),
            builtins: Vec::new(),
            queues: QueueTable::from_env(env)?,
        })
    }
}

/// Reads the built-in schedules: from `SCHEDULER_CONFIG` (which must exist),
/// else from `deploy/schedules.json` if there is one. Errors name the file,
/// the schedule and the field.
pub fn load_builtins(env: &Env) -> Result<Vec<ScheduleSpec>, String> {
    let (path, required) = match env.raw("SCHEDULER_CONFIG") {
        Some(path) => (std::path::PathBuf::from(path), true),
        None => (std::path::PathBuf::from("deploy/schedules.json"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(err) => {
            return Err(format!(
                "SCHEDULER_CONFIG: cannot read {}: {err}",
                path.display()
            ));
        }
    };
    schedules::parse_config(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Puts the built-in schedules into tenant `default` (idempotent).
async fn sync_builtins(db: &Db, builtins: &[ScheduleSpec]) -> Result<(), DbError> {
    let Some(tenant) = db.scheduler_default_tenant().await? else {
        tracing::warn!("no tenant `default` (run `migrate up`): built-in schedules not loaded");
        return Ok(());
    };
    let mut tx = db.begin(TenantCtx::new(tenant, None)).await?;
    let report = schedules::sync_config(&mut tx, builtins).await?;
    tx.commit().await?;
    for name in &report.conflicts {
        tracing::warn!(name = %name, "a schedule made through the api has this built-in's name; built-in not loaded");
    }
    tracing::info!(
        loaded = report.upserted,
        disabled = report.disabled,
        "built-in schedules synced"
    );
    Ok(())
}

/// What the heartbeat and logs report.
#[derive(Default)]
pub struct Stats {
    pub leading: AtomicBool,
    pub fired: AtomicU64,
    pub skipped: AtomicU64,
    /// The last fire's lag (ms after its slot).
    pub last_lag_ms: AtomicU64,
}

/// Runs until `shutdown`: leads or stands by, and fires due schedules.
pub async fn run(
    db: Db,
    broker: Arc<Broker>,
    mut lock: LeaderLock,
    settings: SchedulerSettings,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    tracing::info!(instance = %settings.instance, "scheduler running; waiting for leadership");
    let mut lost_logged = false;
    loop {
        let was_leading = lock.is_leading();
        let leading = match lock.refresh().await {
            Ok(leading) => {
                lost_logged = false;
                leading
            }
            Err(err) => {
                if !lost_logged {
                    tracing::warn!(error = %err, "lost the database session of the leader lock");
                    lost_logged = true;
                }
                false
            }
        };
        stats.leading.store(leading, Relaxed);
        metrics::gauge!("scheduler_leader").set(if leading { 1.0 } else { 0.0 });
        if leading && !was_leading {
            tracing::info!(instance = %settings.instance, "this scheduler now leads");
            if let Err(err) = sync_builtins(&db, &settings.builtins).await {
                tracing::warn!(error = %err, "could not sync the built-in schedules");
            }
        } else if was_leading && !leading {
            tracing::warn!(instance = %settings.instance, "this scheduler no longer leads");
        }

        let wait = if leading {
            match fire_due(&db, &broker, &settings, &stats).await {
                Ok(()) => until_next_due(&db).await,
                Err(err) => {
                    tracing::warn!(error = %err, "could not fire due schedules");
                    TICK
                }
            }
        } else {
            TICK
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    lock.release().await;
    tracing::info!("scheduler stopped; leadership released");
}

/// How long to sleep: until the next schedule is due, at most [`TICK`].
async fn until_next_due(db: &Db) -> Duration {
    match db.scheduler_next_due().await {
        Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or_default().min(TICK),
        _ => TICK,
    }
}

/// Fires every due schedule, a batch at a time.
async fn fire_due(
    db: &Db,
    broker: &Broker,
    settings: &SchedulerSettings,
    stats: &Stats,
) -> Result<(), DbError> {
    loop {
        let due = db.scheduler_due(100).await?;
        let full = due.len() == 100;
        for schedule in due {
            let ctx = TenantCtx::new(schedule.tenant_id, None);
            let now = Utc::now();
            let grace = chrono::Duration::from_std(settings.grace).unwrap_or_default();
            let mut tx = db.begin(ctx).await?;
            let fired = schedules::fire(&mut tx, schedule.id, now, grace, &settings.queues).await?;
            tx.commit().await?;
            match fired {
                Fired::Job {
                    job,
                    envelope,
                    outbox_id,
                    slot,
                } => {
                    let lag = (Utc::now() - slot).num_milliseconds().max(0) as u64;
                    metrics::counter!("scheduler_fires_total", "outcome" => "job").increment(1);
                    metrics::histogram!("scheduler_fire_lag_seconds").record(lag as f64 / 1000.0);
                    stats.fired.fetch_add(1, Relaxed);
                    stats.last_lag_ms.store(lag, Relaxed);
                    tracing::info!(schedule_id = %schedule.id, tenant_id = %schedule.tenant_id,
                        job_id = %job.id, kind = %job.kind, slot = %slot, lag_ms = lag, "schedule fired");
                    publish(db, broker, ctx, *envelope, outbox_id).await;
                }
                Fired::Skipped => {
                    metrics::counter!("scheduler_fires_total", "outcome" => "skipped").increment(1);
                    stats.skipped.fetch_add(1, Relaxed);
                    tracing::info!(schedule_id = %schedule.id, "missed slots skipped (misfire policy skip)");
                }
                Fired::AlreadyFired => {
                    metrics::counter!("scheduler_fires_total", "outcome" => "already_fired")
                        .increment(1);
                    tracing::info!(schedule_id = %schedule.id, "slot already fired by another scheduler");
                }
                Fired::NotDue => {}
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Publishes right after commit and marks the outbox record; a failure only
/// leaves the record to the relay.
async fn publish(
    db: &Db,
    broker: &Broker,
    ctx: TenantCtx,
    envelope: ferro_tasks::TaskEnvelope,
    outbox_id: i64,
) {
    let job_id = envelope.job_id;
    match tokio::time::timeout(Duration::from_secs(2), broker.publish(&envelope)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(%job_id, error = %err, "publish failed; the outbox relay will retry");
            return;
        }
        Err(_) => {
            tracing::warn!(%job_id, "publish timed out; the outbox relay will retry");
            return;
        }
    }
    let marked = async {
        let mut tx = db.begin(ctx).await?;
        jobs::mark_published(&mut tx, &[outbox_id]).await?;
        tx.commit().await
    }
    .await;
    if let Err(err) = marked {
        tracing::warn!(%job_id, error = %err, "could not mark the outbox record published");
    }
}

/// Writes this instance's heartbeat (`{prefix}schedulers:{instance}`: role,
/// fired, skipped, last lag, beat) every 5 s with a 30 s TTL, until `stop`.
pub async fn heartbeat(
    redis: ferro_redis::RedisPool,
    prefix: String,
    instance: String,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let key = format!("{prefix}schedulers:{instance}");
    let fields = move || {
        let role = if stats.leading.load(Relaxed) {
            "leader"
        } else {
            "standby"
        };
        vec![
            ("instance", instance.clone()),
            ("role", role.to_owned()),
            ("fired", stats.fired.load(Relaxed).to_string()),
            ("skipped", stats.skipped.load(Relaxed).to_string()),
            ("last_lag_ms", stats.last_lag_ms.load(Relaxed).to_string()),
        ]
    };
    ferro_redis::heartbeat::run(
        redis,
        key,
        Duration::from_secs(5),
        Duration::from_secs(30),
        fields,
        stop,
    )
    .await;
}

/// `scheduler ping [--pid N]`: true if an instance on `host` (process `pid`,
/// when given) beat within `fresh`.
pub async fn ping(
    redis: &ferro_redis::RedisPool,
    prefix: &str,
    host: &str,
    pid: Option<u32>,
    fresh: Duration,
) -> Result<bool, ferro_redis::Error> {
    let pid = pid.map_or_else(|| "*".to_owned(), |p| p.to_string());
    ferro_redis::heartbeat::any_fresh(redis, &format!("{prefix}schedulers:{host}:{pid}"), fresh)
        .await
}

/// `scheduler list`: each schedule with its next three fire times.
pub async fn list(db: &Db) -> Result<String, DbError> {
    use std::fmt::Write;
    let mut out = String::new();
    for s in db.scheduler_overview().await? {
        let upcoming = ferro_tasks::cron::CronSpec::parse(&s.cron, &s.timezone)
            .map(|spec| {
                let from = s.next_run_at.map(|n| n - chrono::Duration::milliseconds(1));
                spec.upcoming(from.unwrap_or_else(Utc::now), 3)
                    .iter()
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|_| "invalid".into());
        let _ = writeln!(
            out,
            "{}/{}  {}  [{}]  {}  {}{}  next: {}",
            s.tenant_slug,
            s.name,
            s.kind,
            s.cron,
            s.timezone,
            s.misfire_policy,
            if s.enabled { "" } else { "  (disabled)" },
            if s.enabled { upcoming } else { "-".into() },
        );
    }
    Ok(out)
}

/// Histogram buckets of the scheduler's metrics, in seconds.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[(
    "scheduler_fire_lag_seconds",
    &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ],
)];
