//! Checks of a job about to be submitted, by a request or by a schedule:
//! its kind is known, its parameters are valid for the kind, the device it
//! names (if the kind takes one) is an SNMP device of the tenant, and its
//! options (deferral, expiry, limits, uniqueness) make sense. Each failure
//! names the field at fault.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferro_db::{DbError, TenantTx};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::jobs::{JobOptions, Uniqueness};
use crate::kinds::{DeviceNeed, ParamError};
use crate::queues::{MAX_PRIORITY, QueueTable};
use crate::{JobKind, JobStatus};

/// The kind named `kind`.
pub fn parse_kind(kind: &str) -> Result<JobKind, ParamError> {
    JobKind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        ParamError::new(
            "kind",
            format!("unknown job kind; one of {}", known.join(", ")),
        )
    })
}

/// The parameters of a `kind` job, normalised, if they and whether a device
/// is named suit the kind.
pub fn check_params(
    kind: JobKind,
    params: &Value,
    device_id: Option<Uuid>,
) -> Result<Value, Vec<ParamError>> {
    let params = kind.validate(params)?;
    match (kind.device_need(), device_id) {
        (DeviceNeed::SnmpDevice, None) => Err(vec![ParamError::new(
            "device_id",
            "is required for this kind",
        )]),
        (DeviceNeed::None, Some(_)) => Err(vec![ParamError::new(
            "device_id",
            "is not used by this kind",
        )]),
        _ => Ok(params),
    }
}

/// Whether the device a job names is an SNMP device of the tenant
/// (row-level security makes another tenant's device "no such device").
pub async fn check_device(
    tx: &mut TenantTx,
    device_id: Option<Uuid>,
) -> Result<Result<(), ParamError>, DbError> {
    let Some(device_id) = device_id else {
        return Ok(Ok(()));
    };
    let protocol: Option<String> = sqlx::query_scalar("SELECT protocol FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match protocol.as_deref() {
        None => Err(ParamError::new("device_id", "no such device")),
        Some("snmp") => Ok(()),
        Some(_) => Err(ParamError::new(
            "device_id",
            "must be an snmp device for this kind",
        )),
    })
}

/// How far in the past a `run_at` may be and still mean "now" (clocks of
/// clients drift); further back it is refused.
pub const RUN_AT_GRACE: Duration = Duration::from_secs(60);
/// How far ahead a job may be deferred or expire.
pub const MAX_AHEAD: Duration = Duration::from_secs(366 * 24 * 3600);
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: i64 = 25;

/// The optional parts of a submission, as a client sends them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OptionsInput {
    /// A configured queue; default: the kind's route.
    pub queue: Option<String>,
    /// 0 to 9, higher first; default 0.
    pub priority: Option<i64>,
    /// RFC 3339; not before then.
    pub run_at: Option<String>,
    /// Seconds from now; instead of `run_at`.
    pub countdown: Option<f64>,
    /// RFC 3339; not started by then, the job ends `cancelled`.
    pub expires_at: Option<String>,
    pub max_attempts: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub unique: Option<UniqueInput>,
}

/// `unique` of a submission.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueInput {
    /// Default: the job's kind, device and parameters.
    pub key: Option<String>,
    /// Only jobs created this many seconds ago or later count.
    pub period_seconds: Option<i64>,
    /// Only jobs in these states count (default: not yet ended).
    pub states: Option<Vec<String>>,
}

/// Checked options, and the job's deadline (`expires_at`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckedOptions {
    pub options: JobOptions,
    pub expires_at: Option<DateTime<Utc>>,
}

fn timestamp(field: &str, text: &str) -> Result<DateTime<Utc>, ParamError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ParamError::new(field, "must be an RFC 3339 date-time"))
}

