//! The worker: consumes task envelopes from the broker and runs the jobs,
//! and runs the outbox relay.
//!
//! For each delivery: claim the job with a guarded UPDATE inside the job's
//! tenant (a duplicate or a job another worker holds is not run twice), run
//! its handler under a time limit while renewing the lease and watching for
//! cancellation, record the outcome, and only then ack. Failures with
//! attempts left go back through the outbox with exponential backoff; the
//! rest fail and are dead-lettered. On shutdown the worker stops taking
//! deliveries, gives running jobs a grace period, and hands the rest back.

pub mod batch;
mod email;
pub mod handlers;
pub mod metrics;
mod snmp;

use std::sync::Arc;
use std::time::Duration;

use ferro_broker::{Broker, Delivery};
use ferro_config::{ConfigError, Env};
use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs::{self, Finish, NotClaimed};
use ferro_tasks::{JobKind, JobStatus, TaskEnvelope};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use batch::Recorder;
use handlers::{JobContext, JobError};
use metrics::Outcome;

/// The worker's own settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `WORKER_CONCURRENCY` (or `--concurrency`), default 8: jobs run at once,
    /// and the broker prefetch.
    pub concurrency: usize,
    /// `WORKER_LEASE_SECONDS`, default 30: how long a claim holds without renewal.
    pub lease: Duration,
    /// `WORKER_SHUTDOWN_GRACE_SECONDS`, default 30: how long running jobs may
    /// finish after SIGTERM before they are handed back.
    pub grace: Duration,
    /// Identifies this worker in `jobs.worker_id` (host and pid).
    pub worker_id: String,
    /// `SMTP_URL` / `SMTP_FROM`, for `email.send`; `None` when unset.
    pub smtp: Option<ferro_config::SmtpConfig>,
}

impl WorkerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let concurrency = env.parse_or(
            "WORKER_CONCURRENCY",
            8usize,
            "a number of jobs from 1 to 1000",
        )?;
        if !(1..=1000).contains(&concurrency) {
            return Err(ConfigError::Invalid {
                variable: "WORKER_CONCURRENCY",
                expected: "a number of jobs from 1 to 1000",
            });
        }
        let lease = env.parse_or("WORKER_LEASE_SECONDS", 30u64, "seconds, at least 2")?;
        if lease < 2 {
            return Err(ConfigError::Invalid {
                variable: "WORKER_LEASE_SECONDS",
                expected: "seconds, at least 2",
            });
        }
        let grace = env.parse_or(
            "WORKER_SHUTDOWN_GRACE_SECONDS",
            30u64,
            "a whole number of seconds",
        )?;
        let host = host_name();
        Ok(Self {
            concurrency,
            lease: Duration::from_secs(lease),
            grace: Duration::from_secs(grace),
            worker_id: format!("{host}:{}", std::process::id()),
            smtp: ferro_config::SmtpConfig::from_env(env)?,
        })
    }
}

/// Where job events go: the tenant's Redis pub/sub channel.
///
/// Events are handed to one publisher task, which sends whatever has queued
/// up meanwhile as one pipeline: a busy worker pays one round trip for many
/// events, an idle one sends each at once, and every job's events reach
/// Redis in the order they were published.
#[derive(Clone)]
pub struct Events {
    pub redis: ferro_redis::RedisPool,
    pub prefix: String,
    queue: tokio::sync::mpsc::Sender<Outgoing>,
}

enum Outgoing {
    Event {
        channel: String,
        payload: String,
    },
    /// Answered once everything queued before it was sent.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Events waiting for the publisher; a publisher that falls this far behind
/// slows the jobs down instead of growing without bound.
const EVENTS_QUEUED: usize = 10_000;
/// Most events in one pipeline.
const EVENTS_PER_PIPELINE: usize = 256;

impl Events {
    /// Starts the publisher task (on the current runtime); it ends when the
    /// last clone is dropped, after sending what is queued.
    pub fn new(redis: ferro_redis::RedisPool, prefix: String) -> Self {
        let (queue, receiver) = tokio::sync::mpsc::channel(EVENTS_QUEUED);
        tokio::spawn(publish_events(redis.clone(), receiver));
        Self {
            redis,
            prefix,
            queue,
        }
    }

