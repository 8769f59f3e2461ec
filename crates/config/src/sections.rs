//! The configuration sections, one per concern. Each has `from_env`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

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

fn postgres_url(env: &Env, variable: &'static str) -> Result<SecretUrl, ConfigError> {
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

fn refuse_shipped_password(
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

/// Everything `migrate` needs.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    pub app_env: AppEnv,
    /// The application role's connection (`DATABASE_URL`).
    pub app: DatabaseConfig,
    /// The owner's connection: `MIGRATE_DATABASE_URL`, else `DATABASE_URL`.
    pub owner_url: SecretUrl,
    /// `ADMIN_USERNAME`, default `admin`.
    pub admin_username: String,
    /// `ADMIN_PASSWORD`; required in production (12+ characters), `admin` in development.
    pub admin_password: SecretString,
    /// `MIGRATE_WAIT_SECONDS`: how long `up` waits for the database, default 60.
    pub wait: Duration,
}

impl MigrateConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let app_env = AppEnv::from_env(env)?;
        let app = DatabaseConfig::from_env(env)?;
        let owner_url = match env.raw("MIGRATE_DATABASE_URL") {
            Some(_) => {
                let url = postgres_url(env, "MIGRATE_DATABASE_URL")?;
                refuse_shipped_password(app_env, "MIGRATE_DATABASE_URL", &url)?;
                url
            }
            None => app.url.clone(),
        };
        let admin_username = env.raw("ADMIN_USERNAME").unwrap_or("admin").to_owned();
        if !valid_username(&admin_username) {
            return Err(ConfigError::Invalid {
                variable: "ADMIN_USERNAME",
                expected: "3-64 characters of letters, digits, '.', '_', '-' or '@'",
            });
        }
        let admin_password = match (env.raw("ADMIN_PASSWORD"), app_env) {
            (Some(p), AppEnv::Production) if p.chars().count() < 12 => {
                return Err(ConfigError::Invalid {
                    variable: "ADMIN_PASSWORD",
                    expected: "at least 12 characters in production",
                });
            }
            (Some(p), _) => SecretString::from(p.to_owned()),
            (None, AppEnv::Production) => {
                return Err(ConfigError::Missing {
                    variable: "ADMIN_PASSWORD",
                    expected: "the platform administrator's password (12+ characters) in production",
                });
            }
            (None, AppEnv::Development) => SecretString::from("admin".to_owned()),
        };
        let wait_secs = env.parse_or("MIGRATE_WAIT_SECONDS", 60u64, "a whole number of seconds")?;
        Ok(Self {
            app_env,
            app,
            owner_url,
            admin_username,
            admin_password,
            wait: Duration::from_secs(wait_secs),
        })
    }
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

