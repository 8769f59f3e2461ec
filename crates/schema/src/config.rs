//! What `migrate` reads from the environment, validated at start.

use std::time::Duration;

use ferro_config::{
    AppEnv, ConfigError, DatabaseConfig, Env, SecretString, SecretUrl, postgres_url,
    refuse_shipped_password, valid_username,
};

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
        let env = base()
            .with(
                "MIGRATE_DATABASE_URL",
                "postgres://owner:owner-pass@127.0.0.1/ferrostack",
            )
            .with("ADMIN_PASSWORD", "admin-pass-value");
        let shown = format!("{:?}", MigrateConfig::from_env(&env).unwrap());
        for secret in ["app-pass", "owner-pass", "admin-pass-value"] {
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
            MigrateConfig::from_env(&prod).unwrap_err().variable(),
            "ADMIN_PASSWORD"
        );
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
}
