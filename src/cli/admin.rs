//! `killbill-auth admin …`: administration on the service's database, working while the service
//! runs (the store's locks make the two take turns).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::ConfigArg;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{Role, Timestamp};
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
    /// Suspends a user (replacing a suspension in force) and revokes every key of theirs. The
    /// reason is shown to the player when they sign in. Without --for or --until the suspension
    /// is permanent.
    Suspend {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        /// 1 to 200 characters, shown to the player.
        #[arg(long)]
        reason: String,
        /// How long, e.g. `7d`, `12h`.
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        duration: Option<humantime::Duration>,
        /// Until when, RFC 3339, e.g. `2026-12-24T18:00:00Z`.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Makes a user an administrator (`ADMIN`) or a player again (`USER`). The last
    /// administrator in force cannot be demoted.
    SetRole {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        /// `USER` or `ADMIN`.
        #[arg(long, value_parser = ["USER", "ADMIN"])]
        role: String,
    },
    /// Lifts the suspension in force (kept in the history as lifted).
    Unsuspend {
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
            | AdminCommand::DeleteUser { config, .. }
            | AdminCommand::Suspend { config, .. }
            | AdminCommand::SetRole { config, .. }
            | AdminCommand::Unsuspend { config, .. } => &config.config,
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
            let n = accounts.admin_revoke_keys(user.id, None).await.map_err(explain)?;
            println!("revoked {n} key(s) of {}", user.name);
        }
        AdminCommand::DeleteUser { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            accounts.admin_delete_user(user.id, None).await.map_err(explain)?;
            println!("deleted {} ({})", user.name, user.id);
        }
        AdminCommand::Suspend {
            username,
            reason,
            duration,
            until,
            ..
        } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let until = match (duration, until) {
                (Some(d), _) => Some(services.clock.now().plus(d.into())),
                (None, Some(text)) => Some(
                    Timestamp::parse_rfc3339(&text)
                        .ok_or_else(|| anyhow::anyhow!("--until: not an RFC 3339 date-time: {text:?}"))?,
                ),
                (None, None) => None,
            };
            let suspension = accounts
                .suspend(user.id, &reason, until, None)
                .await
                .map_err(explain)?;
            match suspension.until {
                Some(until) => println!("suspended {} until {until}", user.name),
                None => println!("suspended {} permanently", user.name),
            }
        }
        AdminCommand::SetRole { username, role, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("--role: USER or ADMIN"))?;
            let user = accounts.set_role(user.id, role, None).await.map_err(explain)?;
            println!("{} is now {}", user.name, user.role.as_str());
        }
        AdminCommand::Unsuspend { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            match accounts.unsuspend(user.id, None).await {
                Ok(_) => println!("lifted the suspension of {}", user.name),
                Err(ServiceError::NotFound) => anyhow::bail!("{} is not suspended", user.name),
                Err(e) => return Err(explain(e)),
            }
        }
    }
    Ok(())
}

/// A service error in words for the operator.
fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such user"),
        ServiceError::UsernameTaken => anyhow::anyhow!("that username is already taken"),
        ServiceError::LastAdmin => {
            anyhow::anyhow!("refused: that is the last administrator in force (create another first)")
        }
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
