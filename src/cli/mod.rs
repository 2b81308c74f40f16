//! The `killbill-auth` command line: `serve` (and `serve --check-config`), and `admin …`
//! (`admin/`, `backup.rs`) for what is never done over HTTP. `main.rs` only calls [`run`].
//!
//! Exit codes, the same for every command (`--help` and README.md say so): 0 success; 1 the
//! operation failed or was refused (no such user, a name taken, the database unreachable, a
//! file in the way); 2 usage or configuration (an unknown argument or a bad value on the command
//! line, a configuration file or variable that does not load, a pepper that is not the
//! database's): nothing was done. clap exits 2
//! for what it rejects, and 0 for `--help` and `--version`.

mod admin;
mod backup;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{DatabaseTarget, Settings, ENV_PREFIX};
use crate::startup::{shutdown_signal, Application};
use crate::telemetry;
use admin::AdminCommand;

/// Exit code 1: the operation failed or was refused.
const EXIT_FAILED: u8 = 1;
/// Exit code 2: usage or configuration; nothing was done.
const EXIT_USAGE: u8 = 2;

const MAIN_HELP: &str = "\
Exit codes (every command):
  0  success
  1  the operation failed or was refused (no such user, a name already taken, the database
     unreachable, a file in the way, the service stopped by an error)
  2  usage or configuration: an unknown argument or a bad value, a configuration file or
     KILLBILL_AUTH_* variable that does not load (the message names the key), or a pepper
     (or none) that is not the one the database was created with; nothing was done

Configuration: --config FILE (TOML, see README.md); every key can be overridden by a variable
KILLBILL_AUTH_<SECTION>_<KEY> (e.g. KILLBILL_AUTH_ANOMALY_MAX_NETWORKS=3), or read from a file
with KILLBILL_AUTH_<SECTION>_<KEY>_FILE=/path (secrets: the database URL, the pepper).

Examples:
  killbill-auth serve                                   # 127.0.0.1:8080, SQLite under ./data/
  killbill-auth serve --config /etc/killbill-auth.toml
  killbill-auth serve --check-config --config /etc/killbill-auth.toml
  killbill-auth admin create-admin --username root      # asks for the password
  killbill-auth admin list-users --json
  killbill-auth admin backup --to /var/backups/killbill-auth-$(date +%F).db";

const SERVE_HELP: &str = "\
With no configuration the service listens on 127.0.0.1:8080 and keeps its data in an embedded
SQLite database under ./data/ (created owner-only). It stops gracefully on SIGTERM or SIGINT
(exit 0); it exits 1 when it cannot start (the port taken, the database unreachable) and 2 when
the configuration does not load, naming the key.

--check-config prints the effective configuration (defaults, then the file, then the variables)
as TOML, every section, with the database URL's password shown as *** and the pepper only as set
or not set, and exits 0; or names what is wrong and exits 2. It touches neither the network nor
the database.

Examples:
  killbill-auth serve
  killbill-auth serve --config /etc/killbill-auth.toml
  KILLBILL_AUTH_SERVER_LISTEN=0.0.0.0:8080 KILLBILL_AUTH_SERVER_TRUSTED_PROXIES='[\"10.0.0.2\"]' killbill-auth serve
  KILLBILL_AUTH_DATABASE_URL_FILE=/run/secrets/db-url KILLBILL_AUTH_PASSWORD_PEPPER_FILE=/run/secrets/pepper \\
      killbill-auth serve --config /etc/killbill-auth.toml
  killbill-auth serve --check-config --config /etc/killbill-auth.toml";

const ADMIN_HELP: &str = "\
Every admin command opens the service's database (the same --config and KILLBILL_AUTH_*
variables as serve) and works while the service runs: keys revoked here are refused by every
running instance within a second. Results go to standard output (text, or one JSON document with
--json), logs to standard error. Exit codes: 0 done, 1 failed or refused, 2 usage or configuration.

Examples:
  killbill-auth admin create-admin --username root
  KEY=$(killbill-auth admin create-service --name matchmaker)
  killbill-auth admin list-users
  killbill-auth admin suspend --username bill --reason 'aimbot' --for 7d
  killbill-auth admin backup --to /var/backups/killbill-auth.db";

#[derive(Parser)]
#[command(
    name = "killbill-auth",
    version,
    about = "Token-based authentication for Kill Bill 2",
    long_about = "Token-based authentication for Kill Bill 2: sign up with a username and a \
                  password, trade them for an access key, send `Authorization: Bearer <key>`. \
                  `serve` runs the HTTP service; `admin` does what is never done over HTTP.",
    after_help = MAIN_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Debug, Default)]
pub(crate) struct ConfigArg {
    /// A TOML configuration file (see README.md); KILLBILL_AUTH_* variables override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service (or, with --check-config, prints its configuration).
    #[command(after_help = SERVE_HELP)]
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Prints the effective configuration (secrets redacted) and exits: 0 when it loads,
        /// 2 naming the key when it does not.
        #[arg(long)]
        check_config: bool,
    },
    /// Administration on the service's database; works while the service runs.
    #[command(after_help = ADMIN_HELP)]
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// An error that is the caller's (exit 2): a bad argument or configuration; nothing was done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// Parses the command line and runs it; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let (config, check_config, admin) = match cli.command {
        Command::Serve { config, check_config } => (config.config, check_config, None),
        Command::Admin { command } => (command.config().clone(), false, Some(command)),
    };
    // The admin commands and --check-config print their results on stdout; their logs go to
    // stderr.
    telemetry::init(if admin.is_some() || check_config {
        telemetry::Output::Stderr
    } else {
        telemetry::Output::Stdout
    });
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("killbill-auth: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if check_config {
        return match print_check_config(&settings, config.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("killbill-auth: {e:#}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("killbill-auth: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
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
            if e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<crate::config::ConfigError>().is_some()
                || e.downcast_ref::<crate::domain::pepper::PepperMismatch>()
                    .is_some()
            {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

/// `serve --check-config`: a few comments saying where the configuration came from (the file,
/// the names of the variables, never their values), the warnings start-up would log, then the
/// effective configuration as TOML.
fn print_check_config(settings: &Settings, file: Option<&Path>) -> anyhow::Result<()> {
    let mut variables: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(ENV_PREFIX))
        .collect();
    variables.sort();
    let mut out = String::from(
        "# killbill-auth: the effective configuration (defaults, then the file, then the variables);\n\
         # database passwords are shown as ***, the pepper only as set or not set\n",
    );
    match file {
        Some(path) => out.push_str(&format!("# file: {}\n", path.display())),
        None => out.push_str("# file: none\n"),
    }
    if variables.is_empty() {
        out.push_str("# variables: none\n");
    } else {
        out.push_str(&format!("# variables: {}\n", variables.join(", ")));
    }
    match settings.database_target()? {
        DatabaseTarget::Sqlite(path) => out.push_str(&format!(
            "# database: SQLite, {} ({})\n",
            path.display(),
            if path.is_file() {
                "exists"
            } else {
                "created at the first start"
            }
        )),
        DatabaseTarget::Postgres(_) => out.push_str(
            "# database: PostgreSQL (several instances may share it; not contacted by this check)\n",
        ),
    }
    for warning in settings.warnings() {
        out.push_str(&format!("# warning: {warning}\n"));
    }
    out.push('\n');
    out.push_str(&settings.to_redacted_toml()?);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))
}
