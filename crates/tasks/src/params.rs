//! The parameters of each job kind: a typed struct that refuses unknown
//! fields, the checks beyond its types, and its JSON Schema (which the api's
//! OpenAPI document states, and which says exactly what the checks take).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

/// Writes every number with a fraction of zero (`3.0`) as the integer it
/// is: JSON Schema (and so the OpenAPI document) calls `3.0` an integer, and
/// clients that only have floating-point numbers send it so.
pub fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = if f < 0.0 {
                    Value::from(f as i64)
                } else {
                    Value::from(f as u64)
                };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Parameters that can check themselves beyond their types, and state
/// what they take as a JSON Schema.
pub trait Params: DeserializeOwned + Serialize {
    fn check(&self, errors: &mut Vec<ParamError>);

    /// Exactly what [`check`](Params::check) and the types take.
    fn schema() -> Value;
}

/// An optional whole number from `min` to `max` (`null` is as absent).
fn optional_integer(min: u64, max: u64) -> Value {
    json!({"type": ["integer", "null"], "minimum": min, "maximum": max})
}

/// An object of exactly these `properties`, `required` ones among them.
fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required,
           "properties": properties})
}

/// A numeric OID as [`oid_arcs`] takes it: an optional leading dot, 2 to
/// 128 arcs (leading zeros allowed), each at most 4294967295, the first at
/// most 2 and the second below 40.
const OID: &str = concat!(
    "^\\.?0*[0-2]\\.0*[1-3]?[0-9](?:\\.0*(?:429496729[0-5]|42949672[0-8][0-9]|",
    "4294967[01][0-9]{2}|429496[0-6][0-9]{3}|42949[0-5][0-9]{4}|4294[0-8][0-9]{5}|",
    "429[0-3][0-9]{6}|42[0-8][0-9]{7}|4[01][0-9]{8}|[1-3][0-9]{9}|[0-9]{1,9})){0,126}$"
);

/// The characters `str::trim` removes (Unicode White_Space).
const WHITE_SPACE: &str =
    "\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

pub(crate) fn check<P: Params>(params: &Value) -> Result<Value, Vec<ParamError>> {
    if !params.is_object() {
        return Err(vec![ParamError::new("params", "must be a JSON object")]);
    }
    let mut params = params.clone();
    whole_numbers(&mut params);
    let parsed: P = serde_path_to_error::deserialize(params).map_err(|e| {
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

/// `noop`: sleeps, reporting progress; can be told to fail its first attempts,
/// or every attempt until a time (to exercise retries, dead letters, and a
/// retry that succeeds once what it needed is back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_ms: Option<u64>,
    /// Fail this many attempts with a transient error before succeeding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_attempts: Option<u32>,
    /// Fail every attempt that starts before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_until: Option<chrono::DateTime<chrono::Utc>>,
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

    fn schema() -> Value {
        object(
            &[],
            json!({"sleep_ms": optional_integer(0, 600_000), "fail_attempts": optional_integer(0, 100),
                "fail_until": {"type": ["string", "null"], "format": "date-time"}}),
        )
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

    fn schema() -> Value {
        object(
            &["oids"],
            json!({"oids": {"type": "array", "minItems": 1, "maxItems": 64,
                            "items": {"type": "string", "pattern": OID}}}),
        )
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
    /// Values asked for per GETBULK request on SNMP v2c (default 20, 1 to
    /// 100; v1 has no GETBULK and walks with GETNEXT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_repetitions: Option<u32>,
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
        if self.max_repetitions.is_some_and(|n| n == 0 || n > 100) {
            errors.push(ParamError::new(
                "params.max_repetitions",
                "between 1 and 100",
            ));
        }
    }

    fn schema() -> Value {
        object(
            &["oid"],
            json!({"oid": {"type": "string", "pattern": OID},
                   "max_rows": optional_integer(1, 10_000),
                   "max_repetitions": optional_integer(1, 100)}),
        )
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

/// The addresses `email.send` takes: a dot-atom local part (letters,
/// digits, `_`, `+`, `-`, at most one dot inside) and a domain of 1 to 4
/// labels and a top-level one of letters; at most 254 characters. A
/// conservative grammar, stated as is in the OpenAPI document, inside what
/// SMTP and the mailer accept.
pub const MAIL_TO: &str = concat!(
    "^[A-Za-z0-9_+-]{1,32}(?:\\.[A-Za-z0-9_+-]{1,31})?@",
    "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.){1,4}[A-Za-z]{2,24}$"
);

static MAIL_TO_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(MAIL_TO).expect("MAIL_TO is a regex"));

impl Params for EmailSendParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        let to_ok = self.to.chars().count() <= 254
            && MAIL_TO_RE.is_match(&self.to)
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
        if self.body.chars().count() > 100_000 {
            errors.push(ParamError::new("params.body", "at most 100000 characters"));
        }
    }

    fn schema() -> Value {
        let line = format!("^[^\\r\\n\\u0000]*[^\\r\\n\\u0000{WHITE_SPACE}][^\\r\\n\\u0000]*$");
        object(
            &["to", "subject", "body"],
            json!({
                "to": {"type": "string", "maxLength": 254, "pattern": MAIL_TO},
                "subject": {"type": "string", "maxLength": 200, "pattern": line},
                "body": {"type": "string", "maxLength": 100_000},
            }),
        )
    }
}

/// `mib.compile`: compiles the tenant's MIB modules with the ones in these
/// uploaded files (`POST /api/v1/mibs` submits it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MibCompileParams {
    pub file_ids: Vec<uuid::Uuid>,
}

impl Params for MibCompileParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self.file_ids.is_empty() || self.file_ids.len() > 100 {
            errors.push(ParamError::new("params.file_ids", "1 to 100 file ids"));
        }
    }

    fn schema() -> Value {
        object(
            &["file_ids"],
            json!({"file_ids": {"type": "array", "minItems": 1, "maxItems": 100,
                "items": {"type": "string", "format": "uuid"}}}),
        )
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

    fn schema() -> Value {
        object(&[], json!({"retention_days": optional_integer(7, 3650)}))
    }
}

