//! Job events for watchers (SSE, WebSocket): each change of a job is
//! published on its tenant's Redis pub/sub channel, pipelined.

use ferro_db::{Db, DbError, TenantCtx};
use ferro_tasks::jobs;

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
