//! `scheduler`: for now it validates its configuration, connects to PostgreSQL as
//! the restricted application role and waits for SIGTERM/SIGINT.
//! The schedule loop arrives with the scheduler (issue 5).

use ferro_config::{AppEnv, BrokerConfig, DatabaseConfig, Env, LogConfig, RedisConfig};
use ferro_telemetry::exit_on_config_error;

#[tokio::main]
async fn main() {
    let env = Env::load();
    let log = LogConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("scheduler", e));
    ferro_telemetry::init("scheduler", &log);
    let app_env = AppEnv::from_env(&env).unwrap_or_else(|e| exit_on_config_error("scheduler", e));
    let database =
        DatabaseConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("scheduler", e));
    let redis =
        RedisConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("scheduler", e));
    let broker =
        BrokerConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("scheduler", e));

    let db = match ferro_db::Db::connect(&database, app_env, "scheduler").await {
        Ok(db) => db,
        Err(err) => {
            tracing::error!(error = %err, "cannot use the database");
            eprintln!("scheduler: {err}");
            std::process::exit(1);
        }
    };
    tracing::info!(redis = %redis.url, broker = %broker.url, "scheduler started");
    ferro_telemetry::shutdown_signal().await;
    db.close().await;
    tracing::info!("scheduler stopped");
}
