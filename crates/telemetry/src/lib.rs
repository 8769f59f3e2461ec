//! Start-up hooks every binary runs first: the rustls crypto provider and the
//! tracing subscriber (JSON or pretty, filtered by `RUST_LOG`); signals; the
//! Prometheus endpoint of the worker and the scheduler ([`metrics`]).

pub mod metrics;

use ferro_config::{LogConfig, LogFormat};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the process-wide rustls crypto provider (ring). sqlx, lapin and
/// lettre all build rustls client configs; with exactly one provider
/// installed up front none of them can pick a second one and panic.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Installs the crypto provider and the global tracing subscriber.
///
/// `service` is attached to every JSON line so that logs from several
/// services can be told apart after they are merged.
pub fn init(service: &'static str, config: &LogConfig) {
    install_crypto_provider();
    // A malformed value stops the binary, as every other setting does.
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|err| {
        exit_on_config_error(
            service,
            format!("RUST_LOG is invalid ({err}); expected directives such as info or api=debug,sqlx=warn"),
        )
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true),
            )
            .try_init(),
        // Colours only on a terminal, not in files or deploy/local/up.sh's prefixed output.
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_target(true)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::info!(service, "logging initialised");
    }
}

/// "outer: inner: innermost": an error with its causes, for logs and for
/// the one line a binary prints when it cannot start.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Some errors already end with their cause's text (sqlx's do).
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The command line, parsed with clap before anything starts: `--help`
/// and `--version` print and exit 0; anything else clap refuses (an unknown
/// subcommand or flag, a bad value) is printed, starting with
/// `{service}: unknown arguments: ...` or `{service}: bad arguments: ...`,
/// and exits 2, so a typo never starts a live service.
pub fn parse_args<C: clap::Parser>(service: &str) -> C {
    use clap::error::ErrorKind;
    match C::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                err.exit();
            }
            let words: Vec<String> = std::env::args().skip(1).collect();
            let what = match err.kind() {
                ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand => "unknown",
                _ => "bad",
            };
            eprintln!("{service}: {what} arguments: {}\n{err}", words.join(" "));
            std::process::exit(2);
        }
    }
}

/// Prints a configuration error as one line and exits with status 2.
pub fn exit_on_config_error(service: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("{service}: configuration error: {err}");
    std::process::exit(2)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = term => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")]
    struct Middle(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn the_chain_names_each_cause_once() {
        assert_eq!(
            super::error_chain(&Outer(Middle(Inner))),
            "outer: middle: inner"
        );
    }
}
