//! Job submissions written together ([`ferro_db::coalesce`]).
//!
//! Each `POST /api/v1/jobs` hands its checked job to [`Submissions::submit`]
//! and waits for its answer. The submissions that arrive while earlier ones
//! are in the database are taken together: one transaction per tenant and
//! user, with one multi-row `INSERT` for the jobs, one for their outbox
//! records and one for the requests' audit rows, so a busy api pays one
//! commit for many jobs while a lone request is still written at once. If a
//! batch's transaction fails, each of its submissions is tried again alone:
//! a bad one fails alone. Every request answers after its own job
//! committed. The new jobs' envelopes are then published in one batch (the
//! broker's confirms awaited together) and their records marked published
//! together; whatever fails there is left to the outbox relay. A deferred
//! job is not published here: its record is due at its `run_at`, and the
//! relay releases it then.
//!
//! A unique submission is written alone, in a transaction of its own
//! ([`jobs::enqueue_unique`] holds a lock on its key until commit), and
//! published the same way.

use std::sync::Arc;
use std::time::Duration;

use ferro_broker::Broker;
use ferro_db::coalesce::{self, Coalescer};
use ferro_db::{Db, DbError, TenantCtx, TenantTx};
use ferro_tasks::TaskEnvelope;
use ferro_tasks::jobs::{self, Enqueued, NewJob};

use crate::after_request::{AfterRequest, AuditRow, insert_audit_rows};

/// Most submissions in one batch.
const MAX_BATCH: usize = 256;
/// Batches in the database at once.
const IN_FLIGHT: usize = 2;
/// How long a batch waits for more while submissions arrive quickly (see
/// [`Coalescer::spawn`]); a lone request is not held up.
const LINGER: Duration = Duration::from_millis(2);

/// One request's job, with its audit row (written with the job when the
/// request will answer 202: created, or found by its idempotency key).
pub struct Submission {
    pub ctx: TenantCtx,
    pub job: NewJob,
    pub audit: Option<AuditRow>,
}

/// The api's batched job submissions. Clones share the batches.
#[derive(Clone)]
pub struct Submissions {
    batches: Coalescer<Submission, Result<Enqueued, DbError>>,
    db: Db,
    broker: Arc<Broker>,
    after: AfterRequest,
}

impl Submissions {
    /// Starts the batching task on the current runtime.
    pub fn new(db: Db, broker: Arc<Broker>, after: AfterRequest) -> Self {
        let (db_, broker_, after_) = (db.clone(), broker.clone(), after.clone());
        let batches = Coalescer::spawn(
            "submissions",
            MAX_BATCH,
            IN_FLIGHT,
            LINGER,
            move |requests: Vec<Submission>| {
                let (db, broker, after) = (db.clone(), broker.clone(), after.clone());
                async move {
                    let answers = coalesce::by_tenant(
                        &requests,
                        |s| s.ctx,
                        |ctx, group| write_group(&db, ctx, group),
                    )
                    .await;
                    publish(&broker, &after, &requests, &answers);
                    answers
                }
            },
        );
        Self {
            batches,
            db: db_,
            broker: broker_,
            after: after_,
        }
    }

    /// Writes the job (committed when this returns); whether it was created,
    /// its idempotency key names another, or (unique) a live job has its key.
    pub async fn submit(&self, submission: Submission) -> Result<Enqueued, DbError> {
        if submission.job.options.unique.is_none() {
            return self.batches.record(submission).await;
        }
        let answer = write_unique(&self.db, &submission).await;
        let answers = [answer];
        publish(
            &self.broker,
            &self.after,
            std::slice::from_ref(&submission),
            &answers,
        );
        let [answer] = answers;
        answer
    }
}

