//! `killbill-auth admin …`: administration on the service's database, working while the service
//! runs (the store's locks make the two take turns).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::ConfigArg;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::service::ServiceError;
use crate::startup::Services;

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Creates an administrator; the password is read from standard input (not echoed on a terminal).
    CreateAdmin {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
    },
    /// Creates a service account (role SERVICE, for a game server) with no password and prints
    /// its key, once, alone on standard output.
    CreateService {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        name: String,
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

impl AdminCommand {
    /// The `--config` file the command was given.
    pub(crate) fn config(&self) -> &Option<PathBuf> {
        match self {
            AdminCommand::CreateAdmin { config, .. }
            | AdminCommand::CreateService { config, .. }
            | AdminCommand::ListUsers { config }
            | AdminCommand::RevokeKeys { config, .. }
            | AdminCommand::DeleteUser { config, .. } => &config.config,
        }
    }
}

pub(crate) async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
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
        AdminCommand::CreateService { name, .. } => {
            let (user, key) = accounts.create_service(&name).await.map_err(explain)?;
            // The key alone on standard output, so that a script can capture it; the rest on
            // standard error.
            println!("{}", key.encode());
            eprintln!(
                "created service account {} ({}); its key above is shown only once",
                user.name, user.id
            );
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
