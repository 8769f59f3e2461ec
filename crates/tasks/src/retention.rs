//! How long finished jobs are kept (`JOB_RETENTION`), per final status.
//! `jobs.prune` deletes older ones with their results and outbox records.

use std::time::Duration;

use crate::JobStatus;

const DAY: u64 = 24 * 3600;

/// The age after which a finished job is deleted, per final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRetention {
    pub succeeded: Duration,
    pub failed: Duration,
    pub cancelled: Duration,
}

impl Default for JobRetention {
    /// Succeeded 7 days; failed and cancelled 30 days.
    fn default() -> Self {
        Self {
            succeeded: Duration::from_secs(7 * DAY),
            failed: Duration::from_secs(30 * DAY),
            cancelled: Duration::from_secs(30 * DAY),
        }
    }
}

/// What `JOB_RETENTION` takes, for configuration errors.
pub const FORMAT: &str = "comma-separated status=age pairs, status succeeded, failed or \
                          cancelled, age a whole number of s, m, h or d from 1 h to 3650 d \
                          (e.g. succeeded=7d,failed=30d,cancelled=30d)";

impl JobRetention {
    /// `succeeded=7d,failed=30d`: each named status gets its age, the others
    /// keep the default. Ages from one hour to ten years.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut retention = Self::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (status, age) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not status=age"))?;
            let age = parse_age(age.trim()).ok_or_else(|| format!("{pair:?}: bad age"))?;
            match status.trim() {
                "succeeded" => retention.succeeded = age,
                "failed" => retention.failed = age,
                "cancelled" => retention.cancelled = age,
                other => return Err(format!("{other:?} is not a final status")),
            }
        }
        Ok(retention)
    }

    /// Each final status with its age.
    pub fn ages(&self) -> [(JobStatus, Duration); 3] {
        [
            (JobStatus::Succeeded, self.succeeded),
            (JobStatus::Failed, self.failed),
            (JobStatus::Cancelled, self.cancelled),
        ]
    }
}

fn parse_age(text: &str) -> Option<Duration> {
    let split = text.len().checked_sub(1)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let secs = n.checked_mul(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => DAY,
        _ => return None,
    })?;
    (3600..=3650 * DAY)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_parsed_with_defaults_for_what_is_not_named() {
        assert_eq!(JobRetention::parse("").unwrap(), JobRetention::default());
        let r = JobRetention::parse("succeeded=2d, cancelled=12h").unwrap();
        assert_eq!(r.succeeded, Duration::from_secs(2 * DAY));
        assert_eq!(r.cancelled, Duration::from_secs(12 * 3600));
        assert_eq!(r.failed, Duration::from_secs(30 * DAY));
        assert_eq!(
            JobRetention::parse("failed=90m").unwrap().failed,
            Duration::from_secs(5400)
        );
        for bad in [
            "succeeded",
            "succeeded=7",
            "succeeded=7w",
            "queued=7d",
            "succeeded=30m",
            "succeeded=4000d",
            "succeeded=-1d",
            "succeeded=d",
        ] {
            assert!(JobRetention::parse(bad).is_err(), "{bad}");
        }
    }
}
