//! Everything the worker reads from the environment, validated at start.

use std::time::Duration;

use ferro_tasks::queues::QueueTable;
use ferro_tasks::retention::JobRetention;

use ferro_config::{
    AppEnv, BrokerConfig, ConfigError, DatabaseConfig, Env, LogConfig, RedisConfig, SecretUrl,
};

/// The worker's whole configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub app_env: AppEnv,
    pub log: LogConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub broker: BrokerConfig,
    /// `WORKER_METRICS_ADDR` (e.g. `0.0.0.0:9101`): Prometheus metrics; off
    /// when unset.
    pub metrics_addr: Option<String>,
    /// `JOB_REDELIVER_AFTER_SECONDS`, default 60 (1 to 86400): how long a
    /// published job may wait without starting before the relay looks at
    /// it, and publishes it again if the broker seems to have lost it.
    pub redeliver_after: Duration,
    /// `QUEUES_CONFIG` (default `deploy/queues.json` when present): the
    /// job queues and routes.
    pub queues: QueueTable,
    /// How jobs run.
    pub run: RunConfig,
}

impl WorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let queues = QueueTable::from_env(env)?;
        let mut run = RunConfig::from_env(env)?;
        run.queues = consumed_queues(env, &queues, run.concurrency)?;
        run.limits = queues.limits().clone();
        Ok(Self {
            app_env: AppEnv::from_env(env)?,
            log: LogConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            redis: RedisConfig::from_env(env)?,
            broker: BrokerConfig::from_env(env)?,
            metrics_addr: env.raw("WORKER_METRICS_ADDR").map(str::to_owned),
            redeliver_after: redeliver_after(env)?,
            queues,
            run,
        })
    }
}

/// `WORKER_QUEUES` (or `--queues`): the job queues this worker consumes, as
/// `a,b` or with a cap on how many of a queue's jobs run at once, `a=2,b`;
/// default every configured queue. A queue without a cap may use all of
/// `concurrency`.
fn consumed_queues(
    env: &Env,
    table: &QueueTable,
    concurrency: usize,
) -> Result<Vec<(String, usize)>, ConfigError> {
    let rejected = |reason: String| ConfigError::Rejected {
        variable: "WORKER_QUEUES",
        reason,
    };
    let Some(text) = env.raw("WORKER_QUEUES") else {
        return Ok(table
            .names()
            .iter()
            .map(|q| (q.clone(), concurrency))
            .collect());
    };
    let mut queues: Vec<(String, usize)> = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let (name, cap) = match entry.split_once('=') {
            Some((name, cap)) => {
                let cap = cap
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        rejected(format!(
                            "{entry:?}: the cap after = must be a number from 1 to 1000"
                        ))
                    })?;
                (name.trim(), cap.min(concurrency))
            }
            None => (entry, concurrency),
        };
        if !table.contains(name) {
            return Err(rejected(format!(
                "{name:?} is not a configured queue (the queues are {})",
                table.names().join(", ")
            )));
        }
        if queues.iter().any(|(q, _)| q == name) {
            return Err(rejected(format!("{name:?} is named twice")));
        }
        queues.push((name.to_owned(), cap));
    }
    Ok(queues)
}

fn redeliver_after(env: &Env) -> Result<Duration, ConfigError> {
    const SECONDS: &str = "seconds from 1 to 86400";
    let secs = env.parse_or("JOB_REDELIVER_AFTER_SECONDS", 60u64, SECONDS)?;
    if !(1..=86_400).contains(&secs) {
        return Err(ConfigError::Invalid {
            variable: "JOB_REDELIVER_AFTER_SECONDS",
            expected: SECONDS,
        });
    }
    Ok(Duration::from_secs(secs))
}

/// How the worker runs jobs: what [`crate::runner::run`] needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `WORKER_CONCURRENCY` (or `--concurrency`), default 8: jobs run at once,
    /// and the broker prefetch.
    pub concurrency: usize,
    /// `WORKER_LEASE_SECONDS`, default 30: how long a claim holds without renewal.
    pub lease: Duration,
    /// `WORKER_SHUTDOWN_GRACE_SECONDS`, default 30: how long running jobs may
    /// finish after SIGTERM before they are handed back.
    pub grace: Duration,
    /// Identifies this worker in `jobs.worker_id` (host and pid).
    pub worker_id: String,
    /// `SMTP_URL` / `SMTP_FROM`, for `email.send`; `None` when unset.
    pub smtp: Option<SmtpConfig>,
    /// `JOB_RETENTION`, for `jobs.prune`: how long finished jobs are kept.
    pub retention: JobRetention,
    /// The job queues consumed, each with the most of its jobs that run at
    /// once (at most `concurrency`); empty: the default queue alone.
    pub queues: Vec<(String, usize)>,
    /// The rate limits `QUEUES_CONFIG` sets (overrides come from Redis).
    pub limits: ferro_tasks::limits::Limits,
    /// `UPLOADS_DIR`: the api's uploaded files (`mib.compile` reads them).
    pub uploads: ferro_files::UploadConfig,
}

