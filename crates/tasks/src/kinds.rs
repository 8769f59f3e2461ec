//! The job kinds and their parameters. Every kind's parameters are a typed
//! struct that rejects unknown fields, so bad parameters are refused when the
//! job is submitted, never discovered by the worker.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every kind of job the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    pub const ALL: [JobKind; 7] = [
        JobKind::Noop,
        JobKind::SnmpGet,
        JobKind::SnmpWalk,
        JobKind::EmailSend,
        JobKind::SessionsCleanup,
        JobKind::DevicesExport,
        JobKind::DevicesPoll,
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
        matches!(self, JobKind::SessionsCleanup | JobKind::DevicesPoll)
    }

    /// How many times a job of this kind is tried before it fails.
    pub fn max_attempts(self) -> i32 {
        match self {
            JobKind::SnmpGet | JobKind::SnmpWalk | JobKind::EmailSend => 3,
            JobKind::Noop => 3,
            JobKind::SessionsCleanup | JobKind::DevicesExport => 2,
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
        })
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
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid parameter: a path below `params` and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub field: String,
    pub message: String,
}

impl ParamError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parameters that can check themselves beyond their types.
pub trait Params: DeserializeOwned + Serialize {
    fn check(&self, errors: &mut Vec<ParamError>);
}

fn check<P: Params>(params: &Value) -> Result<Value, Vec<ParamError>> {
    if !params.is_object() {
        return Err(vec![ParamError::new("params", "must be a JSON object")]);
    }
    let parsed: P = serde_path_to_error::deserialize(params.clone()).map_err(|e| {
        // The path names the field for type errors; serde's message names it
        // for unknown and missing fields ("unknown field `x`, expected ...").
        let path = e.path().to_string();
        let text = e.inner().to_string();
        let field = if path != "." {
            format!("params.{path}")
        } else {
            text.split('`')
                .nth(1)
                .filter(|_| text.contains("field"))
                .map(|f| format!("params.{f}"))
                .unwrap_or_else(|| "params".to_owned())
        };
        vec![ParamError::new(field, text)]
    })?;
    let mut errors = Vec::new();
    parsed.check(&mut errors);
    if errors.is_empty() {
        Ok(serde_json::to_value(&parsed).expect("parameters serialise"))
    } else {
        Err(errors)
    }
}

/// `noop`: sleeps, reporting progress; can be told to fail its first attempts
/// (to exercise retries and dead letters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_ms: Option<u64>,
    /// Fail this many attempts with a transient error before succeeding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_attempts: Option<u32>,
}

impl Params for NoopParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self.sleep_ms.is_some_and(|ms| ms > 600_000) {
            errors.push(ParamError::new(
                "params.sleep_ms",
                "at most 600000 (10 minutes)",
            ));
        }
        if self.fail_attempts.is_some_and(|n| n > 100) {
            errors.push(ParamError::new("params.fail_attempts", "at most 100"));
        }
    }
}

/// The arcs of a numeric OID such as `1.3.6.1.2.1.1.1.0` (a leading dot is
/// allowed): 2 to 128 arcs of at most 2^32 - 1 (SNMP's limit), the first 0, 1
/// or 2 and the second below 40 (what BER encodes in the OID's first byte,
/// and all the worker's SNMP encoder takes). The api checks parameters with
/// it and the worker parses them with it, so what passes one passes both.
pub fn oid_arcs(oid: &str) -> Option<Vec<u32>> {
    let oid = oid.strip_prefix('.').unwrap_or(oid);
    let arcs = oid
        .split('.')
        .map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        })
        .collect::<Option<Vec<u32>>>()?;
    ((2..=128).contains(&arcs.len()) && arcs[0] <= 2 && arcs[1] < 40).then_some(arcs)
}

/// Whether `oid` is a numeric OID ([`oid_arcs`]).
pub fn valid_oid(oid: &str) -> bool {
    oid_arcs(oid).is_some()
}

/// `snmp.get`: GET of each OID against the job's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpGetParams {
    pub oids: Vec<String>,
}

impl Params for SnmpGetParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self.oids.is_empty() || self.oids.len() > 64 {
            errors.push(ParamError::new("params.oids", "between 1 and 64 OIDs"));
        }
        for (i, oid) in self.oids.iter().enumerate() {
            if !valid_oid(oid) {
                errors.push(ParamError::new(
                    format!("params.oids[{i}]"),
                    "must be a numeric OID such as 1.3.6.1.2.1.1.1.0",
                ));
            }
        }
    }
}

/// `snmp.walk`: GETNEXT from `oid` through its subtree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpWalkParams {
    pub oid: String,
    /// At most this many values (default 1000, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u32>,
}

impl Params for SnmpWalkParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if !valid_oid(&self.oid) {
            errors.push(ParamError::new(
                "params.oid",
                "must be a numeric OID such as 1.3.6.1.2.1.1",
            ));
        }
        if self.max_rows.is_some_and(|n| n == 0 || n > 10_000) {
            errors.push(ParamError::new("params.max_rows", "between 1 and 10000"));
        }
    }
}

/// `email.send`: one plain-text message over SMTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSendParams {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Params for EmailSendParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        let to_ok = self.to.len() <= 254
            && self.to.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !self
                .to
                .chars()
                .any(|c| c.is_whitespace() || c == ',' || c == '<' || c == '>')
            // The worker's own parse of the recipient: what passes here, it
            // can send to.
            && self.to.parse::<lettre::message::Mailbox>().is_ok();
        if !to_ok {
            errors.push(ParamError::new("params.to", "must be one email address"));
        }
        if self.subject.trim().is_empty()
            || self.subject.chars().count() > 200
            || self.subject.contains(['\r', '\n'])
        {
            errors.push(ParamError::new(
                "params.subject",
                "1 to 200 characters on one line",
            ));
        }
        if self.body.len() > 100_000 {
            errors.push(ParamError::new("params.body", "at most 100000 bytes"));
        }
    }
}

/// `sessions.cleanup`: forgets expired sessions and deletes log rows older
/// than the retention period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsCleanupParams {
    /// Keep login and audit log rows this many days (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

impl Params for SessionsCleanupParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self
            .retention_days
            .is_some_and(|d| !(7..=3650).contains(&d))
        {
            errors.push(ParamError::new(
                "params.retention_days",
                "between 7 and 3650",
            ));
        }
    }
}

/// `devices.poll`: reads sysUpTime from every SNMP device of every tenant and
/// records each one's `status` (up or down) and `last_seen_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesPollParams {
    /// Devices polled at once (default 16, at most 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl Params for DevicesPollParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self.concurrency.is_some_and(|c| !(1..=128).contains(&c)) {
            errors.push(ParamError::new("params.concurrency", "between 1 and 128"));
        }
    }
}

/// `devices.export`: a CSV of the tenant's devices, kept as the job's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesExportParams {
    /// Only devices carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl Params for DevicesExportParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self
            .tag
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 64)
        {
            errors.push(ParamError::new("params.tag", "1 to 64 characters"));
        }
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