/// A unique submission in a transaction of its own, with its audit row when
/// it makes a new job (a duplicate's answer, 200, is audited after it).
async fn write_unique(db: &Db, submission: &Submission) -> Result<Enqueued, DbError> {
    let mut tx = db.begin(submission.ctx).await?;
    let answer = jobs::enqueue_unique(&mut tx, submission.job.clone()).await?;
    audit_accepted(&mut tx, &[submission], std::slice::from_ref(&answer)).await?;
    tx.commit().await?;
    Ok(answer)
}

/// One transaction for one tenant and user: the jobs and their records,
/// then the audit rows of the requests that will answer 202.
async fn write_group(
    db: &Db,
    ctx: TenantCtx,
    group: Vec<&Submission>,
) -> Result<Vec<Enqueued>, DbError> {
    let new: Vec<NewJob> = group.iter().map(|s| s.job.clone()).collect();
    let mut tx = db.begin(ctx).await?;
    let answers = jobs::enqueue_many(&mut tx, &new).await?;
    audit_accepted(&mut tx, &group, &answers).await?;
    tx.commit().await?;
    Ok(answers)
}

/// The audit rows of the submissions answered 202, in their transaction.
async fn audit_accepted(
    tx: &mut TenantTx,
    group: &[&Submission],
    answers: &[Enqueued],
) -> Result<(), DbError> {
    let rows: Vec<&AuditRow> = group
        .iter()
        .zip(answers)
        .filter(|(_, a)| a.is_accepted())
        .filter_map(|(s, _)| s.audit.as_ref())
        .collect();
    if !rows.is_empty() {
        insert_audit_rows(tx, &rows).await?;
    }
    Ok(())
}

/// Publishes the batch's new jobs in the background (the requests have
/// their answers), then marks their records published. Deferred jobs are
/// left to the relay, which publishes them when they are due.
fn publish(
    broker: &Arc<Broker>,
    after: &AfterRequest,
    requests: &[Submission],
    answers: &[Result<Enqueued, DbError>],
) {
    let created: Vec<(TenantCtx, TaskEnvelope, i64)> = requests
        .iter()
        .zip(answers)
        .filter_map(|(s, answer)| match answer {
            Ok(Enqueued::Created {
                envelope,
                outbox_id,
                job,
            }) if job.run_at.is_none() => Some((s.ctx, envelope.clone(), *outbox_id)),
            _ => None,
        })
        .collect();
    publish_created(broker, after, created);
}

impl Submissions {
    /// Publishes jobs written and committed elsewhere (a workflow's first
    /// steps) the same way: in the background, then their records marked.
    pub fn publish_committed(&self, created: Vec<(TenantCtx, TaskEnvelope, i64)>) {
        publish_created(&self.broker, &self.after, created);
    }
}

fn publish_created(
    broker: &Arc<Broker>,
    after: &AfterRequest,
    created: Vec<(TenantCtx, TaskEnvelope, i64)>,
) {
    if created.is_empty() {
        return;
    }
    let (broker, after) = (broker.clone(), after.clone());
    tokio::spawn(async move {
        let envelopes: Vec<&TaskEnvelope> = created.iter().map(|(_, e, _)| e).collect();
        let sent =
            tokio::time::timeout(Duration::from_secs(2), broker.publish_many(&envelopes)).await;
        let Ok(sent) = sent else {
            tracing::warn!(
                jobs = created.len(),
                "publish timed out; the outbox relay will retry"
            );
            return;
        };
        let marks = created.iter().zip(sent).filter_map(|((ctx, envelope, outbox_id), sent)| {
            match sent {
                Ok(()) => Some(after.published(*ctx, *outbox_id)),
                Err(err) => {
                    tracing::warn!(job_id = %envelope.job_id, error = %err, "publish failed; the outbox relay will retry");
                    None
                }
            }
        });
        for marked in futures_util::future::join_all(marks).await {
            if let Err(err) = marked {
                // Published but not marked: the relay publishes it again and
                // the worker's guarded claim skips the duplicate.
                tracing::warn!(error = %err, "could not mark an outbox record published");
            }
        }
    });
}