/// The api's own settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HOST`, default `0.0.0.0`.
    pub host: String,
    /// `PORT`, default 8001.
    pub port: u16,
    /// `JWT_SECRET`: required in production (32+ bytes); a random
    /// per-process secret in development when unset.
    pub jwt_secret: SecretString,
    /// Whether `jwt_secret` was generated because none was configured.
    pub jwt_secret_generated: bool,
    /// `JWT_EXPIRES_IN`, seconds, default 3600.
    pub jwt_expires_in: Duration,
    /// `CORS_ORIGINS`, comma-separated; empty means no cross-origin access.
    pub cors_origins: Vec<String>,
    /// `ENABLE_SSE`, default true.
    pub enable_sse: bool,
    /// `REFRESH_EXPIRES_IN`, seconds a session lives without a refresh, default 14 days.
    pub refresh_expires_in: Duration,
    /// `LOGIN_MAX_FAILURES_PER_USER` (5) and `LOGIN_MAX_FAILURES_PER_IP` (50)
    /// within `LOGIN_THROTTLE_WINDOW_SECONDS` (300).
    pub login_max_failures_per_user: u32,
    pub login_max_failures_per_ip: u32,
    pub login_throttle_window: Duration,
    /// `TRUSTED_PROXIES`: addresses whose `X-Forwarded-For` is believed;
    /// default `127.0.0.1,::1` (nginx on the same host or network namespace).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `REQUEST_TIMEOUT_SECONDS`, default 30.
    pub request_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECONDS`: how long in-flight requests may finish after SIGTERM, default 10.
    pub shutdown_grace: Duration,
    /// `MAX_BODY_BYTES`, default 1 MiB.
    pub max_body_bytes: usize,
}

/// `CORS_ORIGINS`: `*` alone, or origins (`scheme://host[:port]`, http or
/// https), each written as a browser sends it in `Origin` (lower-case host,
/// no default port). A path, query, fragment or user name could never match
/// an `Origin` header, and `*` beside named origins would quietly allow
/// every origin, so both are refused rather than guessed at.
fn cors_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |expected| ConfigError::Invalid {
        variable: "CORS_ORIGINS",
        expected,
    };
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if entries.contains(&"*") {
        return if entries.len() == 1 {
            Ok(vec!["*".to_owned()])
        } else {
            Err(invalid(
                "`*` alone (any origin) or a list of origins, not both",
            ))
        };
    }
    entries
        .into_iter()
        .map(|o| {
            url::Url::parse(o)
                .ok()
                .filter(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.has_host()
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.path() == "/"
                        && u.query().is_none()
                        && u.fragment().is_none()
                })
                .map(|u| u.origin().ascii_serialization())
                .ok_or(invalid(
                    "comma-separated origins (scheme://host[:port], no path) \
                     such as https://app.example.com",
                ))
        })
        .collect()
}

impl HttpConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let app_env = AppEnv::from_env(env)?;
        let host = env.raw("HOST").unwrap_or("0.0.0.0").to_owned();
        let port = env.parse_or("PORT", 8001u16, "a TCP port from 0 to 65535")?;
        let (jwt_secret, jwt_secret_generated) = match env.raw("JWT_SECRET") {
            Some(s) if app_env.is_production() && s.len() < 32 => {
                return Err(ConfigError::Invalid {
                    variable: "JWT_SECRET",
                    expected: "at least 32 bytes in production",
                });
            }
            Some(s) if app_env.is_production() && guessable_secret(s) => {
                return Err(ConfigError::Invalid {
                    variable: "JWT_SECRET",
                    expected: "a random secret in production, not the example's placeholder \
                               or a repeated pattern (e.g. `openssl rand -hex 32`)",
                });
            }
            Some(s) => (SecretString::from(s.to_owned()), false),
            None if app_env.is_production() => {
                return Err(ConfigError::Missing {
                    variable: "JWT_SECRET",
                    expected: "a random secret of 32+ bytes (required when APP_ENV=production)",
                });
            }
            None => (SecretString::from(random_secret()), true),
        };
        let expires = env.parse_or(
            "JWT_EXPIRES_IN",
            3600u64,
            "the access token lifetime in seconds (60-86400)",
        )?;
        if !(60..=86_400).contains(&expires) {
            return Err(ConfigError::Invalid {
                variable: "JWT_EXPIRES_IN",
                expected: "the access token lifetime in seconds (60-86400)",
            });
        }
        let cors_origins = match env.raw("CORS_ORIGINS") {
            None => Vec::new(),
            Some(list) => cors_origins(list)?,
        };
        let enable_sse = env.bool_or("ENABLE_SSE", true)?;
        let refresh = env.parse_or(
            "REFRESH_EXPIRES_IN",
            14 * 86_400u64,
            "the session lifetime in seconds (at least JWT_EXPIRES_IN)",
        )?;
        if refresh < expires {
            return Err(ConfigError::Invalid {
                variable: "REFRESH_EXPIRES_IN",
                expected: "the session lifetime in seconds (at least JWT_EXPIRES_IN)",
            });
        }
        let positive = "a whole number greater than 0";
        let per_user = env.parse_or("LOGIN_MAX_FAILURES_PER_USER", 5u32, positive)?;
        let per_ip = env.parse_or("LOGIN_MAX_FAILURES_PER_IP", 50u32, positive)?;
        let window = env.parse_or("LOGIN_THROTTLE_WINDOW_SECONDS", 300u64, positive)?;
        for (variable, v) in [
            ("LOGIN_MAX_FAILURES_PER_USER", per_user as u64),
            ("LOGIN_MAX_FAILURES_PER_IP", per_ip as u64),
            ("LOGIN_THROTTLE_WINDOW_SECONDS", window),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    variable,
                    expected: positive,
                });
            }
        }
        let trusted_proxies = env
            .raw("TRUSTED_PROXIES")
            .unwrap_or("127.0.0.1,::1")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse().map_err(|_| ConfigError::Invalid {
                    variable: "TRUSTED_PROXIES",
                    expected: "comma-separated IP addresses",
                })
            })
            .collect::<Result<_, _>>()?;
        let timeout = env.parse_or("REQUEST_TIMEOUT_SECONDS", 30u64, positive)?;
        if timeout == 0 {
            return Err(ConfigError::Invalid {
                variable: "REQUEST_TIMEOUT_SECONDS",
                expected: positive,
            });
        }
        let grace = env.parse_or("SHUTDOWN_GRACE_SECONDS", 10u64, "a whole number of seconds")?;
        const BODY: &str = "a size in bytes, at least 1024";
        let max_body = env.parse_or("MAX_BODY_BYTES", 1024 * 1024usize, BODY)?;
        if max_body < 1024 {
            return Err(ConfigError::Invalid {
                variable: "MAX_BODY_BYTES",
                expected: BODY,
            });
        }
        Ok(Self {
            host,
            port,
            jwt_secret,
            jwt_secret_generated,
            jwt_expires_in: Duration::from_secs(expires),
            cors_origins,
            enable_sse,
            refresh_expires_in: Duration::from_secs(refresh),
            login_max_failures_per_user: per_user,
            login_max_failures_per_ip: per_ip,
            login_throttle_window: Duration::from_secs(window),
            trusted_proxies,
            request_timeout: Duration::from_secs(timeout),
            shutdown_grace: Duration::from_secs(grace),
            max_body_bytes: max_body,
        })
    }

    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

