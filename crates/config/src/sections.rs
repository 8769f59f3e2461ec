//! The configuration sections, one per concern. Each has `from_env`.

use std::time::Duration;

use crate::{ConfigError, Env, SecretUrl};

const POSTGRES_SCHEMES: &[&str] = &["postgres", "postgresql"];

/// `APP_ENV`: `development` (default) or `production`. Production turns
/// missing secrets and unsafe database roles into start-up errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

impl AppEnv {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.raw("APP_ENV").map(str::to_ascii_lowercase).as_deref() {
            None | Some("development" | "dev" | "test") => Ok(AppEnv::Development),
            Some("production" | "prod") => Ok(AppEnv::Production),
            Some(_) => Err(ConfigError::Invalid {
                variable: "APP_ENV",
                expected: "development or production",
            }),
        }
    }

    pub fn is_production(self) -> bool {
        self == AppEnv::Production
    }
}

/// Log output format, `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// `RUST_LOG` and `LOG_FORMAT` (default `json` in production, `pretty` otherwise).
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub filter: String,
    pub format: LogFormat,
}

impl LogConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let app_env = AppEnv::from_env(env)?;
        let format = match env
            .raw("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None if app_env.is_production() => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty" | "text") => LogFormat::Pretty,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    variable: "LOG_FORMAT",
                    expected: "json or pretty",
                });
            }
        };
        let filter = env.raw("RUST_LOG").unwrap_or("info").to_owned();
        Ok(Self { filter, format })
    }
}

/// `DATABASE_URL` and pool settings: the restricted application role.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretUrl,
    /// `DATABASE_MAX_CONNECTIONS`, default 10.
    pub max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`, default 5000.
    pub acquire_timeout: Duration,
}

impl DatabaseConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = postgres_url(env, "DATABASE_URL")?;
        refuse_shipped_password(AppEnv::from_env(env)?, "DATABASE_URL", &url)?;
        let max_connections = env.parse_or(
            "DATABASE_MAX_CONNECTIONS",
            10u32,
            "a whole number of connections from 1 to 1000",
        )?;
        if !(1..=1000).contains(&max_connections) {
            return Err(ConfigError::Invalid {
                variable: "DATABASE_MAX_CONNECTIONS",
                expected: "a whole number of connections from 1 to 1000",
            });
        }
        const ACQUIRE: &str = "milliseconds as a whole number, at least 100";
        let acquire_ms = env.parse_or("DATABASE_ACQUIRE_TIMEOUT_MS", 5000u64, ACQUIRE)?;
        if acquire_ms < 100 {
            return Err(ConfigError::Invalid {
                variable: "DATABASE_ACQUIRE_TIMEOUT_MS",
                expected: ACQUIRE,
            });
        }
        Ok(Self {
            url,
            max_connections,
            acquire_timeout: Duration::from_millis(acquire_ms),
        })
    }

    /// The role the services log in as: the user name in `DATABASE_URL`.
    pub fn role(&self) -> Option<String> {
        self.url.username()
    }
}

/// A `postgres://` URL that names a user and a database, from `variable`.
pub fn postgres_url(env: &Env, variable: &'static str) -> Result<SecretUrl, ConfigError> {
    const EXPECTED: &str = "a postgres:// URL such as postgres://user:password@host:5432/dbname";
    let raw = env.required_str(variable, EXPECTED)?;
    let url = SecretUrl::parse(raw, POSTGRES_SCHEMES).ok_or(ConfigError::Invalid {
        variable,
        expected: EXPECTED,
    })?;
    if url.path_name().is_none() || url.username().is_none() {
        return Err(ConfigError::Invalid {
            variable,
            expected: "a postgres:// URL that names a user and a database",
        });
    }
    Ok(url)
}

/// The development passwords that `.env.example` and `docker-compose.yml`
/// ship with; production refuses database URLs that still use them.
const SHIPPED_PASSWORDS: [&str; 2] = ["app-password", "postgres"];

/// Refuses, in production, a URL that still carries a password the project
/// ships for development.
pub fn refuse_shipped_password(
    app_env: AppEnv,
    variable: &'static str,
    url: &SecretUrl,
) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret;
    let shipped = url
        .password()
        .is_some_and(|p| SHIPPED_PASSWORDS.contains(&p.expose_secret()));
    if app_env.is_production() && shipped {
        return Err(ConfigError::Invalid {
            variable,
            expected: "a password of your own in production, not the development default",
        });
    }
    Ok(())
}