    /// Publishes a change of a job, from the state its statement returned;
    /// best effort (events are a view, the database is the record).
    pub async fn publish(&self, tenant_id: uuid::Uuid, state: &jobs::JobState) {
        let event = ferro_tasks::events::JobEvent::of_state(state);
        self.send(tenant_id, &event).await;
    }

    /// Publishes the job's current state, read from the database (for the
    /// paths where no statement of ours returned it).
    pub async fn emit(&self, db: &Db, ctx: TenantCtx, job_id: uuid::Uuid) {
        let read = async {
            let mut tx = db.begin(ctx).await?;
            let job = jobs::get(&mut tx, job_id).await?;
            tx.end_read_only();
            Ok::<_, DbError>(job)
        }
        .await;
        match read {
            Ok(Some(job)) => {
                let event = ferro_tasks::events::JobEvent::of(&job);
                self.send(ctx.tenant_id, &event).await;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%job_id, error = %err, "could not read the job for its event")
            }
        }
    }

    /// Waits until every event published so far has been sent to Redis (or
    /// failed to be).
    pub async fn flush(&self) {
        let (done, sent) = tokio::sync::oneshot::channel();
        if self.queue.send(Outgoing::Flush(done)).await.is_ok() {
            let _ = sent.await;
        }
    }

    async fn send(&self, tenant_id: uuid::Uuid, event: &ferro_tasks::events::JobEvent) {
        let payload = match serde_json::to_string(event) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(job_id = %event.job_id, error = %err, "could not encode a job event");
                return;
            }
        };
        let channel = ferro_tasks::events::channel(&self.prefix, tenant_id);
        if self
            .queue
            .send(Outgoing::Event { channel, payload })
            .await
            .is_err()
        {
            tracing::warn!(job_id = %event.job_id, "the event publisher has stopped");
        }
    }
}

