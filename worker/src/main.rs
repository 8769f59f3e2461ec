//! `worker`: runs jobs from the broker (see the library); `worker ping` is
//! the container health check.

use std::time::Duration;

use clap::{Parser, Subcommand};
use ferro_config::{Env, RedisConfig};
use ferro_telemetry::exit_on_config_error;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAME: &str = "worker";

/// Runs jobs from the broker (settings from the environment).
#[derive(Parser)]
#[command(
    name = "worker",
    version,
    after_help = "Examples:\n  worker --concurrency 16   run jobs, 16 at a time\n  worker --queues snmp=4,default   consume two queues, at most 4 snmp jobs at once\n  worker ping --pid 42      exit 0 if worker process 42 on this host beat within 15 s"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Jobs run at once (and the broker prefetch); overrides WORKER_CONCURRENCY.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    concurrency: Option<u16>,
    /// Job queues to consume, e.g. `snmp=4,default` (=N caps a queue's
    /// jobs at once); overrides WORKER_QUEUES. Default: every queue.
    #[arg(long, value_name = "QUEUES")]
    queues: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs (the default).
    Run(RunArgs),
    /// Exit 0 if a worker on this host wrote its heartbeat within 15 s.
    Ping {
        /// Only this process's heartbeat counts.
        #[arg(long)]
        pid: Option<u32>,
    },
}

#[tokio::main]
async fn main() {
    let cli: Cli = ferro_telemetry::parse_args(NAME);
    let mut env = Env::load();
    let (concurrency, queues) = match cli.command {
        Some(Command::Ping { pid }) => ping(&env, pid).await,
        Some(Command::Run(run)) => (
            run.concurrency.or(cli.run.concurrency),
            run.queues.or(cli.run.queues),
        ),
        None => (cli.run.concurrency, cli.run.queues),
    };
    if let Some(n) = concurrency {
        env = env.with("WORKER_CONCURRENCY", n.to_string());
    }
    if let Some(queues) = queues {
        env = env.with("WORKER_QUEUES", queues);
    }
    let config =
        worker::WorkerConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    ferro_telemetry::init(NAME, &config.log);
    if let Err(err) = worker::service::serve(config).await {
        eprintln!("{NAME}: {err}");
        std::process::exit(err.exit_code());
    }
}

/// For health checks: exits 0 if a worker on this host (process `pid`, if
/// given) beat within 15 s, 1 otherwise.
async fn ping(env: &Env, pid: Option<u32>) -> ! {
    let redis = RedisConfig::from_env(env).unwrap_or_else(|e| exit_on_config_error(NAME, e));
    let pool = ferro_redis::create_pool(redis.url.expose(), 1, Duration::from_secs(2))
        .unwrap_or_else(|e| exit_on_config_error(NAME, format!("REDIS_URL: {e}")));
    let fresh = Duration::from_secs(15);
    match worker::ping(&pool, &redis.key_prefix, &worker::host_name(), pid, fresh).await {
        Ok(true) => std::process::exit(0),
        Ok(false) => {
            eprintln!("{NAME}: no live worker on this host");
            std::process::exit(1);
        }
        Err(err) => {
            eprintln!("{NAME}: cannot read heartbeats: {err}");
            std::process::exit(1);
        }
    }
}
