//! The `killbill-auth` command line: `serve`, and `admin …` for what is never done over HTTP.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use killbill_auth::clock::SystemClock;
use killbill_auth::config::Settings;
use killbill_auth::service::ServiceError;
use killbill_auth::startup::{shutdown_signal, Application, Services};
use killbill_auth::telemetry;

/// mimalloc instead of the system allocator: a validation allocates a few dozen small blocks
/// (hyper, axum, the answer), and glibc's malloc and free were about a tenth of its CPU time.
/// `examples/bare.rs` uses it too, so the benchmark compares handlers, not allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
struct ConfigArg {
    /// A TOML configuration file (see README.md); KILLBILL_AUTH_* variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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

#[derive(Subcommand)]
enum AdminCommand {
    /// Creates an administrator; the password is read from standard input (not echoed on a terminal).
    CreateAdmin {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
    },
    /// Lists every user: id, name, role, creation time (tab-separated).
    ListUsers {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revokes every key of a user (reason `admin`).
    RevokeKeys {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
    },
    /// Deletes a user with their keys and history.
    DeleteUser {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, admin) = match cli.command {
        Command::Serve { config } => (config.config, None),
        Command::Admin { command } => match &command {
            AdminCommand::CreateAdmin { config, .. }
            | AdminCommand::ListUsers { config }
            | AdminCommand::RevokeKeys { config, .. }
            | AdminCommand::DeleteUser { config, .. } => (config.config.clone(), Some(command)),
        },
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
            Some(command) => run_admin(&settings, command).await,
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

async fn run_admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let result = admin(&services, command).await;
    services.close().await;
    result
}

async fn admin(services: &Services, command: AdminCommand) -> anyhow::Result<()> {
    let accounts = &services.accounts;
    match command {
        AdminCommand::CreateAdmin { username, .. } => {
            let password = read_password(&username)?;
            let user = accounts
                .create_admin(&username, &password)
                .await
                .map_err(explain)?;
            println!("created administrator {} ({})", user.name, user.id);
        }
        AdminCommand::ListUsers { .. } => {
            let mut after = None;
            loop {
                let page = accounts.list_users(after, 1000).await.map_err(explain)?;
                for u in &page {
                    println!("{}\t{}\t{}\t{}", u.id, u.name, u.role.as_str(), u.created);
                }
                match page.last() {
                    Some(last) if page.len() == 1000 => after = Some((last.created, last.id)),
                    _ => break,
                }
            }
        }
        AdminCommand::RevokeKeys { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let n = accounts
                .admin_revoke_keys(user.id, "command line")
                .await
                .map_err(explain)?;
            println!("revoked {n} key(s) of {}", user.name);
        }
        AdminCommand::DeleteUser { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            accounts
                .admin_delete_user(user.id, "command line")
                .await
                .map_err(explain)?;
            println!("deleted {} ({})", user.name, user.id);
        }
    }
    Ok(())
}

/// A service error in words for the operator.
fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such user"),
        ServiceError::UsernameTaken => anyhow::anyhow!("that username is already taken"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// The new password: prompted twice without echo on a terminal, else the first line of stdin.
fn read_password(username: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {username}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        return Ok(first);
    }
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let line = input.strip_suffix('\n').unwrap_or(&input);
    let line = line.strip_suffix('\r').unwrap_or(line);
    anyhow::ensure!(!line.is_empty(), "no password on standard input");
    Ok(line.to_owned())
}