/// The publisher task: sends the queued events in order, a pipeline at a time.
async fn publish_events(
    redis: ferro_redis::RedisPool,
    mut queue: tokio::sync::mpsc::Receiver<Outgoing>,
) {
    let mut taken = Vec::with_capacity(EVENTS_PER_PIPELINE);
    let mut events = Vec::with_capacity(EVENTS_PER_PIPELINE);
    let mut flushed = Vec::new();
    while queue.recv_many(&mut taken, EVENTS_PER_PIPELINE).await > 0 {
        for item in taken.drain(..) {
            match item {
                Outgoing::Event { channel, payload } => events.push((channel, payload)),
                Outgoing::Flush(done) => flushed.push(done),
            }
        }
        if let Err(err) = ferro_redis::publish_many(&redis, &events).await {
            tracing::warn!(events = events.len(), error = %err, "could not publish job events");
        }
        events.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Counters the heartbeat reports.
#[derive(Default)]
pub struct Stats {
    pub active: std::sync::atomic::AtomicU64,
    pub processed: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// How often the worker writes its heartbeat, and how long one lives.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const HEARTBEAT_TTL: Duration = Duration::from_secs(30);

fn heartbeat_key(prefix: &str, worker_id: &str) -> String {
    format!("{prefix}workers:{worker_id}")
}

/// Writes this worker's heartbeat (a Redis hash with a TTL) every
/// [`HEARTBEAT_EVERY`] until `stop`; removes it on the way out.
async fn heartbeat(
    events: Events,
    settings: WorkerSettings,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let key = heartbeat_key(&events.prefix, &settings.worker_id);
    let started = chrono::Utc::now().to_rfc3339();
    let host = settings
        .worker_id
        .rsplit_once(':')
        .map(|(h, _)| h.to_owned())
        .unwrap_or_default();
    let fields = move || {
        vec![
            ("worker_id", settings.worker_id.clone()),
            ("host", host.clone()),
            ("pid", std::process::id().to_string()),
            ("concurrency", settings.concurrency.to_string()),
            ("active", stats.active.load(Relaxed).to_string()),
            ("processed", stats.processed.load(Relaxed).to_string()),
            ("failed", stats.failed.load(Relaxed).to_string()),
            ("started", started.clone()),
        ]
    };
    ferro_redis::heartbeat::run(
        events.redis,
        key,
        HEARTBEAT_EVERY,
        HEARTBEAT_TTL,
        fields,
        stop,
    )
    .await;
}

/// `worker ping [--pid N]`: true if a worker on `host` (process `pid`, when
/// given) wrote its heartbeat within `fresh`.
pub async fn ping(
    redis: &ferro_redis::RedisPool,
    prefix: &str,
    host: &str,
    pid: Option<u32>,
    fresh: Duration,
) -> Result<bool, String> {
    let pid = pid.map_or_else(|| "*".to_owned(), |p| p.to_string());
    ferro_redis::heartbeat::any_fresh(redis, &format!("{prefix}workers:{host}:{pid}"), fresh).await
}

/// This machine's host name, as the heartbeat records it.
pub fn host_name() -> String {
    ferro_redis::heartbeat::host_name()
}

/// The jobs this worker has claimed and not yet ended, with their tenants:
/// what it gives back if its shutdown grace runs out.
#[derive(Clone, Default)]
struct Claims(Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, TenantCtx>>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<uuid::Uuid, TenantCtx>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a claimed job until the returned guard is dropped (the job
    /// ended, or its task was aborted).
    fn hold(&self, job_id: uuid::Uuid, ctx: TenantCtx) -> ClaimHeld {
        self.lock().insert(job_id, ctx);
        ClaimHeld {
            claims: self.clone(),
            job_id,
        }
    }
}

struct ClaimHeld {
    claims: Claims,
    job_id: uuid::Uuid,
}

impl Drop for ClaimHeld {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.job_id);
    }
}

/// Gives the jobs back whose runs the grace period cut short
/// ([`jobs::hand_back`]): their attempts do not count.
async fn hand_back(db: &Db, worker_id: &str, left: Vec<(uuid::Uuid, TenantCtx)>) {
    for (job_id, ctx) in left {
        let given = async {
            let mut tx = db.begin(ctx).await?;
            let given = jobs::hand_back(&mut tx, job_id, worker_id).await?;
            tx.commit().await?;
            Ok::<_, DbError>(given)
        }
        .await;
        match given {
            Ok(true) => tracing::info!(%job_id, "job handed back; its attempt does not count"),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%job_id, error = %err, "could not hand the job back; its lease will run out")
            }
        }
    }
}

/// Backoff before attempt `attempt + 1`: 1 s, 2 s, 4 s, ... at most 10 minutes.
pub fn backoff(attempt: i32) -> Duration {
    Duration::from_secs(1u64 << (attempt.clamp(1, 10) - 1)).min(Duration::from_secs(600))
}

