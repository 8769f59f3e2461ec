//! The job kinds and their parameters. Every kind's parameters are a typed
//! struct that rejects unknown fields, so bad parameters are refused when the
//! job is submitted, never discovered by the worker.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::check;
pub use crate::params::{
    DevicesExportParams, DevicesPollParams, EmailSendParams, JobsPruneParams, MibCompileParams,
    NoopParams, ParamError, SessionsCleanupParams, SnmpGetParams, SnmpWalkParams, oid_arcs,
    valid_oid, whole_numbers,
};

/// Every kind of job the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobKind {
    #[serde(rename = "noop")]
    Noop,
    #[serde(rename = "snmp.get")]
    SnmpGet,
    #[serde(rename = "snmp.walk")]
    SnmpWalk,
    #[serde(rename = "email.send")]
    EmailSend,
    #[serde(rename = "sessions.cleanup")]
    SessionsCleanup,
    #[serde(rename = "devices.export")]
    DevicesExport,
    #[serde(rename = "devices.poll")]
    DevicesPoll,
    #[serde(rename = "jobs.prune")]
    JobsPrune,
    #[serde(rename = "mib.compile")]
    MibCompile,
}

/// What a kind needs besides its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceNeed {
    /// `device_id` must name an SNMP device of the tenant.
    SnmpDevice,
    /// `device_id` must be absent.
    None,
}

