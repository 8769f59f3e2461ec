//! Everything the api reads from the environment, validated at start.

use std::time::Duration;

use ferro_config::{
    AppEnv, BrokerConfig, ConfigError, DatabaseConfig, Env, ExposeSecret, LogConfig, RedisConfig,
    SecretString,
};
use ferro_tasks::queues::QueueTable;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub app_env: AppEnv,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub broker: BrokerConfig,
    /// `QUEUES_CONFIG` (default `deploy/queues.json` when present): the
    /// queues a job may name, and where each kind goes.
    pub queues: QueueTable,
    /// `UPLOADS_DIR` and `UPLOAD_MAX_BYTES`: where uploaded files go.
    pub uploads: ferro_files::UploadConfig,
}

impl ApiConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            app_env: AppEnv::from_env(env)?,
            log: LogConfig::from_env(env)?,
            http: HttpConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            redis: RedisConfig::from_env(env)?,
            broker: BrokerConfig::from_env(env)?,
            queues: QueueTable::from_env(env)?,
            uploads: ferro_files::UploadConfig::from_env(env)?,
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
    /// `JWT_SECRET`: required in production (32+ bytes); a fixed
    /// development value ([`DEVELOPMENT_JWT_SECRET`]) in development when unset.
    pub jwt_secret: SecretString,
    /// Whether `jwt_secret` is the development value because none was set.
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
            None => (SecretString::from(DEVELOPMENT_JWT_SECRET.to_owned()), true),
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
    secret == EXAMPLE || secret == DEVELOPMENT_JWT_SECRET || distinct.len() < 8
}

/// The signing secret of a development stack that sets none: one fixed
/// value, so that tokens survive a restart of the api and every replica
/// accepts the others' (production refuses it, as any guessable secret).
pub const DEVELOPMENT_JWT_SECRET: &str =
    "ferrostack-development-only-jwt-secret-never-in-production";

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
    fn debug_output_never_shows_secrets() {
        let env = base().with("JWT_SECRET", "jwt-secret-value");
        let shown = format!("{:?}", HttpConfig::from_env(&env).unwrap());
        for secret in ["app-pass", "jwt-secret-value"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
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
            HttpConfig::from_env(&prod.clone().with("JWT_SECRET", DEVELOPMENT_JWT_SECRET))
                .unwrap_err()
                .variable(),
            "JWT_SECRET",
            "the development default is refused in production"
        );
        let dev = HttpConfig::from_env(&base()).unwrap();
        assert!(dev.jwt_secret_generated);
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
}
