//! The job vocabulary shared by `api`, `worker` and `scheduler`: job status,
//! and the versioned task envelope that travels through the broker.
//!
//! The envelope carries identifiers and metadata only. The job's parameters
//! stay in the `jobs` row, which the worker reads inside the job's tenant, so
//! the database (not a message) is the source of truth for what runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod cron;
pub mod events;
pub mod jobs;
pub mod kinds;
pub mod limits;
mod params;
pub mod queues;
pub mod retention;
pub mod schedules;
pub mod submission;
pub mod workflows;

pub use kinds::JobKind;

/// The lifecycle states of a job, as stored in `jobs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// A workflow step waiting for the steps before it.
    Waiting,
    /// Deferred (`run_at`): waits until it is due, then becomes `queued`.
    Scheduled,
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Waiting,
        JobStatus::Scheduled,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed and cancelled jobs never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl std::str::FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status {0:?}")]
pub struct UnknownStatus(pub String);

/// The envelope format version this build writes. Readers accept any
/// version up to this one and refuse newer ones rather than guess.
pub const ENVELOPE_VERSION: u16 = 1;

/// W3C trace context of the request or schedule that enqueued the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A caller's `traceparent` (and `tracestate`) header, if it is a valid
    /// version-00 W3C trace context: `00-{32 hex trace id}-{16 hex parent
    /// id}-{2 hex flags}`, lowercase, neither id all zeros.
    pub fn from_headers(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let valid = matches!(parts.as_slice(), [version, trace, parent, flags]
            if *version == "00" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0'));
        valid.then(|| Self {
            traceparent: parts.join("-"),
            tracestate: tracestate
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= 512 && t.is_ascii())
                .map(str::to_owned),
        })
    }

    /// A new trace (sampled), with `trace_id` as its id (0 is replaced by a
    /// random id) and a random parent id.
    pub fn root(trace_id: u128) -> Self {
        let random = Uuid::new_v4().as_u64_pair();
        let trace_id = if trace_id == 0 {
            Uuid::new_v4().as_u128()
        } else {
            trace_id
        };
        Self {
            traceparent: format!("00-{trace_id:032x}-{:016x}-01", random.0 | 1),
            tracestate: None,
        }
    }

    /// The trace id: 32 hex digits.
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }
}

/// What travels through the broker for one delivery of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEnvelope {
    /// Envelope format version ([`ENVELOPE_VERSION`]).
    pub v: u16,
    pub job_id: Uuid,
    pub kind: String,
    pub tenant_id: Uuid,
    /// The user who enqueued the job; `None` for scheduler-made jobs.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// 1 for the first delivery; incremented for each retry.
    pub attempt: u32,
    #[serde(default)]
    pub trace: Option<TraceContext>,
    #[serde(serialize_with = "ferro_db::timestamp::serialize")]
    pub enqueued_at: DateTime<Utc>,
    /// After this instant the job is not started any more.
    #[serde(default)]
    #[serde(serialize_with = "ferro_db::timestamp::option")]
    pub deadline: Option<DateTime<Utc>>,
    /// The queue it goes to ([`queues::DEFAULT_QUEUE`] when absent: what
    /// envelopes written before queues existed mean).
    #[serde(default = "default_queue", skip_serializing_if = "is_default_queue")]
    pub queue: String,
    /// 0 to [`queues::MAX_PRIORITY`], higher first within its queue.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u8,
}

fn default_queue() -> String {
    queues::DEFAULT_QUEUE.to_owned()
}

fn is_default_queue(queue: &str) -> bool {
    queue == queues::DEFAULT_QUEUE
}

fn is_zero(priority: &u8) -> bool {
    *priority == 0
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed task envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("task envelope version {0} is newer than this build understands ({ENVELOPE_VERSION})")]
    UnsupportedVersion(u16),
}

impl TaskEnvelope {
    pub fn new(
        job_id: Uuid,
        kind: impl Into<String>,
        tenant_id: Uuid,
        user_id: Option<Uuid>,
    ) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            job_id,
            kind: kind.into(),
            tenant_id,
            user_id,
            attempt: 1,
            trace: None,
            enqueued_at: Utc::now(),
            deadline: None,
            queue: default_queue(),
            priority: 0,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an envelope always serialises")
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        // Check the version before the strict parse, so that a newer producer
        // gets "unsupported version" rather than "unknown field".
        #[derive(Deserialize)]
        struct Version {
            v: u16,
        }
        let Version { v } = serde_json::from_slice(bytes)?;
        if v > ENVELOPE_VERSION || v == 0 {
            return Err(EnvelopeError::UnsupportedVersion(v));
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The envelope for the next attempt of the same job.
    pub fn next_attempt(&self) -> Self {
        Self {
            attempt: self.attempt + 1,
            enqueued_at: Utc::now(),
            ..self.clone()
        }
    }

    pub fn is_past_deadline(&self, now: DateTime<Utc>) -> bool {
        self.deadline.is_some_and(|d| now > d)
    }
}

#[cfg(test)]
mod trace_tests {
    use super::TraceContext;

    #[test]
    fn trace_contexts_are_parsed_and_made() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_headers(given, Some("vendor=x")).unwrap();
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.tracestate.as_deref(), Some("vendor=x"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(TraceContext::from_headers(bad, None).is_none(), "{bad}");
        }
        let root = TraceContext::root(0xabc);
        assert_eq!(root.trace_id(), format!("{:032x}", 0xabc));
        assert!(TraceContext::from_headers(&root.traceparent, None).is_some());
        assert_ne!(TraceContext::root(0).trace_id(), format!("{:032x}", 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let mut env = TaskEnvelope::new(
            Uuid::new_v4(),
            "snmp.get",
            Uuid::new_v4(),
            Some(Uuid::new_v4()),
        );
        env.trace = Some(TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: None,
        });
        let back = TaskEnvelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
        assert_eq!(env.to_json()["v"], 1);
        // The default queue and priority are left out, so that workers
        // built before queues existed read plain envelopes as before.
        assert!(env.to_json().get("queue").is_none());
        assert!(env.to_json().get("priority").is_none());
        env.queue = "snmp".into();
        env.priority = 7;
        let back = TaskEnvelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!((back.queue.as_str(), back.priority), ("snmp", 7));
    }

    #[test]
    fn newer_versions_and_garbage_are_refused() {
        let mut json = TaskEnvelope::new(Uuid::new_v4(), "noop", Uuid::new_v4(), None).to_json();
        json["v"] = 2.into();
        json["new_field"] = true.into();
        let err = TaskEnvelope::from_bytes(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, EnvelopeError::UnsupportedVersion(2)));
        assert!(matches!(
            TaskEnvelope::from_bytes(b"{not json"),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn retries_keep_identity_and_count_attempts() {
        let env = TaskEnvelope::new(Uuid::new_v4(), "noop", Uuid::new_v4(), None);
        let next = env.next_attempt();
        assert_eq!((next.job_id, next.attempt), (env.job_id, 2));
    }

    #[test]
    fn status_strings_match_the_schema() {
        for st in JobStatus::ALL {
            assert_eq!(st.as_str().parse::<JobStatus>().unwrap(), st);
        }
        assert!(JobStatus::Cancelled.is_final());
        assert!(!JobStatus::Retrying.is_final());
        assert!("done".parse::<JobStatus>().is_err());
    }
}
