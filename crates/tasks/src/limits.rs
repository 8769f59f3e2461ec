//! Rate limits: per queue, per kind, and per tenant within a queue, as
//! `deploy/queues.json` sets them and as a platform administrator changes
//! them at run time (overrides kept in Redis, read by every worker each
//! second). Enforcement is the worker's (`worker/src/limits.rs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use uuid::Uuid;

/// At most `count` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
}

/// What a limit looks like, for error messages.
pub const FORMAT: &str = "a rate such as 100/s, 20/m or 500/h (1 to 1000000 per period)";

impl RateLimit {
    /// `"100/s"`, `"20/m"`, `"500/h"`.
    pub fn parse(text: &str) -> Option<Self> {
        let (count, unit) = text.trim().split_once('/')?;
        let count: u32 = count.trim().parse().ok()?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        (1..=1_000_000)
            .contains(&count)
            .then_some(Self { count, period })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every job of a queue.
    Queue,
    /// Every job of a kind.
    Kind,
    /// Each tenant's jobs of a queue, separately.
    Tenant,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Queue, Scope::Kind, Scope::Tenant];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Queue => "queue",
            Scope::Kind => "kind",
            Scope::Tenant => "tenant",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The limits in force: scope and name (a queue, or a kind) to limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits(BTreeMap<(Scope, String), RateLimit>);

/// An override's value that lifts a configured limit.
pub const NO_LIMIT: &str = "none";

impl Limits {
    pub fn set(&mut self, scope: Scope, name: &str, limit: RateLimit) {
        self.0.insert((scope, name.to_owned()), limit);
    }

    pub fn get(&self, scope: Scope, name: &str) -> Option<RateLimit> {
        self.0.get(&(scope, name.to_owned())).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These limits with the overrides applied: field `scope:name`, value a
    /// limit or [`NO_LIMIT`]. Fields that do not parse are skipped.
    pub fn with_overrides(&self, overrides: &HashMap<String, String>) -> Self {
        let mut limits = self.clone();
        for (field, value) in overrides {
            let Some((scope, name)) = field
                .split_once(':')
                .and_then(|(s, n)| Some((Scope::parse(s)?, n)))
            else {
                continue;
            };
            if value == NO_LIMIT {
                limits.0.remove(&(scope, name.to_owned()));
            } else if let Some(limit) = RateLimit::parse(value) {
                limits.set(scope, name, limit);
            }
        }
        limits
    }

    /// The limits a job of `kind` in `queue` from `tenant` is held to, each
    /// with the key its bucket is kept under: its queue's, its kind's, and
    /// its tenant's share of its queue.
    pub fn applicable(&self, queue: &str, kind: &str, tenant: Uuid) -> Vec<(String, RateLimit)> {
        let mut found = Vec::new();
        if let Some(limit) = self.get(Scope::Queue, queue) {
            found.push((format!("queue:{queue}"), limit));
        }
        if let Some(limit) = self.get(Scope::Kind, kind) {
            found.push((format!("kind:{kind}"), limit));
        }
        if let Some(limit) = self.get(Scope::Tenant, queue) {
            found.push((format!("tenant:{queue}:{tenant}"), limit));
        }
        found
    }

    /// Every limit, by scope then name.
    pub fn list(&self) -> impl Iterator<Item = (Scope, &str, RateLimit)> {
        self.0.iter().map(|((s, n), l)| (*s, n.as_str(), *l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let limit = RateLimit::parse("20/m").unwrap();
        assert_eq!(limit.count, 20);
        assert_eq!(limit.period, Duration::from_secs(60));
        assert_eq!(limit.to_string(), "20/m");
        for bad in ["", "20", "0/s", "x/s", "20/d", "2000000/s", "-1/s"] {
            assert!(RateLimit::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn overrides_set_and_lift_limits_and_jobs_find_theirs() {
        let mut limits = Limits::default();
        limits.set(Scope::Queue, "snmp", RateLimit::parse("100/s").unwrap());
        limits.set(Scope::Kind, "email.send", RateLimit::parse("20/m").unwrap());
        let overrides = HashMap::from([
            ("queue:snmp".to_owned(), NO_LIMIT.to_owned()),
            ("tenant:default".to_owned(), "5/s".to_owned()),
            ("kind:email.send".to_owned(), "garbage".to_owned()),
        ]);
        let now = limits.with_overrides(&overrides);
        assert_eq!(now.get(Scope::Queue, "snmp"), None);
        assert_eq!(now.get(Scope::Kind, "email.send").unwrap().count, 20);
        let tenant = Uuid::new_v4();
        let keys: Vec<String> = now
            .applicable("default", "email.send", tenant)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "kind:email.send".to_owned(),
                format!("tenant:default:{tenant}")
            ]
        );
    }
}
