//! The worker process around the job loop: connects what the configuration
//! names, serves metrics, runs the outbox relay and the heartbeat, and runs
//! jobs until SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use ferro_db::Db;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::events::Events;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting that cannot work (an address to listen on, a URL the
    /// client refuses): exit status 2, like any configuration error.
    #[error("configuration error: {0}")]
    Config(String),
    /// The database cannot be used: exit status 1.
    #[error("{0}")]
    Database(String),
}

impl StartError {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => 2,
            StartError::Database(_) => 1,
        }
    }
}

/// Runs the worker until a shutdown signal, then stops in order: no new
/// jobs, running ones finish (or are handed back), the relay stops, the
/// connections close.
pub async fn serve(config: WorkerConfig) -> Result<(), StartError> {
    let db = Db::connect(&config.database, config.app_env, "worker")
        .await
        .map_err(|err| {
            let err = ferro_telemetry::error_chain(&err);
            tracing::error!(error = %err, "cannot use the database");
            StartError::Database(err)
        })?;
    let broker = ferro_broker::Broker::from_config(&config.broker)
        .map_err(|e| StartError::Config(format!("BROKER_URL: {e}")))?
        .with_queues(config.queues.names());
    let broker = Arc::new(broker);
    let redis = ferro_redis::create_pool(config.redis.url.expose(), 4, Duration::from_secs(2))
        .map_err(|e| StartError::Config(format!("REDIS_URL: {e}")))?;
    let metrics_stop = CancellationToken::new();
    if let Some(addr) = &config.metrics_addr {
        let listener = ferro_telemetry::metrics::bind("WORKER_METRICS_ADDR", addr)
            .await
            .map_err(StartError::Config)?;
        tracing::info!(addr, "serving metrics");
        let handle = ferro_telemetry::metrics::install_recorder(crate::metrics::HISTOGRAMS);
        tokio::spawn(ferro_telemetry::metrics::serve(
            listener,
            handle,
            metrics_stop.clone(),
        ));
    }
    let shutdown = CancellationToken::new();
    let relay = {
        let (db, broker, stop) = (db.clone(), broker.clone(), shutdown.clone());
        let redeliver_after = config.redeliver_after;
        tokio::spawn(async move {
            let every = Duration::from_millis(200);
            crate::relay::run(db, &broker, every, redeliver_after, stop.cancelled_owned()).await
        })
    };
    let signal = {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            ferro_telemetry::shutdown_signal().await;
            stop.cancel();
        })
    };
    let events = Events::new(redis, config.redis.key_prefix.clone());
    crate::runner::run(
        db.clone(),
        broker,
        Some(events),
        config.run,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = relay.await;
    signal.abort();
    db.close().await;
    metrics_stop.cancel();
    tracing::info!("worker stopped");
    Ok(())
}
