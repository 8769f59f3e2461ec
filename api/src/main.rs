use ferro_config::Env;

// Many small, short-lived allocations per request: mimalloc handles them
// with less contention than glibc's malloc (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ferro_telemetry::exit_on_config_error;

#[tokio::main]
async fn main() {
    let env = Env::load();
    let config = api::ApiConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("api", e));
    ferro_telemetry::init("api", &config.log);
    if let Err(err) = api::run(config).await {
        tracing::error!(error = format!("{err:#}"), "api failed");
        eprintln!("api: {err:#}");
        std::process::exit(1);
    }
}