/// Consumes and runs jobs until `shutdown` is cancelled.
pub async fn run(
    db: Db,
    broker: Arc<Broker>,
    events: Option<Events>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) {
    let mut consumer = broker.consumer(
        settings.concurrency.min(u16::MAX as usize) as u16,
        &settings.worker_id,
    );
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let recorder = Recorder::new(db.clone(), settings.worker_id.clone(), settings.lease);
    let claims = Claims::default();
    let mut running = JoinSet::new();
    let stats = Arc::new(Stats::default());
    let beat_stop = CancellationToken::new();
    metrics::set_concurrency(settings.concurrency);
    let depths = tokio::spawn(metrics::report_queue_depths(
        broker.clone(),
        beat_stop.clone(),
    ));
    let beating = events.clone().map(|events| {
        tokio::spawn(heartbeat(
            events,
            settings.clone(),
            stats.clone(),
            beat_stop.clone(),
        ))
    });
    tracing::info!(worker_id = %settings.worker_id, concurrency = settings.concurrency, "worker consuming");
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            delivery = consumer.next() => delivery,
        };
        let (db, recorder, broker, settings, events, stats, claims) = (
            db.clone(),
            recorder.clone(),
            broker.clone(),
            settings.clone(),
            events.clone(),
            stats.clone(),
            claims.clone(),
        );
        running.spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            stats.active.fetch_add(1, Relaxed);
            metrics::job_started();
            let jobs = Jobs {
                db: &db,
                recorder: &recorder,
                broker: &broker,
                events: events.as_ref(),
                settings: &settings,
                claims: &claims,
            };
            let failed = process(jobs, delivery).await;
            metrics::job_ended();
            stats.active.fetch_sub(1, Relaxed);
            stats.processed.fetch_add(1, Relaxed);
            if failed {
                stats.failed.fetch_add(1, Relaxed);
            }
            drop(permit);
        });
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
    }
    tracing::info!(
        running = running.len(),
        grace_secs = settings.grace.as_secs(),
        "worker stopping: no new jobs"
    );
    let drained = tokio::time::timeout(settings.grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = running.len(),
            "grace period over: handing the remaining jobs back"
        );
        let left: Vec<_> = claims.lock().iter().map(|(id, ctx)| (*id, *ctx)).collect();
        running.abort_all();
        while running.join_next().await.is_some() {}
        hand_back(&db, &settings.worker_id, left).await;
    }
    // Closing the connection returns every unacknowledged delivery to the queue.
    consumer.close().await;
    if let Some(events) = &events {
        events.flush().await;
    }
    beat_stop.cancel();
    if let Some(beating) = beating {
        let _ = beating.await;
    }
    let _ = depths.await;
}

/// What running a job needs.
#[derive(Clone, Copy)]
struct Jobs<'a> {
    db: &'a Db,
    recorder: &'a Recorder,
    broker: &'a Broker,
    events: Option<&'a Events>,
    settings: &'a WorkerSettings,
    claims: &'a Claims,
}

async fn process(jobs: Jobs<'_>, delivery: Delivery) -> bool {
    let envelope = match &delivery.envelope {
        Ok(envelope) => envelope.clone(),
        Err(err) => {
            tracing::error!(error = %err, "undeliverable message: dead-lettering it");
            let _ = delivery.dead_letter().await;
            return true;
        }
    };
    let trace_id = envelope
        .trace
        .as_ref()
        .map(|t| t.trace_id())
        .unwrap_or_default();
    let span = tracing::info_span!("job", job_id = %envelope.job_id, kind = %envelope.kind, tenant_id = %envelope.tenant_id, attempt = envelope.attempt, trace_id);
    let outcome = tracing::Instrument::instrument(handle(jobs, &envelope), span).await;
    let failed = matches!(outcome, Ok(Settle::DeadLetter));
    let settled = match outcome {
        Ok(Settle::Ack) => delivery.ack().await,
        Ok(Settle::DeadLetter) => delivery.dead_letter().await,
        Err(err) => {
            // The outcome could not be recorded (database away): give the
            // delivery back so that it is tried again.
            tracing::warn!(job_id = %envelope.job_id, error = %err, "could not record the outcome; requeueing");
            tokio::time::sleep(Duration::from_millis(500)).await;
            delivery.requeue().await
        }
    };
    if let Err(err) = settled {
        tracing::warn!(job_id = %envelope.job_id, error = %err, "could not settle the delivery; the broker will redeliver it");
    }
    failed
}

enum Settle {
    Ack,
    DeadLetter,
}

