use std::sync::Arc;
use std::time::Duration;

use ferro_config::{AppEnv, BrokerConfig, DatabaseConfig, Env, LogConfig, RedisConfig};
use ferro_telemetry::exit_on_config_error;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    ferro_telemetry::args_or_exit(
        "worker",
        "usage: worker [run] [--concurrency N]  run jobs (settings from the environment)\n       \
         worker ping [--pid N]             exit 0 if a worker on this host beat within 15 s",
        |a| {
            let a = a.strip_prefix(&["run"]).unwrap_or(a);
            matches!(
                a,
                [] | ["--concurrency", _] | ["ping"] | ["ping", "--pid", _]
            ) || matches!(a, [flag] if flag.starts_with("--concurrency="))
        },
    );
    let mut env = Env::load();
    // `--concurrency N` (or `--concurrency=N`) overrides WORKER_CONCURRENCY.
    let args: Vec<String> = std::env::args().collect();
    let concurrency = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--concurrency" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--concurrency=").map(str::to_owned)
        }
    });
    if let Some(n) = concurrency {
        env = env.with("WORKER_CONCURRENCY", n);
    }
    if args.get(1).map(String::as_str) == Some("ping") {
        // For health checks: 0 if a worker on this host beat within 15 s.
        let redis =
            RedisConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
        let pool = ferro_redis::create_pool(redis.url.expose(), 1, Duration::from_secs(2))
            .unwrap_or_else(|e| exit_on_config_error("worker", format!("REDIS_URL: {e}")));
        let pid = ferro_redis::heartbeat::pid_arg(&args)
            .unwrap_or_else(|e| exit_on_config_error("worker", e));
        match worker::ping(
            &pool,
            &redis.key_prefix,
            &worker::host_name(),
            pid,
            Duration::from_secs(15),
        )
        .await
        {
            Ok(true) => std::process::exit(0),
            Ok(false) => {
                eprintln!("worker: no live worker on this host");
                std::process::exit(1);
            }
            Err(err) => {
                eprintln!("worker: cannot read heartbeats: {err}");
                std::process::exit(1);
            }
        }
    }
    let log = LogConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    ferro_telemetry::init("worker", &log);
    let app_env = AppEnv::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    let database =
        DatabaseConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    let broker = BrokerConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));
    let settings = worker::WorkerSettings::from_env(&env)
        .unwrap_or_else(|e| exit_on_config_error("worker", e));
    let redis = RedisConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("worker", e));

    let db = match ferro_db::Db::connect(&database, app_env, "worker").await {
        Ok(db) => db,
        Err(err) => {
            let err = ferro_telemetry::error_chain(&err);
            tracing::error!(error = %err, "cannot use the database");
            eprintln!("worker: {err}");
            std::process::exit(1);
        }
    };
    let broker = Arc::new(
        ferro_broker::Broker::from_config(&broker)
            .unwrap_or_else(|e| exit_on_config_error("worker", format!("BROKER_URL: {e}"))),
    );
    let shutdown = CancellationToken::new();
    // WORKER_METRICS_ADDR (e.g. 0.0.0.0:9101): Prometheus metrics; off when unset.
    let metrics_stop = CancellationToken::new();
    if let Some(addr) = env.raw("WORKER_METRICS_ADDR") {
        let listener = ferro_telemetry::metrics::bind("WORKER_METRICS_ADDR", addr)
            .await
            .unwrap_or_else(|e| exit_on_config_error("worker", e));
        tracing::info!(addr, "serving metrics");
        let handle = ferro_telemetry::metrics::install_recorder(worker::metrics::HISTOGRAMS);
        tokio::spawn(ferro_telemetry::metrics::serve(
            listener,
            handle,
            metrics_stop.clone(),
        ));
    }
    let relay = {
        let (db, broker, stop) = (db.clone(), broker.clone(), shutdown.clone());
        tokio::spawn(async move {
            ferro_broker::relay::run(
                db,
                &broker,
                Duration::from_millis(200),
                stop.cancelled_owned(),
            )
            .await
        })
    };
    let signal = {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            ferro_telemetry::shutdown_signal().await;
            stop.cancel();
        })
    };
    let events = match ferro_redis::create_pool(redis.url.expose(), 4, Duration::from_secs(2)) {
        Ok(pool) => Some(worker::Events::new(pool, redis.key_prefix.clone())),
        Err(err) => exit_on_config_error("worker", format!("REDIS_URL: {err}")),
    };
    worker::run(db.clone(), broker, events, settings, shutdown.clone()).await;
    shutdown.cancel();
    let _ = relay.await;
    signal.abort();
    db.close().await;
    metrics_stop.cancel();
    tracing::info!("worker stopped");
}
