//! Named queues and the routes from job kind to queue (`deploy/queues.json`).
//!
//! Every service reads the same table: the api and the scheduler route a
//! new job to its queue (the kind's route, else the default queue, unless
//! the submission names one), the worker consumes the queues it is given
//! (all of them by default). The file is read once at start; a bad one
//! stops the service with a line naming the file and what is wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferro_config::{ConfigError, Env};
use serde::Deserialize;

use crate::kinds::JobKind;
use crate::limits::{self, Limits, RateLimit, Scope};

/// The queue every kind goes to when neither the table nor the submission
/// says otherwise, and the only queue when there is no table.
pub const DEFAULT_QUEUE: &str = "default";

/// Highest priority a job may have (0 is the lowest and the default).
pub const MAX_PRIORITY: u8 = 9;

/// Where the table is read from when `QUEUES_CONFIG` is not set.
pub const DEFAULT_PATH: &str = "deploy/queues.json";

/// The configured queues and routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTable {
    queues: Vec<String>,
    default_queue: String,
    routes: BTreeMap<JobKind, String>,
    limits: Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueuesFile {
    queues: Vec<QueueEntry>,
    #[serde(default)]
    default_queue: Option<String>,
    #[serde(default)]
    routes: BTreeMap<String, String>,
    /// Kind -> rate limit.
    #[serde(default)]
    kind_limits: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueEntry {
    name: String,
    /// Every job of the queue, across all workers.
    #[serde(default)]
    rate_limit: Option<String>,
    /// Each tenant's jobs of the queue, separately.
    #[serde(default)]
    tenant_rate_limit: Option<String>,
}

impl Default for QueueTable {
    /// One queue, `default`, for every kind.
    fn default() -> Self {
        Self {
            queues: vec![DEFAULT_QUEUE.to_owned()],
            default_queue: DEFAULT_QUEUE.to_owned(),
            routes: BTreeMap::new(),
            limits: Limits::default(),
        }
    }
}

fn rate(field: &str, text: &str) -> Result<RateLimit, String> {
    RateLimit::parse(text).ok_or_else(|| format!("{field}: {text:?} is not {}", limits::FORMAT))
}

/// Whether `name` can name a queue: 1 to 32 of `a-z`, `0-9`, `_`, `-`,
/// starting with a letter or digit (it becomes part of broker names).
pub fn is_queue_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().enumerate().all(|(at, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (at > 0 && (b == b'_' || b == b'-'))
        })
}

impl QueueTable {
    /// The table `QUEUES_CONFIG` names (see [`QueueTable::load`]).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::load(env.raw("QUEUES_CONFIG")).map_err(|reason| ConfigError::Rejected {
            variable: "QUEUES_CONFIG",
            reason,
        })
    }

    /// Reads the table from `QUEUES_CONFIG` (a path, which must exist), else
    /// from [`DEFAULT_PATH`] if there is one, else [`QueueTable::default`].
    pub fn load(queues_config: Option<&str>) -> Result<Self, String> {
        let (path, required) = match queues_config {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::default())
            }
            Err(err) => Err(format!("cannot read {}: {err}", path.display())),
        }
    }

    /// Parses and checks a table: queue names valid and distinct, the
    /// default and every route naming a configured queue, every route's
    /// kind a known kind.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: QueuesFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut queues: Vec<String> = Vec::with_capacity(file.queues.len());
        let mut limits = Limits::default();
        for entry in file.queues {
            if let Some(text) = &entry.rate_limit {
                let limit = rate(&format!("queue {}: rate_limit", entry.name), text)?;
                limits.set(Scope::Queue, &entry.name, limit);
            }
            if let Some(text) = &entry.tenant_rate_limit {
                let limit = rate(&format!("queue {}: tenant_rate_limit", entry.name), text)?;
                limits.set(Scope::Tenant, &entry.name, limit);
            }
            if !is_queue_name(&entry.name) {
                return Err(format!(
                    "queue name {:?}: expected 1 to 32 of a-z, 0-9, _ and -",
                    entry.name
                ));
            }
            if queues.contains(&entry.name) {
                return Err(format!("queue {:?} is named twice", entry.name));
            }
            queues.push(entry.name);
        }
        let default_queue = file
            .default_queue
            .unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        if !queues.contains(&default_queue) {
            return Err(format!("default_queue {default_queue:?} is not in queues"));
        }
        let mut routes = BTreeMap::new();
        for (kind, queue) in file.routes {
            let Some(known) = JobKind::parse(&kind) else {
                return Err(format!("routes: {kind:?} is not a job kind"));
            };
            if !queues.contains(&queue) {
                return Err(format!(
                    "routes: {kind} goes to {queue:?}, which is not in queues"
                ));
            }
            routes.insert(known, queue);
        }
        for (kind, text) in file.kind_limits {
            if JobKind::parse(&kind).is_none() {
                return Err(format!("kind_limits: {kind:?} is not a job kind"));
            }
            limits.set(
                Scope::Kind,
                &kind,
                rate(&format!("kind_limits: {kind}"), &text)?,
            );
        }
        Ok(Self {
            queues,
            default_queue,
            routes,
            limits,
        })
    }

    /// The rate limits the file sets (before any run-time override).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The configured queues, in the file's order.
    pub fn names(&self) -> &[String] {
        &self.queues
    }

    pub fn contains(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q == queue)
    }

    /// The queue a job of `kind` goes to when its submission names none.
    pub fn route(&self, kind: JobKind) -> &str {
        self.routes.get(&kind).unwrap_or(&self.default_queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_routes() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/queues.json"),
        )
        .unwrap();
        let table = QueueTable::parse(&text).unwrap();
        assert!(table.contains(DEFAULT_QUEUE));
        assert_eq!(table.route(JobKind::SnmpGet), "snmp");
        assert_eq!(table.route(JobKind::Noop), DEFAULT_QUEUE);
        assert!(table.limits().get(Scope::Kind, "email.send").is_some());
    }

    #[test]
    fn bad_tables_say_what_is_wrong() {
        let cases = [
            (r#"{"queues": []}"#, "default_queue"),
            (r#"{"queues": [{"name": "Big"}]}"#, "queue name"),
            (
                r#"{"queues": [{"name": "default"}, {"name": "default"}]}"#,
                "twice",
            ),
            (
                r#"{"queues": [{"name": "default"}], "routes": {"nope": "default"}}"#,
                "not a job kind",
            ),
            (
                r#"{"queues": [{"name": "default"}], "routes": {"noop": "x"}}"#,
                "not in queues",
            ),
            (
                r#"{"queues": [{"name": "default", "speed": 1}]}"#,
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            let err = QueueTable::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(QueueTable::load(Some("/nonexistent/queues.json")).is_err());
    }

    #[test]
    fn queue_names() {
        for good in ["default", "snmp", "a", "bulk_io", "q-2"] {
            assert!(is_queue_name(good), "{good}");
        }
        for bad in ["", "Default", "-a", "a.b", "a b", &"x".repeat(33)] {
            assert!(!is_queue_name(bad), "{bad}");
        }
    }
}
