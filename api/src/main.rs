use clap::{Parser, Subcommand};
use ferro_config::Env;

// Many small, short-lived allocations per request: mimalloc handles them
// with less contention than glibc's malloc (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ferro_telemetry::exit_on_config_error;

/// Serves the REST API (settings from the environment).
#[derive(Parser)]
#[command(
    name = "api",
    version,
    after_help = "Examples:\n  api              serve the REST API\n  api healthcheck  exit 0 if this host's api answers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (the default).
    Serve,
    /// Exit 0 if this host's api answers its health check within 2 s.
    Healthcheck,
    /// Print the OpenAPI document (JSON) and exit; needs no service.
    Openapi,
}

#[tokio::main]
async fn main() {
    let cli: Cli = ferro_telemetry::parse_args("api");
    if let Some(Command::Openapi) = cli.command {
        match api::openapi().to_pretty_json() {
            Ok(json) => {
                println!("{json}");
                std::process::exit(0);
            }
            Err(err) => {
                eprintln!("api: cannot write the document: {err}");
                std::process::exit(1);
            }
        }
    }
    let env = Env::load();
    if let Some(Command::Healthcheck) = cli.command {
        // For container health checks: exit 0 only if this host's api answers.
        let port = env
            .parse_or("PORT", 8001u16, "a TCP port from 0 to 65535")
            .unwrap_or_else(|e| exit_on_config_error("api", e));
        let host = env.raw("HOST").unwrap_or("0.0.0.0");
        match api::healthcheck::check(host, port, std::time::Duration::from_secs(2)).await {
            Ok(()) => std::process::exit(0),
            Err(err) => {
                eprintln!("api: unhealthy: {err}");
                std::process::exit(1);
            }
        }
    }
    let config = api::ApiConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("api", e));
    ferro_telemetry::init("api", &config.log);
    if let Err(err) = api::run(config).await {
        tracing::error!(error = format!("{err:#}"), "api failed");
        eprintln!("api: {err:#}");
        std::process::exit(1);
    }
}