impl RunConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const CONCURRENCY: &str = "a number of jobs from 1 to 1000";
        let concurrency = env.parse_or("WORKER_CONCURRENCY", 8usize, CONCURRENCY)?;
        if !(1..=1000).contains(&concurrency) {
            return Err(ConfigError::Invalid {
                variable: "WORKER_CONCURRENCY",
                expected: CONCURRENCY,
            });
        }
        let lease = env.parse_or("WORKER_LEASE_SECONDS", 30u64, "seconds, at least 2")?;
        if lease < 2 {
            return Err(ConfigError::Invalid {
                variable: "WORKER_LEASE_SECONDS",
                expected: "seconds, at least 2",
            });
        }
        let grace = env.parse_or(
            "WORKER_SHUTDOWN_GRACE_SECONDS",
            30u64,
            "a whole number of seconds",
        )?;
        Ok(Self {
            concurrency,
            lease: Duration::from_secs(lease),
            grace: Duration::from_secs(grace),
            worker_id: format!(
                "{}:{}",
                ferro_redis::heartbeat::host_name(),
                std::process::id()
            ),
            smtp: SmtpConfig::from_env(env)?,
            retention: match env.raw("JOB_RETENTION") {
                None => JobRetention::default(),
                Some(text) => JobRetention::parse(text).map_err(|_| ConfigError::Invalid {
                    variable: "JOB_RETENTION",
                    expected: ferro_tasks::retention::FORMAT,
                })?,
            },
            queues: Vec::new(),
            limits: Default::default(),
            uploads: ferro_files::UploadConfig::from_env(env)?,
        })
    }
}

/// `SMTP_URL` (e.g. `smtp://127.0.0.1:25`, `smtps://user:pass@host:465`,
/// `smtp://host:587?tls=required`) and `SMTP_FROM` (default
/// `Ferrostack <ferrostack@localhost>`), for `email.send` jobs.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub url: SecretUrl,
    pub from: String,
}

impl SmtpConfig {
    /// `None` when `SMTP_URL` is unset (email jobs then fail with a clear error).
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = env.raw("SMTP_URL") else {
            return Ok(None);
        };
        let url = SecretUrl::parse(raw, &["smtp", "smtps"]).ok_or(ConfigError::Invalid {
            variable: "SMTP_URL",
            expected: "an smtp:// or smtps:// URL such as smtp://127.0.0.1:25",
        })?;
        let from = env
            .raw("SMTP_FROM")
            .unwrap_or("Ferrostack <ferrostack@localhost>")
            .to_owned();
        if !from.contains('@') {
            return Err(ConfigError::Invalid {
                variable: "SMTP_FROM",
                expected: "a sender address such as Ferrostack <noreply@example.com>",
            });
        }
        Ok(Some(Self { url, from }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_retention_is_read_and_a_bad_one_names_the_variable() {
        let env = Env::from_pairs([("JOB_RETENTION", "succeeded=2d,cancelled=12h")]);
        let run = RunConfig::from_env(&env).unwrap();
        assert_eq!(run.retention.succeeded, Duration::from_secs(2 * 86_400));
        assert_eq!(run.retention.cancelled, Duration::from_secs(12 * 3600));
        assert_eq!(run.retention.failed, Duration::from_secs(30 * 86_400));
        let unset = RunConfig::from_env(&Env::from_pairs([("WORKER_CONCURRENCY", "2")])).unwrap();
        assert_eq!(unset.retention, JobRetention::default());
        let bad = Env::from_pairs([("JOB_RETENTION", "succeeded=forever")]);
        let err = RunConfig::from_env(&bad).unwrap_err();
        assert!(err.to_string().contains("JOB_RETENTION"), "{err}");
    }

    #[test]
    fn worker_queues_are_checked_against_the_table() {
        let table = QueueTable::parse(
            r#"{"queues": [{"name": "default"}, {"name": "snmp"}, {"name": "email"}]}"#,
        )
        .unwrap();
        let all = consumed_queues(&Env::default(), &table, 8).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|(_, cap)| *cap == 8));
        let env = Env::from_pairs([("WORKER_QUEUES", "snmp=2, email=50")]);
        assert_eq!(
            consumed_queues(&env, &table, 8).unwrap(),
            [("snmp".to_owned(), 2), ("email".to_owned(), 8)]
        );
        for (bad, says) in [
            ("bulk", "not a configured queue"),
            ("snmp,snmp", "twice"),
            ("snmp=0", "from 1 to 1000"),
            ("snmp=x", "from 1 to 1000"),
        ] {
            let env = Env::from_pairs([("WORKER_QUEUES", bad)]);
            let err = consumed_queues(&env, &table, 8).unwrap_err().to_string();
            assert!(
                err.starts_with("WORKER_QUEUES: ") && err.contains(says),
                "{bad}: {err}"
            );
        }
    }
}
