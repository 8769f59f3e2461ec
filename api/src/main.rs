use ferro_config::Env;

// Many small, short-lived allocations per request: mimalloc handles them
// with less contention than glibc's malloc (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ferro_telemetry::exit_on_config_error;

#[tokio::main]
async fn main() {
    let args = ferro_telemetry::args_or_exit(
        "api",
        "usage: api              serve the REST API (settings from the environment)\n       \
         api healthcheck  exit 0 if this host's api answers",
        |a| matches!(a, [] | ["healthcheck"]),
    );
    let env = Env::load();
    if args.first().map(String::as_str) == Some("healthcheck") {
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
