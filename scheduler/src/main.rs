//! `scheduler`: fires cron schedules exactly once (see the library).
//! `scheduler list` prints every schedule with its next three fire times;
//! `scheduler ping` exits 0 if an instance on this host beat within 15 s.

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferro_config::{AppEnv, BrokerConfig, DatabaseConfig, Env, LogConfig, RedisConfig};
use ferro_telemetry::exit_on_config_error;
use tokio_util::sync::CancellationToken;

const NAME: &str = "scheduler";

/// Fires cron schedules exactly once (settings from the environment).
#[derive(Parser)]
#[command(
    name = "scheduler",
    version,
    after_help = "Examples:\n  scheduler                 fire the schedules\n  scheduler list            the schedules and their next fire times\n  scheduler ping --pid 42   exit 0 if scheduler process 42 on this host beat within 15 s"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, PartialEq)]
enum Command {
    /// Fire the schedules (the default).
    Run,
    /// Print every schedule with its next three fire times.
    List,
    /// Exit 0 if a scheduler on this host wrote its heartbeat within 15 s.
    Ping {
        /// Only this process's heartbeat counts.
        #[arg(long)]
        pid: Option<u32>,
    },
}

#[tokio::main]
async fn main() {
    ferro_telemetry::install_crypto_provider();
    let cli: Cli = ferro_telemetry::parse_args(NAME);
    let command = cli.command.unwrap_or(Command::Run);
    let env = Env::load();
    let redis = RedisConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    let pool = ferro_redis::create_pool(redis.url.expose(), 2, Duration::from_secs(2))
        .unwrap_or_else(|e| exit_on_config_error(NAME, format!("REDIS_URL: {e}")));
    if let Command::Ping { pid } = command {
        let host = ferro_redis::heartbeat::host_name();
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
    if command != Command::List {
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
    if command == Command::List {
        match scheduler::list(&db).await {
            Ok(text) => {
                print!("{text}");
                std::process::exit(0);
            }
            Err(err) => {
                eprintln!("scheduler: {err}");
                std::process::exit(1);
            }
        }
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
