//! Job events: every status or progress change of a job, published by the
//! worker (and the api for cancels) on the tenant's Redis pub/sub channel and
//! streamed to clients as Server-Sent Events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{Job, JobState};

/// One change of a job, as published and as streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    pub job_id: Uuid,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub progress: i16,
    pub attempts: i32,
    pub error: Option<String>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub at: DateTime<Utc>,
}

impl JobEvent {
    pub fn of(job: &Job) -> Self {
        Self {
            job_id: job.id,
            status: job.status.clone(),
            progress: job.progress,
            attempts: job.attempts,
            error: job.error.clone(),
            at: Utc::now(),
        }
    }

    /// The event of a change, from the state the changing statement returned.
    pub fn of_state(state: &JobState) -> Self {
        Self {
            job_id: state.id,
            status: state.status.clone(),
            progress: state.progress,
            attempts: state.attempts,
            error: state.error.clone(),
            at: Utc::now(),
        }
    }

    /// Whether the job has ended with this event.
    pub fn is_final(&self) -> bool {
        self.status
            .parse::<crate::JobStatus>()
            .is_ok_and(crate::JobStatus::is_final)
    }

    /// The SSE event type: `status` for status changes, `progress` otherwise.
    pub fn kind(&self) -> &'static str {
        if self.status == "running" && self.progress > 0 && self.progress < 100 {
            "progress"
        } else {
            "status"
        }
    }
}

/// The pub/sub channel of a tenant's job events.
pub fn channel(redis_prefix: &str, tenant_id: Uuid) -> String {
    format!("{redis_prefix}job-events:{tenant_id}")
}