/// The placeholder `.env.example` ships, or a value with too few distinct
/// bytes to be random (`aaaa...`, `abababab...`): anyone could sign tokens.
fn guessable_secret(secret: &str) -> bool {
    const EXAMPLE: &str = "at-least-32-random-bytes-of-secret";
    let distinct: std::collections::HashSet<u8> = secret.bytes().collect();
    secret == EXAMPLE || distinct.len() < 8
}

fn random_secret() -> String {
    // Development only: two v4 UUIDs come from the OS CSPRNG (256 random bits
    // minus the version bits). Tokens stop verifying after a restart.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Env {
        Env::from_pairs([(
            "DATABASE_URL",
            "postgres://ferro_app:app-pass@127.0.0.1:5432/ferrostack",
        )])
    }

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
    fn debug_output_never_shows_secrets() {
        let env = base()
            .with(
                "MIGRATE_DATABASE_URL",
                "postgres://owner:owner-pass@127.0.0.1/ferrostack",
            )
            .with("ADMIN_PASSWORD", "admin-pass-value")
            .with("JWT_SECRET", "jwt-secret-value");
        let shown = format!(
            "{:?} {:?}",
            MigrateConfig::from_env(&env).unwrap(),
            HttpConfig::from_env(&env).unwrap()
        );
        for secret in [
            "app-pass",
            "owner-pass",
            "admin-pass-value",
            "jwt-secret-value",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
    }

    #[test]
    fn migrate_falls_back_to_database_url() {
        let cfg = MigrateConfig::from_env(&base()).unwrap();
        assert_eq!(cfg.owner_url.expose(), cfg.app.url.expose());
        assert_eq!(cfg.app.role().as_deref(), Some("ferro_app"));
        assert_eq!(cfg.admin_username, "admin");
    }

    #[test]
    fn production_requires_secrets() {
        let prod = base().with("APP_ENV", "production");
        assert_eq!(
            HttpConfig::from_env(&prod).unwrap_err().variable(),
            "JWT_SECRET"
        );
        for guessable in [
            "short",
            "at-least-32-random-bytes-of-secret",
            &"a".repeat(40),
            &"ab".repeat(20),
        ] {
            assert_eq!(
                HttpConfig::from_env(&prod.clone().with("JWT_SECRET", guessable))
                    .unwrap_err()
                    .variable(),
                "JWT_SECRET",
                "{guessable}"
            );
        }
        assert_eq!(
            MigrateConfig::from_env(&prod).unwrap_err().variable(),
            "ADMIN_PASSWORD"
        );
        let dev = HttpConfig::from_env(&base()).unwrap();
        assert!(dev.jwt_secret_generated);
    }

    #[test]
    fn production_refuses_the_shipped_database_passwords() {
        let shipped = Env::from_pairs([
            (
                "DATABASE_URL",
                "postgres://ferrostack_app:app-password@db:5432/ferrostack",
            ),
            ("APP_ENV", "production"),
        ]);
        assert_eq!(
            DatabaseConfig::from_env(&shipped).unwrap_err().variable(),
            "DATABASE_URL"
        );
        let owner = base()
            .with("APP_ENV", "production")
            .with("ADMIN_PASSWORD", "long-enough-password")
            .with(
                "MIGRATE_DATABASE_URL",
                "postgres://postgres:postgres@db/ferrostack",
            );
        assert_eq!(
            MigrateConfig::from_env(&owner).unwrap_err().variable(),
            "MIGRATE_DATABASE_URL"
        );
        // Development keeps them; production takes any other password.
        assert!(DatabaseConfig::from_env(&shipped.clone().with("APP_ENV", "development")).is_ok());
        assert!(
            MigrateConfig::from_env(&owner.with(
                "MIGRATE_DATABASE_URL",
                "postgres://postgres:s3cret-0wner@db/ferrostack"
            ))
            .is_ok()
        );
    }

    #[test]
    fn http_defaults_and_validation() {
        let cfg = HttpConfig::from_env(&base()).unwrap();
        assert_eq!(cfg.port, 8001);
        assert_eq!(cfg.jwt_expires_in, Duration::from_secs(3600));
        assert!(cfg.enable_sse);
        let cfg = HttpConfig::from_env(&base().with(
            "CORS_ORIGINS",
            "https://a.example.com, http://localhost:3000/",
        ))
        .unwrap();
        assert_eq!(
            cfg.cors_origins,
            ["https://a.example.com", "http://localhost:3000"]
        );
        let cfg = HttpConfig::from_env(&base().with(
            "CORS_ORIGINS",
            "HTTPS://App.Example.com:443,http://[::1]:8080",
        ))
        .unwrap();
        assert_eq!(
            cfg.cors_origins,
            ["https://app.example.com", "http://[::1]:8080"],
            "written as a browser's Origin header"
        );
        let cfg = HttpConfig::from_env(&base().with("CORS_ORIGINS", " * ")).unwrap();
        assert_eq!(cfg.cors_origins, ["*"]);
        for bad in [
            "not an origin",
            "ftp://files.example.com",
            "https://app.example.com/app",
            "https://app.example.com/?x=1",
            "https://app.example.com/#top",
            "https://user@app.example.com",
            "https://user:pw@app.example.com",
            "https://app.example.com,*",
            "*,*",
        ] {
            let err = HttpConfig::from_env(&base().with("CORS_ORIGINS", bad)).unwrap_err();
            assert_eq!(err.variable(), "CORS_ORIGINS", "{bad}");
        }
        let err = HttpConfig::from_env(&base().with("PORT", "70000")).unwrap_err();
        assert_eq!(err.variable(), "PORT");
        // Values that parse but could not work are refused, not bent.
        for (variable, value) in [("REQUEST_TIMEOUT_SECONDS", "0"), ("MAX_BODY_BYTES", "0")] {
            let err = HttpConfig::from_env(&base().with(variable, value)).unwrap_err();
            assert_eq!(err.variable(), variable);
        }
        let err =
            DatabaseConfig::from_env(&base().with("DATABASE_ACQUIRE_TIMEOUT_MS", "0")).unwrap_err();
        assert_eq!(err.variable(), "DATABASE_ACQUIRE_TIMEOUT_MS");
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
