//! The `killbill-auth` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use killbill_auth::clock::SystemClock;
use killbill_auth::config::Settings;
use killbill_auth::startup::{shutdown_signal, Application};
use killbill_auth::telemetry;

#[derive(Parser)]
#[command(
    name = "killbill-auth",
    version,
    about = "Token-based authentication for Kill Bill 2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service.
    Serve {
        /// A TOML configuration file (see README.md); KILLBILL_AUTH_* variables override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("killbill-auth: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("killbill-auth: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(async {
                let app = Application::build(&settings, Arc::new(SystemClock)).await?;
                app.run_until(shutdown_signal()).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("killbill-auth: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