impl JobKind {
    pub const ALL: [JobKind; 9] = [
        JobKind::Noop,
        JobKind::SnmpGet,
        JobKind::SnmpWalk,
        JobKind::EmailSend,
        JobKind::SessionsCleanup,
        JobKind::DevicesExport,
        JobKind::DevicesPoll,
        JobKind::JobsPrune,
        JobKind::MibCompile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Noop => "noop",
            JobKind::SnmpGet => "snmp.get",
            JobKind::SnmpWalk => "snmp.walk",
            JobKind::EmailSend => "email.send",
            JobKind::SessionsCleanup => "sessions.cleanup",
            JobKind::DevicesExport => "devices.export",
            JobKind::DevicesPoll => "devices.poll",
            JobKind::JobsPrune => "jobs.prune",
            JobKind::MibCompile => "mib.compile",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn device_need(self) -> DeviceNeed {
        match self {
            JobKind::SnmpGet | JobKind::SnmpWalk => DeviceNeed::SnmpDevice,
            _ => DeviceNeed::None,
        }
    }

    /// Kinds whose effect reaches beyond the submitting tenant (sessions are
    /// global; retention deletes logs) may be submitted only by platform
    /// administrators (and run by the scheduler).
    pub fn platform_only(self) -> bool {
        matches!(
            self,
            JobKind::SessionsCleanup | JobKind::DevicesPoll | JobKind::JobsPrune
        )
    }

    /// How many times a job of this kind is tried before it fails.
    pub fn max_attempts(self) -> i32 {
        match self {
            JobKind::SnmpGet | JobKind::SnmpWalk | JobKind::EmailSend => 3,
            JobKind::Noop => 3,
            JobKind::SessionsCleanup
            | JobKind::DevicesExport
            | JobKind::JobsPrune
            | JobKind::MibCompile => 2,
            // Periodic: the next poll is the retry.
            JobKind::DevicesPoll => 1,
        }
    }

    /// How long one attempt may run before it is stopped and counted failed.
    pub fn time_limit(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            JobKind::Noop => 660,
            JobKind::SnmpGet => 30,
            JobKind::SnmpWalk => 120,
            JobKind::EmailSend => 60,
            JobKind::SessionsCleanup => 300,
            JobKind::DevicesExport => 300,
            JobKind::DevicesPoll => 240,
            JobKind::JobsPrune => 3600,
            JobKind::MibCompile => 600,
        })
    }

    /// The JSON Schema of this kind's parameters: exactly what
    /// [`validate`](Self::validate) takes.
    pub fn params_schema(self) -> Value {
        use crate::params::Params;
        match self {
            JobKind::Noop => NoopParams::schema(),
            JobKind::SnmpGet => SnmpGetParams::schema(),
            JobKind::SnmpWalk => SnmpWalkParams::schema(),
            JobKind::EmailSend => EmailSendParams::schema(),
            JobKind::SessionsCleanup => SessionsCleanupParams::schema(),
            JobKind::DevicesExport => DevicesExportParams::schema(),
            JobKind::DevicesPoll => DevicesPollParams::schema(),
            JobKind::JobsPrune => JobsPruneParams::schema(),
            JobKind::MibCompile => MibCompileParams::schema(),
        }
    }

    /// Checks `params` for this kind; `Ok` carries them normalised.
    pub fn validate(self, params: &Value) -> Result<Value, Vec<ParamError>> {
        match self {
            JobKind::Noop => check::<NoopParams>(params),
            JobKind::SnmpGet => check::<SnmpGetParams>(params),
            JobKind::SnmpWalk => check::<SnmpWalkParams>(params),
            JobKind::EmailSend => check::<EmailSendParams>(params),
            JobKind::SessionsCleanup => check::<SessionsCleanupParams>(params),
            JobKind::DevicesExport => check::<DevicesExportParams>(params),
            JobKind::DevicesPoll => check::<DevicesPollParams>(params),
            JobKind::JobsPrune => check::<JobsPruneParams>(params),
            JobKind::MibCompile => check::<MibCompileParams>(params),
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert_eq!(JobKind::parse("rm -rf"), None);
    }

    #[test]
    fn params_are_checked_per_kind() {
        assert_eq!(JobKind::Noop.validate(&json!({})).unwrap(), json!({}));
        assert_eq!(
            JobKind::Noop.validate(&json!({"sleep_ms": 5})).unwrap(),
            json!({"sleep_ms": 5})
        );
        let err = JobKind::Noop.validate(&json!({"sleep": 5})).unwrap_err();
        assert_eq!(err[0].field, "params.sleep");
        let err = JobKind::Noop
            .validate(&json!({"sleep_ms": "soon"}))
            .unwrap_err();
        assert_eq!(err[0].field, "params.sleep_ms");
        let err = JobKind::Noop.validate(&json!([1])).unwrap_err();
        assert_eq!(err[0].field, "params");

        assert!(
            JobKind::SnmpGet
                .validate(&json!({"oids": ["1.3.6.1.2.1.1.1.0", ".1.3.6.1.2.1.1.3.0"]}))
                .is_ok()
        );
        let err = JobKind::SnmpGet
            .validate(&json!({"oids": ["1.3.6.x", "9.1"]}))
            .unwrap_err();
        assert_eq!(
            err.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["params.oids[0]", "params.oids[1]"]
        );
        let err = JobKind::SnmpGet.validate(&json!({})).unwrap_err();
        assert_eq!(err[0].field, "params.oids");
        let err = JobKind::SnmpGet.validate(&json!({"oids": []})).unwrap_err();
        assert_eq!(err[0].field, "params.oids");

        assert!(
            JobKind::EmailSend
                .validate(&json!({"to": "a@example.com", "subject": "hi", "body": "x"}))
                .is_ok()
        );
        let err = JobKind::EmailSend
            .validate(&json!({"to": "a@example.com, b@example.com", "subject": "x\r\nBcc: evil@example.com", "body": ""}))
            .unwrap_err();
        assert_eq!(
            err.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["params.to", "params.subject"]
        );
        assert!(
            JobKind::SessionsCleanup
                .validate(&json!({"retention_days": 0}))
                .is_err()
        );
    }

    #[test]
    fn oids() {
        assert!(valid_oid("1.3.6.1.2.1.1.5.0"));
        assert!(valid_oid(".1.3"));
        assert!(!valid_oid("1"));
        assert!(!valid_oid("3.1"));
        assert!(!valid_oid("1..3"));
        assert!(!valid_oid("1.3.6.1.99999999999"));
        assert!(valid_oid("1.3.6.1.4294967295"));
        assert!(!valid_oid("1.3.6.1.4294967296"));
        assert!(!valid_oid("1.40.1"));
        assert!(!valid_oid("2.50.1"));
        assert!(valid_oid("2.39.1"));
        assert!(!valid_oid("1.+3"));
        assert_eq!(oid_arcs(".1.3.6"), Some(vec![1, 3, 6]));
    }
}
