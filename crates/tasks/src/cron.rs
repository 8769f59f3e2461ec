//! Cron expressions in a time zone, and what a scheduler does when a
//! schedule comes due: pure functions of the times given, so that tests can
//! drive them with any clock.
//!
//! Expressions have 5 fields (minute hour day-of-month month day-of-week), or
//! 6 with seconds first. Evaluation happens in the schedule's IANA time zone
//! (croner's DST rules: a wall-clock time skipped by a spring-forward gap runs
//! at the first instant after the gap, and one repeated by a fall-back
//! overlap runs once).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed, valid schedule: its expression and time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    tz: Tz,
}

/// What the OpenAPI document states of an expression [`CronSpec::parse`]
/// may take: 5 or 6 fields separated by spaces, of the characters croner's
/// syntax uses, at most 200 characters besides the spaces around it. (Which
/// combinations croner accepts, and whether the expression ever matches a
/// date, is more than a pattern can say.)
pub const CRON_PATTERN: &str = "^ *[0-9A-Za-z*?,/#-]+(?: +[0-9A-Za-z*?,/#-]+){4,5} *$";

/// The names of the time zones a schedule may use (IANA's, as chrono-tz
/// has them), exactly as they must be written.
pub fn timezone_names() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

/// Why a cron expression or time zone was refused: `(field, message)`.
pub type SpecError = (&'static str, String);

impl CronSpec {
    /// Parses `expression` for `timezone`; errors name the field at fault.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, Vec<SpecError>> {
        let mut errors = Vec::new();
        let fields = expression.split_whitespace().count();
        let trimmed = expression.trim_matches(' ');
        let cron = if trimmed.chars().count() > 200 {
            errors.push(("cron", "at most 200 characters".into()));
            None
        } else if !trimmed
            .chars()
            .all(|c| c == ' ' || c.is_ascii_alphanumeric() || "*?,/#-".contains(c))
        {
            errors.push((
                "cron",
                "fields are separated by spaces and hold only letters, digits and * ? , / # -"
                    .into(),
            ));
            None
        } else if !(5..=6).contains(&fields) {
            errors.push((
                "cron",
                format!(
                    "has {fields} fields; use 5 (minute hour day month weekday) or 6 with seconds first"
                ),
            ));
            None
        } else if expression.contains('@') {
            errors.push(("cron", "nicknames such as @daily are not accepted".into()));
            None
        } else {
            let parser = CronParser::builder()
                .seconds(Seconds::Optional)
                .year(Year::Disallowed)
                .build();
            match parser.parse(expression) {
                Ok(cron) => Some(cron),
                Err(err) => {
                    errors.push(("cron", format!("is not a valid cron expression: {err}")));
                    None
                }
            }
        };
        let tz = match Tz::from_str(timezone) {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push((
                    "timezone",
                    "is not an IANA time zone such as UTC or Europe/Paris".into(),
                ));
                None
            }
        };
        match (cron, tz) {
            (Some(cron), Some(tz)) if errors.is_empty() => {
                let spec = Self { cron, tz };
                // A valid pattern that never matches (February 30th) is refused too.
                if spec.next_after(Utc::now()).is_none() {
                    return Err(vec![("cron", "never matches a real date".into())]);
                }
                Ok(spec)
            }
            _ => Err(errors),
        }
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest fire time at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` fire times after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

/// What to do about slots missed while no scheduler ran (`misfire_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MisfirePolicy {
    /// Fire once, for the latest missed slot (the default).
    FireOnce,
    /// Fire nothing for missed slots; wait for the next one.
    Skip,
}

impl MisfirePolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fire_once" => Some(Self::FireOnce),
            "skip" => Some(Self::Skip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FireOnce => "fire_once",
            Self::Skip => "skip",
        }
    }
}

/// The decision for a schedule that came due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// The slot to make a job for (its `scheduled_for`), if any.
    pub fire: Option<DateTime<Utc>>,
    /// The schedule's next `next_run_at`.
    pub next: Option<DateTime<Utc>>,
    /// Slots passed over (missed and not fired).
    pub skipped: bool,
}

