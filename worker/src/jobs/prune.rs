//! `jobs.prune`.

use ferro_tasks::kinds::JobsPruneParams;
use serde_json::{Value, json};

use super::context::{JobContext, JobError};

/// Platform maintenance: deletes finished jobs older than the worker's
/// `JOB_RETENTION` in every tenant, with their results and outbox records,
/// a batch per statement so that no lock is held for long. Stops between
/// batches when cancelled (what was deleted stays deleted).
pub async fn run(p: JobsPruneParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let batch = p.batch_size.unwrap_or(1000) as i32;
    let mut deleted = serde_json::Map::new();
    let ages = job.retention.ages();
    for (at, (status, age)) in ages.iter().enumerate() {
        let mut total: i64 = 0;
        loop {
            if job.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let n = job.db.prune_jobs(status.as_str(), *age, batch).await?;
            total += i64::from(n);
            if n < batch {
                break;
            }
            // Let submissions and outcomes in between batches.
            tokio::task::yield_now().await;
        }
        metrics::counter!("jobs_pruned_total", "status" => status.as_str()).increment(total as u64);
        deleted.insert(status.as_str().to_owned(), json!(total));
        job.progress(((at + 1) * 100 / ages.len()).min(99) as u8)
            .await;
    }
    // Then the workflows whose jobs are all gone.
    let mut workflows: i64 = 0;
    loop {
        if job.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let n = job.db.prune_workflows(batch).await?;
        workflows += i64::from(n);
        if n < batch {
            break;
        }
        tokio::task::yield_now().await;
    }
    let summary = serde_json::Value::Object(deleted.clone()).to_string();
    tracing::info!(deleted = %summary, workflows, "jobs pruned");
    let kept_days: serde_json::Map<String, Value> = ages
        .iter()
        .map(|(s, age)| (s.as_str().to_owned(), json!(age.as_secs() / 3600)))
        .collect();
    Ok(vec![
        json!({"deleted": deleted, "workflows_deleted": workflows, "retention_hours": kept_days}),
    ])
}
