//! Workflows: a chain, a group or a chord of jobs, written in one
//! transaction. Which step waits for which, and how a step's end releases
//! or cancels the ones after it, is the database's (migration
//! `..._workflows`, trigger `jobs_workflow_advance`), so it happens in the
//! transaction that ends the step, whichever worker or request ends it.

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::jobs::{self, COLUMNS, Enqueued, Job, NewJob, WorkflowStep};
use crate::{JobStatus, TaskEnvelope};

/// Most steps in one workflow.
pub const MAX_STEPS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowKind {
    /// Each step after the previous one succeeded, seeing its results.
    Chain,
    /// Every step at once.
    Group,
    /// A group, then a callback after every member succeeded, seeing their
    /// results.
    Chord,
}

impl WorkflowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Chain => "chain",
            WorkflowKind::Group => "group",
            WorkflowKind::Chord => "chord",
        }
    }

    /// Whether step `index` of `steps` waits for others.
    fn waits(self, index: usize, steps: usize) -> bool {
        match self {
            WorkflowKind::Chain => index > 0,
            WorkflowKind::Group => false,
            WorkflowKind::Chord => index + 1 == steps,
        }
    }
}

/// A workflow as clients see it: its jobs in step order (a chord's
/// callback last).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Workflow {
    pub id: Uuid,
    /// `chain`, `group` or `chord`.
    pub kind: String,
    /// `running` while a step has not ended; then `succeeded` if every step
    /// did, `failed` if one failed, else `cancelled`.
    pub status: String,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    pub jobs: Vec<Job>,
}

fn status_of(jobs: &[Job]) -> &'static str {
    let is = |j: &Job, s: JobStatus| j.status == s.as_str();
    let ended = |j: &Job| j.status.parse::<JobStatus>().is_ok_and(JobStatus::is_final);
    if !jobs.iter().all(ended) {
        "running"
    } else if jobs.iter().all(|j| is(j, JobStatus::Succeeded)) {
        "succeeded"
    } else if jobs.iter().any(|j| is(j, JobStatus::Failed)) {
        "failed"
    } else {
        "cancelled"
    }
}

/// A new workflow, and the envelopes to publish after commit (the steps
/// that wait for nothing) with their outbox records.
pub struct Created {
    pub workflow: Workflow,
    pub publish: Vec<(TaskEnvelope, i64)>,
}

/// Writes the workflow and every step (one multi-row insert of jobs, one of
/// outbox records). Steps must be checked already, and carry no
/// idempotency key, uniqueness or deferral.
pub async fn create(
    tx: &mut TenantTx,
    kind: WorkflowKind,
    mut steps: Vec<NewJob>,
) -> Result<Created, DbError> {
    let id = Uuid::now_v7();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO workflows (id, tenant_id, kind, steps, created_by) \
         VALUES ($1, app_current_tenant(), $2, $3, app_current_user()) RETURNING created_at",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(steps.len() as i32)
    .fetch_one(&mut **tx)
    .await?;
    let count = steps.len();
    for (index, step) in steps.iter_mut().enumerate() {
        step.step = Some(WorkflowStep {
            workflow_id: id,
            index: index as i32,
            waits: kind.waits(index, count),
        });
    }
    let mut jobs = Vec::with_capacity(count);
    let mut publish = Vec::new();
    for answer in jobs::enqueue_many(tx, &steps).await? {
        let Enqueued::Created {
            job,
            envelope,
            outbox_id,
        } = answer
        else {
            unreachable!("steps carry no idempotency key");
        };
        if job.status == JobStatus::Queued.as_str() {
            publish.push((envelope, outbox_id));
        }
        jobs.push(job);
    }
    Ok(Created {
        workflow: Workflow {
            id,
            kind: kind.as_str().to_owned(),
            status: status_of(&jobs).to_owned(),
            created_at,
            jobs,
        },
        publish,
    })
}

/// The tenant's workflow `id`, with its jobs.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Workflow>, DbError> {
    let head: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT kind, created_at FROM workflows WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((kind, created_at)) = head else {
        return Ok(None);
    };
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE workflow_id = $1 ORDER BY workflow_step");
    let jobs: Vec<Job> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    Ok(Some(Workflow {
        id,
        kind,
        status: status_of(&jobs).to_owned(),
        created_at,
        jobs,
    }))
}

/// Cancels what has not ended: waiting steps at once (with the reason),
/// then every other step as `POST /jobs/{id}/cancel` would (a running one
/// is asked to stop). `None` if there is no such workflow.
pub async fn cancel(tx: &mut TenantTx, id: Uuid) -> Result<Option<Workflow>, DbError> {
    let Some(workflow) = get(tx, id).await? else {
        return Ok(None);
    };
    let held: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), \
           error = 'not run: the workflow was cancelled' \
         WHERE workflow_id = $1 AND status = 'waiting' RETURNING id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE job_outbox SET published_at = now(), last_error = 'cancelled' \
         WHERE job_id = ANY($1) AND published_at IS NULL",
    )
    .bind(&held)
    .execute(&mut **tx)
    .await?;
    for job in &workflow.jobs {
        let open = job
            .status
            .parse::<JobStatus>()
            .is_ok_and(|s| !s.is_final() && s != JobStatus::Waiting);
        if open {
            jobs::cancel(tx, job.id).await?;
        }
    }
    get(tx, id).await
}

/// The results a step sees: those of the steps it waited for (a chain
/// step's predecessor, a chord callback's members), from their last
/// attempt, in step order.
pub async fn upstream(
    tx: &mut TenantTx,
    workflow_id: Uuid,
    step: i32,
) -> Result<Vec<Value>, DbError> {
    sqlx::query_scalar(
        "SELECT r.data FROM workflows w \
         JOIN jobs j ON j.workflow_id = w.id \
         JOIN job_results r ON r.tenant_id = j.tenant_id AND r.job_id = j.id \
           AND r.attempt = j.attempts \
         WHERE w.id = $1 \
           AND ((w.kind = 'chain' AND j.workflow_step = $2 - 1) \
             OR (w.kind = 'chord' AND $2 = w.steps - 1 AND j.workflow_step < $2)) \
         ORDER BY j.workflow_step, r.created_at, r.id",
    )
    .bind(workflow_id)
    .bind(step)
    .fetch_all(&mut **tx)
    .await
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::WorkflowKind;

    #[test]
    fn which_steps_wait() {
        let waiting = |kind: WorkflowKind| (0..4).map(|i| kind.waits(i, 4)).collect::<Vec<_>>();
        assert_eq!(waiting(WorkflowKind::Chain), [false, true, true, true]);
        assert_eq!(waiting(WorkflowKind::Group), [false; 4]);
        assert_eq!(waiting(WorkflowKind::Chord), [false, false, false, true]);
    }
}