/// `jobs.prune`: deletes finished jobs older than `JOB_RETENTION` (the
/// worker's) in every tenant, with their results and outbox records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsPruneParams {
    /// Jobs deleted per statement (default 1000, at most 10000): each batch
    /// is a short transaction of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
}

impl Params for JobsPruneParams {
    fn check(&self, errors: &mut Vec<ParamError>) {
        if self.batch_size.is_some_and(|c| !(1..=10_000).contains(&c)) {
            errors.push(ParamError::new("params.batch_size", "between 1 and 10000"));
        }
    }

    fn schema() -> Value {
        object(&[], json!({"batch_size": optional_integer(1, 10_000)}))
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

    fn schema() -> Value {
        object(&[], json!({"concurrency": optional_integer(1, 128)}))
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
            .is_some_and(|t| t.is_empty() || t.chars().count() > 64)
        {
            errors.push(ParamError::new("params.tag", "1 to 64 characters"));
        }
    }

    fn schema() -> Value {
        object(
            &[],
            json!({"tag": {"type": ["string", "null"], "minLength": 1, "maxLength": 64}}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_grammar_is_inside_what_the_mailer_takes() {
        let label = |c: char| format!("a{}b", c.to_string().repeat(61));
        let longest_local = format!("{}.{}", "x".repeat(32), "y".repeat(31));
        let addresses = [
            "a@b.cd".to_owned(),
            "first.last+tag@mail.example.org".to_owned(),
            format!("{longest_local}@{}.{}.com", label('-'), label('0')),
            format!("-_+@{}.{}.{}.{}.{}", "a", "b-c", "d", "e", "z".repeat(24)),
        ];
        for address in &addresses {
            assert!(MAIL_TO_RE.is_match(address), "{address}");
            assert!(
                address.parse::<lettre::message::Mailbox>().is_ok(),
                "the mailer refuses {address}"
            );
        }
        for refused in [
            "a@b",
            "a..b@c.de",
            ".a@b.cd",
            "a@-b.cd",
            "a@b.c",
            "a b@c.de",
        ] {
            assert!(!MAIL_TO_RE.is_match(refused), "{refused}");
        }
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers() {
        let mut value = json!({"a": 3.0, "b": [1.5, -2.0], "c": "4.0", "d": 7});
        whole_numbers(&mut value);
        assert_eq!(value, json!({"a": 3, "b": [1.5, -2], "c": "4.0", "d": 7}));
        assert!(value["a"].is_u64());
    }
}