/// Checks the options of a `kind` job at `now`; every fault is named. A
/// `run_at` no later than now (within [`RUN_AT_GRACE`]) or a zero
/// `countdown` means "now": the job is not deferred. A job that names no
/// queue goes to its kind's route in `queues`.
pub fn check_options(
    kind: JobKind,
    device_id: Option<Uuid>,
    params: &Value,
    input: &OptionsInput,
    queues: &QueueTable,
    now: DateTime<Utc>,
) -> Result<CheckedOptions, Vec<ParamError>> {
    let mut errors = Vec::new();
    let queue = match &input.queue {
        None => queues.route(kind).to_owned(),
        Some(name) if queues.contains(name) => name.clone(),
        Some(_) => {
            errors.push(ParamError::new(
                "queue",
                format!(
                    "is not a configured queue (the queues are {})",
                    queues.names().join(", ")
                ),
            ));
            String::new()
        }
    };
    let max_priority = i64::from(MAX_PRIORITY);
    let priority = match input.priority {
        None => 0,
        Some(p) if (0..=max_priority).contains(&p) => p as u8,
        Some(_) => {
            errors.push(ParamError::new(
                "priority",
                format!("must be 0 to {max_priority}"),
            ));
            0
        }
    };
    let ahead = chrono::Duration::from_std(MAX_AHEAD).expect("a year fits");
    let grace = chrono::Duration::from_std(RUN_AT_GRACE).expect("a minute fits");
    let mut run_at = None;
    match (&input.run_at, input.countdown) {
        (Some(_), Some(_)) => errors.push(ParamError::new(
            "countdown",
            "give run_at or countdown, not both",
        )),
        (Some(text), None) => match timestamp("run_at", text) {
            Err(err) => errors.push(err),
            Ok(at) if at < now - grace => errors.push(ParamError::new(
                "run_at",
                "is in the past (more than a minute ago)",
            )),
            Ok(at) if at > now + ahead => {
                errors.push(ParamError::new("run_at", "is more than 366 days ahead"))
            }
            Ok(at) => run_at = (at > now).then_some(at),
        },
        (None, Some(secs)) => {
            if !(0.0..=MAX_AHEAD.as_secs_f64()).contains(&secs) {
                errors.push(ParamError::new(
                    "countdown",
                    "must be 0 to 31622400 seconds",
                ));
            } else if secs > 0.0 {
                run_at = Some(now + chrono::Duration::milliseconds((secs * 1000.0) as i64));
            }
        }
        (None, None) => {}
    }
    let mut expires_at = None;
    if let Some(text) = &input.expires_at {
        match timestamp("expires_at", text) {
            Err(err) => errors.push(err),
            Ok(at) if at <= now => errors.push(ParamError::new("expires_at", "is in the past")),
            Ok(at) if at > now + ahead => {
                errors.push(ParamError::new("expires_at", "is more than 366 days ahead"))
            }
            Ok(at) if run_at.is_some_and(|run| at <= run) => {
                errors.push(ParamError::new("expires_at", "must be later than run_at"))
            }
            Ok(at) => expires_at = Some(at),
        }
    }
    if let Some(n) = input.max_attempts
        && !(1..=MAX_ATTEMPTS).contains(&n)
    {
        errors.push(ParamError::new(
            "max_attempts",
            format!("must be 1 to {MAX_ATTEMPTS}"),
        ));
    }
    let limit = kind.time_limit().as_secs() as i64;
    if let Some(n) = input.timeout_seconds
        && !(1..=limit).contains(&n)
    {
        errors.push(ParamError::new(
            "timeout_seconds",
            format!("must be 1 to {limit} (the time limit of {kind} jobs)"),
        ));
    }
    let unique = input
        .unique
        .as_ref()
        .map(|u| check_unique(kind, device_id, params, u, &mut errors));
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CheckedOptions {
        options: JobOptions {
            queue: Some(queue),
            priority,
            run_at,
            max_attempts: input.max_attempts.map(|n| n as i32),
            timeout_seconds: input.timeout_seconds.map(|n| n as i32),
            unique,
        },
        expires_at,
    })
}