/// Plans the fire of a schedule whose `next_run_at` (`due`) has come, at `now`.
///
/// A slot is on time when `now` is at most `grace` after it. An on-time due
/// slot fires. Otherwise slots were missed (the scheduler was down): the
/// latest slot at or before `now` fires if it is on time, or, for
/// `FireOnce`, even late; earlier missed slots never fire. So downtime costs
/// at most one late job per schedule, never a burst.
pub fn plan(
    spec: &CronSpec,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    policy: MisfirePolicy,
) -> FirePlan {
    if now - due <= grace {
        return FirePlan {
            fire: Some(due),
            next: spec.next_after(due),
            skipped: false,
        };
    }
    let latest = spec
        .latest_at_or_before(now)
        .filter(|l| *l >= due)
        .unwrap_or(due);
    let on_time = now - latest <= grace;
    let fire = (on_time || policy == MisfirePolicy::FireOnce).then_some(latest);
    FirePlan {
        fire,
        next: spec.next_after(latest.max(now - grace)),
        skipped: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec(expr: &str, tz: &str) -> CronSpec {
        CronSpec::parse(expr, tz).unwrap()
    }

    #[test]
    fn five_and_six_field_expressions_parse_and_others_name_the_field() {
        assert!(CronSpec::parse("*/5 * * * *", "UTC").is_ok());
        assert!(CronSpec::parse("* * * * * *", "UTC").is_ok());
        let err = CronSpec::parse("* * * *", "UTC").unwrap_err();
        assert_eq!(err[0].0, "cron");
        let err = CronSpec::parse("0 0 * * * * 2030", "UTC").unwrap_err();
        assert_eq!(err[0].0, "cron");
        let err = CronSpec::parse("61 * * * *", "UTC").unwrap_err();
        assert_eq!(err[0].0, "cron");
        let err = CronSpec::parse("0 0 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(err, vec![("timezone", err[0].1.clone())]);
        let both = CronSpec::parse("nonsense", "Nowhere").unwrap_err();
        let fields: Vec<_> = both.iter().map(|e| e.0).collect();
        assert_eq!(fields, ["cron", "timezone"]);
        assert_eq!(
            CronSpec::parse("0 0 30 2 *", "UTC").unwrap_err()[0].0,
            "cron"
        );
    }

    #[test]
    fn seconds_come_first_in_six_fields() {
        let s = spec("30 * * * * *", "UTC");
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.upcoming(utc("2026-01-01T00:00:30Z"), 2),
            vec![utc("2026-01-01T00:01:30Z"), utc("2026-01-01T00:02:30Z")]
        );
    }

    #[test]
    fn time_zones_shift_the_fire_time() {
        let s = spec("0 9 * * *", "Europe/Paris");
        // 09:00 in Paris is 08:00 UTC in winter.
        assert_eq!(
            s.next_after(utc("2026-01-10T00:00:00Z")),
            Some(utc("2026-01-10T08:00:00Z"))
        );
        // ... and 07:00 UTC in summer.
        assert_eq!(
            s.next_after(utc("2026-07-10T00:00:00Z")),
            Some(utc("2026-07-10T07:00:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_right_after_the_gap() {
        // Europe/Paris skips 02:00-03:00 on 2026-03-29.
        let s = spec("30 2 * * *", "Europe/Paris");
        let next = s.next_after(utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            next,
            chrono_tz::Europe::Paris
                .with_ymd_and_hms(2026, 3, 29, 3, 0, 0)
                .unwrap()
        );
        // And the day after, back to 02:30.
        assert_eq!(s.next_after(next), Some(utc("2026-03-30T00:30:00Z")));
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once() {
        // Europe/Paris repeats 02:00-03:00 on 2026-10-25.
        let s = spec("30 2 * * *", "Europe/Paris");
        let first = s.next_after(utc("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-10-25T00:30:00Z"));
        let second = s.next_after(first).unwrap();
        assert_eq!(
            second,
            utc("2026-10-26T01:30:00Z"),
            "not again at 01:30 UTC"
        );
    }

    #[test]
    fn an_hourly_schedule_keeps_real_hours_across_fall_back() {
        let s = spec("0 * * * *", "America/New_York");
        let fires = s.upcoming(utc("2026-11-01T04:30:00Z"), 3);
        assert_eq!(
            fires,
            vec![
                utc("2026-11-01T05:00:00Z"),
                utc("2026-11-01T06:00:00Z"),
                utc("2026-11-01T07:00:00Z")
            ]
        );
    }

    const GRACE: chrono::Duration = chrono::Duration::seconds(1);

    #[test]
    fn an_on_time_slot_fires_and_moves_to_the_next() {
        let s = spec("* * * * * *", "UTC");
        let due = utc("2026-01-01T00:00:10Z");
        let p = plan(
            &s,
            due,
            due + chrono::Duration::milliseconds(40),
            GRACE,
            MisfirePolicy::FireOnce,
        );
        assert_eq!(
            p,
            FirePlan {
                fire: Some(due),
                next: Some(utc("2026-01-01T00:00:11Z")),
                skipped: false
            }
        );
    }

    #[test]
    fn after_downtime_fire_once_fires_the_latest_missed_slot_once() {
        let s = spec("*/5 * * * *", "UTC");
        let due = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-01-01T01:02:00Z");
        let p = plan(&s, due, now, GRACE, MisfirePolicy::FireOnce);
        assert_eq!(p.fire, Some(utc("2026-01-01T01:00:00Z")));
        assert_eq!(p.next, Some(utc("2026-01-01T01:05:00Z")));
        assert!(p.skipped);
    }

    #[test]
    fn after_downtime_skip_fires_nothing_and_waits() {
        let s = spec("*/5 * * * *", "UTC");
        let p = plan(
            &s,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T01:02:00Z"),
            GRACE,
            MisfirePolicy::Skip,
        );
        assert_eq!(p.fire, None);
        assert_eq!(p.next, Some(utc("2026-01-01T01:05:00Z")));
    }

    #[test]
    fn a_missed_backlog_with_an_on_time_latest_slot_fires_that_slot_under_skip_too() {
        let s = spec("* * * * * *", "UTC");
        let now = utc("2026-01-01T00:00:20.300Z");
        let p = plan(
            &s,
            utc("2026-01-01T00:00:12Z"),
            now,
            GRACE,
            MisfirePolicy::Skip,
        );
        assert_eq!(p.fire, Some(utc("2026-01-01T00:00:20Z")));
        assert_eq!(p.next, Some(utc("2026-01-01T00:00:21Z")));
    }
}
