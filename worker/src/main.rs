//! `worker`: for now it validates its configuration, connects to PostgreSQL as
//! the restricted application role and waits for SIGTERM/SIGINT.
//! The task loop arrives with the jobs pipeline (issue 4).

use ferro_config::{AppEnv, BrokerConfig, DatabaseConfig, Env, LogConfig, RedisConfig};
use ferro_telemetry::exit_on_config_error;

#[tokio::main]
async fn main() {
    let env = Env::load();
    let log = LogConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    ferro_telemetry::init("worker", &log);
    let app_env = AppEnv::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    let database =
        DatabaseConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    let redis = RedisConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    let broker = BrokerConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));

    let db = match ferro_db::Db::connect(&database, app_env, "worker").await {
        Ok(db) => db,
        Err(err) => {
            tracing::error!(error = %err, "cannot use the database");
            eprintln!("worker: {err}");
            std::process::exit(1);
        }
    };
    tracing::info!(redis = %redis.url, broker = %broker.url, "worker started");
    ferro_telemetry::shutdown_signal().await;
    db.close().await;
    tracing::info!("worker stopped");
}
