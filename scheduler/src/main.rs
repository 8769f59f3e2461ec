//! `scheduler`: fires cron schedules exactly once (see the library).
//! `scheduler list` prints every schedule with its next three fire times;
//! `scheduler ping` exits 0 if an instance on this host beat within 15 s.

use std::sync::Arc;
use std::time::Duration;

use ferro_config::{AppEnv, BrokerConfig, DatabaseConfig, Env, LogConfig, RedisConfig};
use ferro_telemetry::exit_on_config_error;
use tokio_util::sync::CancellationToken;

const NAME: &str = "scheduler";

#[tokio::main]
async fn main() {
    ferro_telemetry::install_crypto_provider();
    ferro_telemetry::args_or_exit(
        NAME,
        "usage: scheduler [run]          fire the schedules (settings from the environment)\n       \
         scheduler list           the schedules and their next fire times\n       \
         scheduler ping [--pid N] exit 0 if a scheduler on this host beat within 15 s",
        |a| matches!(a, [] | ["run"] | ["list"] | ["ping"] | ["ping", "--pid", _]),
    );
    let env = Env::load();
    let command = std::env::args().nth(1);
    let redis = RedisConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    let pool = ferro_redis::create_pool(redis.url.expose(), 2, Duration::from_secs(2))
        .unwrap_or_else(|e| exit_on_config_error(NAME, format!("REDIS_URL: {e}")));
    if command.as_deref() == Some("ping") {
        let host = ferro_redis::heartbeat::host_name();
        let args: Vec<String> = std::env::args().collect();
        let pid = ferro_redis::heartbeat::pid_arg(&args)
            .unwrap_or_else(|e| exit_on_config_error(NAME, e));
        match scheduler::ping(
            &pool,
            &redis.key_prefix,
            &host,
            pid,
            Duration::from_secs(15),
        )
        .await
        {
            Ok(true) => std::process::exit(0),
            Ok(false) => {
                eprintln!("scheduler: no live scheduler on this host");
                std::process::exit(1);
            }
            Err(err) => {
                eprintln!("scheduler: cannot read heartbeats: {err}");
                std::process::exit(1);
            }
        }
    }
    // `list` prints only the schedules on stdout, where logs would go.
    if command.as_deref() != Some("list") {
        let log = LogConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
        ferro_telemetry::init(NAME, &log);
    }
    let app_env = AppEnv::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    let database = DatabaseConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    let broker = BrokerConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    let mut settings = scheduler::SchedulerSettings::from_env(&env)
        .unwrap_or_else(|e| exit_on_config_error(NAME, e));
    settings.builtins =
        scheduler::load_builtins(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));

    let db = match ferro_db::Db::connect(&database, app_env, NAME).await {
        Ok(db) => db,
        Err(err) => {
            let err = ferro_telemetry::error_chain(&err);
            tracing::error!(error = %err, "cannot use the database");
            eprintln!("scheduler: {err}");
            std::process::exit(1);
        }
    };
    match command.as_deref() {
        None | Some("run") => {}
        Some("list") => match scheduler::list(&db).await {
            Ok(text) => {
                print!("{text}");
                std::process::exit(0);
            }
            Err(err) => {
                eprintln!("scheduler: {err}");
                std::process::exit(1);
            }
        },
        Some(other) => exit_on_config_error(
            NAME,
            format!("unknown command {other:?}; use run (the default), list or ping"),
        ),
    }

    let broker = Arc::new(
        ferro_broker::Broker::from_config(&broker)
            .unwrap_or_else(|e| exit_on_config_error(NAME, format!("BROKER_URL: {e}"))),
    );
    let options = ferro_db::connect_options(database.url.expose(), "scheduler-leader")
        .unwrap_or_else(|e| exit_on_config_error(NAME, format!("DATABASE_URL: {e}")));
    let lock = ferro_db::leader::LeaderLock::new(options, scheduler::LEADER_KEY);
    let stats = Arc::new(scheduler::Stats::default());
    let shutdown = CancellationToken::new();
    let signal = {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            ferro_telemetry::shutdown_signal().await;
            stop.cancel();
        })
    };
    let beat_stop = CancellationToken::new();
    // SCHEDULER_METRICS_ADDR (e.g. 0.0.0.0:9102): Prometheus metrics; off when unset.
    if let Some(addr) = env.raw("SCHEDULER_METRICS_ADDR") {
        let listener = ferro_telemetry::metrics::bind("SCHEDULER_METRICS_ADDR", addr)
            .await
            .unwrap_or_else(|e| exit_on_config_error(NAME, e));
        tracing::info!(addr, "serving metrics");
        let handle = ferro_telemetry::metrics::install_recorder(scheduler::HISTOGRAMS);
        tokio::spawn(ferro_telemetry::metrics::serve(
            listener,
            handle,
            beat_stop.clone(),
        ));
    }
    let beating = tokio::spawn(scheduler::heartbeat(
        pool,
        redis.key_prefix.clone(),
        settings.instance.clone(),
        stats.clone(),
        beat_stop.clone(),
    ));
    scheduler::run(db.clone(), broker, lock, settings, stats, shutdown).await;
    beat_stop.cancel();
    let _ = beating.await;
    signal.abort();
    db.close().await;
}
