//! `worker`. So far it runs the outbox relay: it publishes every job whose
//! outbox record the api could not publish itself. Consuming and running the
//! jobs comes with the rest of issue 4.

use std::time::Duration;

use ferro_config::{AppEnv, BrokerConfig, BrokerKind, DatabaseConfig, Env, LogConfig, RedisConfig};
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
    if broker.kind == BrokerKind::RedisStreams {
        eprintln!(
            "worker: BROKER_URL names Redis Streams, whose backend is not implemented yet; use an amqp:// URL"
        );
        std::process::exit(2);
    }

    let db = match ferro_db::Db::connect(&database, app_env, "worker").await {
        Ok(db) => db,
        Err(err) => {
            tracing::error!(error = %err, "cannot use the database");
            eprintln!("worker: {err}");
            std::process::exit(1);
        }
    };
    let publisher = ferro_broker::RabbitBroker::new(broker.url.expose(), &broker.prefix);
    tracing::info!(redis = %redis.url, broker = %broker.url, "worker started (outbox relay)");
    ferro_broker::relay::run(
        db.clone(),
        &publisher,
        Duration::from_millis(200),
        ferro_telemetry::shutdown_signal(),
    )
    .await;
    db.close().await;
    tracing::info!("worker stopped");
}
