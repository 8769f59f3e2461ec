//! `noop`: sleeps (reporting progress), or fails its first attempts or every
//! attempt before a time, as asked;
//! for tests, benchmarks and checking that the pipeline works. As a workflow
//! step, its result also holds the results it received (`received`).

use std::time::Duration;

use ferro_tasks::kinds::NoopParams;
use serde_json::{Value, json};

use super::context::{JobContext, JobError};

pub async fn run(p: NoopParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    if p.fail_attempts.is_some_and(|n| job.attempt <= n as i32) {
        return Err(JobError::Transient(format!(
            "noop: failing attempt {} as asked",
            job.attempt
        )));
    }
    if let Some(until) = p.fail_until
        && chrono::Utc::now() < until
    {
        return Err(JobError::Transient(format!(
            "noop: failing until {} as asked",
            until.to_rfc3339()
        )));
    }
    let total = Duration::from_millis(p.sleep_ms.unwrap_or(0));
    let steps = if total.is_zero() { 0 } else { 10 };
    for step in 1..=steps {
        tokio::select! {
            _ = job.cancel.cancelled() => return Err(JobError::Cancelled),
            _ = tokio::time::sleep(total / steps) => {}
        }
        if step < steps {
            job.progress((step * 10) as u8).await;
        }
    }
    // A workflow step shows what the steps it waited for gave it.
    let received = job.upstream().await?;
    let mut result = json!({"slept_ms": total.as_millis() as u64});
    if !received.is_empty() {
        result["received"] = Value::Array(received);
    }
    Ok(vec![result])
}