fn check_unique(
    kind: JobKind,
    device_id: Option<Uuid>,
    params: &Value,
    input: &UniqueInput,
    errors: &mut Vec<ParamError>,
) -> Uniqueness {
    let key = match &input.key {
        Some(key) if key.is_empty() || key.chars().count() > 255 => {
            errors.push(ParamError::new("unique.key", "must be 1 to 255 characters"));
            String::new()
        }
        Some(key) => Uniqueness::key(key),
        None => Uniqueness::job_key(kind, device_id, params),
    };
    let period = match input.period_seconds {
        Some(secs) if !(1..=MAX_AHEAD.as_secs() as i64).contains(&secs) => {
            errors.push(ParamError::new(
                "unique.period_seconds",
                "must be 1 to 31622400",
            ));
            None
        }
        Some(secs) => Some(Duration::from_secs(secs as u64)),
        None => None,
    };
    let states = match &input.states {
        None => Uniqueness::LIVE.to_vec(),
        Some(names) if names.is_empty() => {
            errors.push(ParamError::new("unique.states", "must name a state"));
            Vec::new()
        }
        Some(names) => {
            let parsed: Result<Vec<JobStatus>, _> = names.iter().map(|n| n.parse()).collect();
            parsed.unwrap_or_else(|_| {
                let all: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(ParamError::new(
                    "unique.states",
                    format!("each must be one of {}", all.join(", ")),
                ));
                Vec::new()
            })
        }
    };
    Uniqueness {
        key,
        period,
        states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: OptionsInput) -> Result<CheckedOptions, Vec<ParamError>> {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let queues = QueueTable::parse(
            r#"{"queues": [{"name": "default"}, {"name": "bulk"}], "routes": {"noop": "bulk"}}"#,
        )
        .unwrap();
        check_options(JobKind::Noop, None, &json!({}), &input, &queues, now)
    }

    fn fields(result: Result<CheckedOptions, Vec<ParamError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn run_at_in_the_near_past_or_a_zero_countdown_means_now() {
        for input in [
            OptionsInput {
                run_at: Some("2026-12-07T11:59:30Z".into()),
                ..Default::default()
            },
            OptionsInput {
                countdown: Some(0.0),
                ..Default::default()
            },
        ] {
            assert_eq!(check(input).unwrap().options.run_at, None);
        }
        let later = check(OptionsInput {
            countdown: Some(1.5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            later.options.run_at.unwrap().to_rfc3339(),
            "2026-12-07T12:00:01.500+00:00"
        );
    }

    #[test]
    fn every_bad_option_is_named() {
        let bad = OptionsInput {
            queue: Some("nope".into()),
            priority: Some(10),
            run_at: Some("2026-12-07T11:58:00Z".into()),
            expires_at: Some("yesterday".into()),
            max_attempts: Some(0),
            timeout_seconds: Some(661),
            unique: Some(UniqueInput {
                key: Some(String::new()),
                period_seconds: Some(0),
                states: Some(vec!["done".into()]),
            }),
            ..Default::default()
        };
        assert_eq!(
            fields(check(bad)),
            [
                "queue",
                "priority",
                "run_at",
                "expires_at",
                "max_attempts",
                "timeout_seconds",
                "unique.key",
                "unique.period_seconds",
                "unique.states"
            ]
        );
        let both = OptionsInput {
            run_at: Some("2026-12-07T13:00:00Z".into()),
            countdown: Some(5.0),
            ..Default::default()
        };
        assert_eq!(fields(check(both)), ["countdown"]);
        let expires_first = OptionsInput {
            run_at: Some("2026-12-07T13:00:00Z".into()),
            expires_at: Some("2026-12-07T12:30:00Z".into()),
            ..Default::default()
        };
        assert_eq!(fields(check(expires_first)), ["expires_at"]);
    }

    #[test]
    fn a_job_goes_to_its_kinds_route_unless_it_names_a_queue() {
        let routed = check(OptionsInput::default()).unwrap().options;
        assert_eq!(
            (routed.queue.as_deref(), routed.priority),
            (Some("bulk"), 0)
        );
        let named = check(OptionsInput {
            queue: Some("default".into()),
            priority: Some(9),
            ..Default::default()
        })
        .unwrap()
        .options;
        assert_eq!(
            (named.queue.as_deref(), named.priority),
            (Some("default"), 9)
        );
    }

    #[test]
    fn a_unique_job_without_a_key_is_keyed_by_what_it_does() {
        let checked = check(OptionsInput {
            unique: Some(UniqueInput::default()),
            ..Default::default()
        })
        .unwrap();
        let unique = checked.options.unique.unwrap();
        assert_eq!(
            unique.key,
            Uniqueness::job_key(JobKind::Noop, None, &json!({}))
        );
        assert_eq!(unique.states, Uniqueness::LIVE);
        assert_eq!(unique.period, None);
    }
}