/// User names: 3-64 characters of letters, digits and `._-@`.
pub fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// `REDIS_URL` and `REDIS_KEY_PREFIX` (default `ferro:`), which namespaces
/// every key so that several stacks or tests can share one Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: SecretUrl,
    pub key_prefix: String,
}

impl RedisConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const EXPECTED: &str = "a redis:// URL such as redis://127.0.0.1:6379/0";
        let raw = env.raw("REDIS_URL").unwrap_or("redis://127.0.0.1:6379/0");
        let url = SecretUrl::parse(raw, &["redis", "rediss"]).ok_or(ConfigError::Invalid {
            variable: "REDIS_URL",
            expected: EXPECTED,
        })?;
        let key_prefix = env.raw("REDIS_KEY_PREFIX").unwrap_or("ferro:").to_owned();
        Ok(Self { url, key_prefix })
    }
}

/// Which broker `BROKER_URL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    RabbitMq,
    RedisStreams,
}

/// `BROKER_URL`: `amqp://` (RabbitMQ) or `redis://` (Redis Streams).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub url: SecretUrl,
    pub kind: BrokerKind,
    /// `BROKER_PREFIX`, default `ferro`: the first part of every exchange,
    /// queue or stream name, so several stacks (or tests) can share a broker.
    pub prefix: String,
    /// `BROKER_VISIBILITY_TIMEOUT_SECONDS`, default 30 (Redis Streams): how
    /// long an entry read by a consumer that stopped touching it (its process
    /// died) waits before another consumer takes it over.
    pub visibility_timeout: Duration,
}

impl BrokerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const EXPECTED: &str = "an amqp:// URL (RabbitMQ) or a redis:// URL (Redis Streams)";
        let raw = env
            .raw("BROKER_URL")
            .unwrap_or("amqp://guest:guest@127.0.0.1:5672/%2f");
        let url = SecretUrl::parse(raw, &["amqp", "amqps", "redis", "rediss"]).ok_or(
            ConfigError::Invalid {
                variable: "BROKER_URL",
                expected: EXPECTED,
            },
        )?;
        let kind = if url.scheme().starts_with("amqp") {
            BrokerKind::RabbitMq
        } else {
            BrokerKind::RedisStreams
        };
        let prefix = env.raw("BROKER_PREFIX").unwrap_or("ferro").to_owned();
        let prefix_ok = (1..=64).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !prefix_ok {
            return Err(ConfigError::Invalid {
                variable: "BROKER_PREFIX",
                expected: "1-64 letters, digits, '-', '_' or '.'",
            });
        }
        const VISIBILITY: &str = "whole seconds, from 2 to 86400";
        let visibility = env.parse_or("BROKER_VISIBILITY_TIMEOUT_SECONDS", 30u64, VISIBILITY)?;
        if !(2..=86_400).contains(&visibility) {
            return Err(ConfigError::Invalid {
                variable: "BROKER_VISIBILITY_TIMEOUT_SECONDS",
                expected: VISIBILITY,
            });
        }
        Ok(Self {
            url,
            kind,
            prefix,
            visibility_timeout: Duration::from_secs(visibility),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_is_required_and_named() {
        let err = DatabaseConfig::from_env(&Env::default()).unwrap_err();
        assert_eq!(err.variable(), "DATABASE_URL");
        assert!(
            err.to_string()
                .starts_with("DATABASE_URL is not set; expected")
        );
        let err = DatabaseConfig::from_env(&Env::default().with("DATABASE_URL", "mysql://x@y/z"))
            .unwrap_err();
        assert_eq!(err.variable(), "DATABASE_URL");
    }

    #[test]
    fn broker_kind_follows_scheme() {
        let cfg = BrokerConfig::from_env(&Env::default()).unwrap();
        assert_eq!(cfg.kind, BrokerKind::RabbitMq);
        assert_eq!(cfg.url.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f");
        let cfg = BrokerConfig::from_env(&Env::default().with("BROKER_URL", "redis://127.0.0.1/1"))
            .unwrap();
        assert_eq!(cfg.kind, BrokerKind::RedisStreams);
        let err =
            BrokerConfig::from_env(&Env::default().with("BROKER_URL", "kafka://x")).unwrap_err();
        assert_eq!(err.variable(), "BROKER_URL");
    }
}