/// Why an outcome could not be recorded; the delivery is given back.
#[derive(Debug, thiserror::Error)]
enum Unrecorded {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Broker(#[from] ferro_broker::BrokerError),
}

async fn handle(jobs: Jobs<'_>, envelope: &TaskEnvelope) -> Result<Settle, Unrecorded> {
    let Jobs {
        db,
        recorder,
        broker,
        events,
        settings,
        claims,
    } = jobs;
    let ctx = TenantCtx::new(envelope.tenant_id, envelope.user_id);
    if envelope.is_past_deadline(chrono::Utc::now()) {
        let mut tx = db.begin(ctx).await?;
        let expired = jobs::expire(&mut tx, envelope.job_id).await?;
        tx.commit().await?;
        if let Some(state) = expired {
            tracing::info!(error = jobs::EXPIRED_ERROR, "job cancelled");
            metrics::job_ended_unrun(&envelope.kind, Outcome::Cancelled);
            if let Some(events) = events {
                events.publish(ctx.tenant_id, &state).await;
            }
            return Ok(Settle::Ack);
        }
        // Started already (a duplicate delivery): the claim below decides.
    }
    let claimed = match recorder.claim(ctx, envelope.job_id).await? {
        Ok(c) => c,
        Err(NotClaimed::Leased(until)) => {
            // Another worker holds it, or held it and died: look again once
            // its lease can have run out.
            let wait =
                (until - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "job is leased by another worker; looking again later"
            );
            broker.publish_delayed(envelope, wait).await?;
            return Ok(Settle::Ack);
        }
        Err(reason) => {
            let settle = if reason == NotClaimed::Exhausted {
                tracing::warn!(error = jobs::EXHAUSTED_ERROR, "job failed");
                metrics::job_ended_unrun(&envelope.kind, Outcome::Failed);
                Settle::DeadLetter
            } else {
                tracing::info!(?reason, "not running the job");
                Settle::Ack
            };
            // Ended here rather than by a run: its watchers hear it now.
            if matches!(reason, NotClaimed::Cancelled | NotClaimed::Exhausted)
                && let Some(events) = events
            {
                events.emit(db, ctx, envelope.job_id).await;
            }
            return Ok(settle);
        }
    };
    let _held = claims.hold(envelope.job_id, ctx);
    let end = |status, error: Option<&str>, results| Finish {
        id: envelope.job_id,
        attempt: claimed.attempts,
        status,
        error: error.map(str::to_owned),
        results,
    };
    let Some(kind) = JobKind::parse(&claimed.kind) else {
        let failed = end(JobStatus::Failed, Some("unknown job kind"), Vec::new());
        recorder.finish(ctx, failed).await?;
        metrics::job_ended_unrun(&claimed.kind, Outcome::Failed);
        return Ok(Settle::DeadLetter);
    };
    tracing::info!("job started");
    if let Some(events) = events {
        events
            .publish(ctx.tenant_id, &claimed.state(envelope.job_id))
            .await;
    }

    let cancel = CancellationToken::new();
    let job = JobContext {
        db: db.clone(),
        job_id: envelope.job_id,
        ctx,
        attempt: claimed.attempts,
        device_id: claimed.device_id,
        cancel: cancel.clone(),
        events: events.cloned(),
        smtp: settings.smtp.clone(),
        sessions: events.map(|e| {
            // Sessions live under the same Redis prefix as the events; the
            // lifetime only matters to writers, which this store is not.
            ferro_auth::sessions::SessionStore::new(
                e.redis.clone(),
                e.prefix.clone(),
                Duration::from_secs(1),
            )
        }),
    };
    let started = std::time::Instant::now();
    let watcher = tokio::spawn(watch(
        db.clone(),
        ctx,
        envelope.job_id,
        settings.worker_id.clone(),
        settings.lease,
        cancel.clone(),
    ));
    // The handler stops at its time limit or when the watcher signals, even
    // one that never looks at the signal itself (dropping it rolls back its
    // transaction; its results are only kept by the outcome below).
    let result = tokio::select! {
        biased;
        ran = tokio::time::timeout(kind.time_limit(), handlers::run(kind, &claimed.params, &job)) => {
            ran.unwrap_or_else(|_| Err(JobError::Transient(format!(
                "timed out after {} s",
                kind.time_limit().as_secs()
            ))))
        }
        _ = cancel.cancelled() => Err(JobError::Cancelled),
    };
    watcher.abort();
    let watched = watcher.await.ok();
    let took = started.elapsed();
    if watched == Some(Stop::Lost) {
        // Its lease ran out (this worker stalled) and another worker claimed
        // the job: that worker's run is the one that counts.
        tracing::warn!("another worker took the job over; leaving it to that worker");
        return Ok(Settle::Ack);
    }

    let (settle, outcome, state) = match result {
        Ok(rows) => {
            let count = rows.len();
            match recorder
                .finish(ctx, end(JobStatus::Succeeded, None, rows))
                .await
            {
                Ok(state) => {
                    tracing::info!(results = count, "job succeeded");
                    (Settle::Ack, Outcome::Succeeded, state)
                }
                // Results the database will never take: another attempt
                // would make the same ones, so the job fails now (rather
                // than being handed back until its attempts run out).
                Err(err) if err.is_refused_value() => {
                    let error = format!("its results could not be stored: {err}");
                    let state = recorder
                        .finish(ctx, end(JobStatus::Failed, Some(&error), Vec::new()))
                        .await?;
                    tracing::warn!(%error, "job failed for good; dead-lettering it");
                    (Settle::DeadLetter, Outcome::Failed, state)
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(JobError::Cancelled) => {
            let cancelled = end(
                JobStatus::Cancelled,
                Some("cancelled while running"),
                Vec::new(),
            );
            let state = recorder.finish(ctx, cancelled).await?;
            tracing::info!("job cancelled");
            (Settle::Ack, Outcome::Cancelled, state)
        }
        Err(JobError::Transient(error)) if claimed.attempts < claimed.max_attempts => {
            let delay = backoff(claimed.attempts);
            // The deadline was for the first start (a scheduled job not
            // started before its next slot is stale); a job that started in
            // time retries by the retry policy alone.
            let next = TaskEnvelope {
                attempt: claimed.attempts as u32,
                deadline: None,
                ..envelope.clone()
            };
            let mut tx = db.begin(ctx).await?;
            let state = jobs::retry_later(&mut tx, &next, &error, delay).await?;
            tx.commit().await?;
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            (Settle::Ack, Outcome::Retrying, state)
        }
        Err(JobError::Transient(error) | JobError::Permanent(error)) => {
            let state = recorder
                .finish(ctx, end(JobStatus::Failed, Some(&error), Vec::new()))
                .await?;
            tracing::warn!(%error, "job failed for good; dead-lettering it");
            (Settle::DeadLetter, Outcome::Failed, state)
        }
    };
    metrics::job_finished(kind, outcome, took);
    if let (Some(events), Some(state)) = (events, state) {
        events.publish(ctx.tenant_id, &state).await;
    }
    Ok(settle)
}

/// Why the watcher signalled a running job to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Cancellation was requested.
    Cancelled,
    /// The job is no longer this worker's: its lease ran out and another
    /// worker claimed it.
    Lost,
}

/// While the job runs: renew its lease and watch for a cancel request.
async fn watch(
    db: Db,
    ctx: TenantCtx,
    job_id: uuid::Uuid,
    worker_id: String,
    lease: Duration,
    cancel: CancellationToken,
) -> Stop {
    let tick = Duration::from_millis(500);
    let mut since_renewal = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        since_renewal += tick;
        let renew = since_renewal >= lease / 3;
        let checked = async {
            let mut tx = db.begin(ctx).await?;
            let cancelled = jobs::cancel_requested(&mut tx, job_id).await?;
            let ours = if renew {
                jobs::renew_lease(&mut tx, job_id, &worker_id, lease).await?
            } else {
                true
            };
            tx.commit().await?;
            Ok::<_, DbError>((cancelled, ours))
        }
        .await;
        match checked {
            Ok((cancelled, ours)) => {
                if renew {
                    since_renewal = Duration::ZERO;
                }
                if cancelled || !ours {
                    cancel.cancel();
                    return if ours { Stop::Cancelled } else { Stop::Lost };
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not check on the running job"),
        }
    }
}
