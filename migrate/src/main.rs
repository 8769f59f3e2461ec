use clap::{Parser, Subcommand};
use ferro_config::{Env, LogConfig};
use ferro_schema::MigrateConfig;
use ferro_telemetry::exit_on_config_error;

/// Prepares the database: migrations, the application role, seed data.
#[derive(Parser)]
#[command(name = "migrate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Wait for the database, apply migrations, ensure the app role, seed.
    Up,
    /// List migrations and whether each is applied.
    Status,
    /// Development only: drop everything in schema public, then `up`.
    Reset {
        /// Confirm that all data in the database is to be destroyed.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() {
    let cli: Cli = ferro_telemetry::parse_args("migrate");
    let env = Env::load();
    let log = LogConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("migrate", e));
    ferro_telemetry::init("migrate", &log);
    let cfg = MigrateConfig::from_env(&env).unwrap_or_else(|e| exit_on_config_error("migrate", e));

    let result = match cli.command {
        Command::Up => ferro_schema::up(&cfg).await.map(report),
        Command::Reset { yes: false } => {
            eprintln!("migrate: reset destroys all data; run `migrate reset --yes` to confirm");
            std::process::exit(2);
        }
        Command::Reset { yes: true } => ferro_schema::reset(&cfg).await.map(report),
        Command::Status => ferro_schema::status(&cfg).await.map(|states| {
            let pending = states.iter().filter(|s| !s.applied).count();
            for s in &states {
                let state = match (s.applied, s.checksum_mismatch) {
                    (true, false) => "applied",
                    (true, true) => "applied, but the file has changed since",
                    (false, _) => "pending",
                };
                println!("{:>14}  {:<40} {state}", s.version, s.description);
            }
            println!("{} migrations, {pending} pending", states.len());
        }),
    };
    if let Err(err) = result {
        let err = ferro_telemetry::error_chain(&err);
        tracing::error!(error = %err, "migrate failed");
        eprintln!("migrate: {err}");
        std::process::exit(1);
    }
}

fn report(r: ferro_schema::UpReport) {
    tracing::info!(
        migrations_applied = r.migrations_applied,
        database_created = r.database_created,
        app_role = r.app_role.as_deref().unwrap_or("(same as owner)"),
        default_tenant = %r.default_tenant_id,
        admin = ?r.admin,
        "database is up to date"
    );
}
