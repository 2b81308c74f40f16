//! The `killbill-auth` command line: `serve`, and `admin …` (`admin.rs`) for what is never done
//! over HTTP. `main.rs` only calls [`run`].

mod admin;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};
use crate::telemetry;
use admin::AdminCommand;

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

#[derive(Args)]
pub(crate) struct ConfigArg {
    /// A TOML configuration file (see README.md); KILLBILL_AUTH_* variables override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Administration on the service's database; works while the service runs.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Parses the command line and runs it; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let (config, admin) = match cli.command {
        Command::Serve { config } => (config.config, None),
        Command::Admin { command } => (command.config().clone(), Some(command)),
    };
    // The admin commands print their results on stdout; their logs go to stderr.
    telemetry::init(if admin.is_some() {
        telemetry::Output::Stderr
    } else {
        telemetry::Output::Stdout
    });
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
        match admin {
            None => {
                let app = Application::build(&settings, Arc::new(SystemClock)).await?;
                app.run_until(shutdown_signal()).await
            }
            Some(command) => admin::run(&settings, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("killbill-auth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
