//! Logging set-up in one place: structured, UTC timestamps, filtered by `RUST_LOG` (default
//! `info`). Logs are JSON lines when the output is not a terminal (for log shippers), readable
//! text when it is. Strings that clients choose are logged with escaping, so they cannot forge
//! a log line.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where logs go: the service logs to stdout; the admin commands keep stdout for their results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// Installs the global subscriber; a second call is a no-op (tests start many apps).
pub fn init(output: Output) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let terminal = match output {
        Output::Stdout => std::io::stdout().is_terminal(),
        Output::Stderr => std::io::stderr().is_terminal(),
    };
    let result = match (output, terminal) {
        (Output::Stdout, true) => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        (Output::Stderr, true) => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        (Output::Stdout, false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false),
            )
            .try_init(),
        (Output::Stderr, false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    let _ = result;
}
