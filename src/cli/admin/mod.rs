//! `killbill-auth admin …`: administration on the service's database, working while the service
//! runs (the store's locks make the two take turns). Results go to standard output: words, an
//! aligned table for listings, or one JSON document with `--json`; logs go to standard error.
//!
//! Here: running a command; its arguments and help are in `commands.rs`, `admin import` in
//! `import.rs`, and how results and errors are written in `output.rs`.

mod commands;
mod import;
mod output;

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;

pub(crate) use commands::AdminCommand;
use output::{explain, print_json, print_line, stdout_error, table_row, Outcome};

use super::UsageError;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::Role;
use crate::service::ServiceError;
use crate::startup::Services;

pub(crate) async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let json = command.common().json;
    // A backup reads the database file as it is: no migration, no services.
    if let AdminCommand::Backup { to, .. } = &command {
        let report = super::backup::backup(settings, to).await?;
        return if json {
            print_json(&report)
        } else {
            print_line(&format!(
                "backed up {} to {} ({} bytes, {} user(s))",
                report.database, report.backup, report.bytes, report.users
            ))
        };
    }
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let result = admin(&services, command, json).await;
    services.close().await;
    result
}

async fn admin(services: &Services, command: AdminCommand, json: bool) -> anyhow::Result<()> {
    let accounts = &services.accounts;
    match command {
        AdminCommand::CreateAdmin { username, .. } => {
            let password = read_password(&username)?;
            let user = accounts
                .create_admin(&username, &password)
                .await
                .map_err(explain)?;
            if json {
                print_json(&Outcome::of(&user))?;
            } else {
                print_line(&format!("created administrator {} ({})", user.name, user.id))?;
            }
        }
        AdminCommand::CreateService { name, .. } => {
            let (user, key) = accounts.create_service(&name).await.map_err(explain)?;
            if json {
                print_json(&Outcome {
                    key: Some(key.encode()),
                    ..Outcome::of(&user)
                })?;
            } else {
                // The key alone on standard output, so that a script can capture it; the rest
                // on standard error.
                print_line(&key.encode())?;
            }
            eprintln!(
                "created service account {} ({}); its key is shown only once",
                user.name, user.id
            );
        }
        AdminCommand::ListUsers { .. } => list_users(services, json).await?,
        AdminCommand::RevokeKeys { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let n = accounts.admin_revoke_keys(user.id, None).await.map_err(explain)?;
            if json {
                print_json(&Outcome {
                    revoked: Some(n),
                    ..Outcome::of(&user)
                })?;
            } else {
                print_line(&format!("revoked {n} key(s) of {}", user.name))?;
            }
        }
        AdminCommand::ResetCode {
            username, lifetime, ..
        } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let lifetime = lifetime.unwrap_or(crate::domain::reset_code::DEFAULT_LIFETIME);
            let (code, expires) = accounts
                .issue_reset_code(user.id, lifetime, None)
                .await
                .map_err(explain)?;
            if json {
                print_json(&Outcome {
                    code: Some(code.as_str()),
                    expires: Some(expires),
                    ..Outcome::of(&user)
                })?;
            } else {
                print_line(&format!(
                    "reset code for {}: {} (expires {})",
                    user.name,
                    code.as_str(),
                    expires.to_rfc3339()
                ))?;
            }
        }
        AdminCommand::DeleteUser { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            accounts.admin_delete_user(user.id, None).await.map_err(explain)?;
            if json {
                print_json(&Outcome {
                    deleted: Some(true),
                    ..Outcome::of(&user)
                })?;
            } else {
                print_line(&format!("deleted {} ({})", user.name, user.id))?;
            }
        }
        AdminCommand::Suspend {
            username,
            reason,
            duration,
            until,
            ..
        } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let until = match duration {
                Some(d) => Some(services.clock.now().plus(d.into())),
                None => until,
            };
            let suspension = accounts
                .suspend(user.id, &reason, until, None)
                .await
                .map_err(explain)?;
            if json {
                print_json(&Outcome {
                    suspension: Some(&suspension),
                    ..Outcome::of(&user)
                })?;
            } else {
                match suspension.until {
                    Some(until) => print_line(&format!("suspended {} until {until}", user.name))?,
                    None => print_line(&format!("suspended {} permanently", user.name))?,
                }
            }
        }
        AdminCommand::SetRole { username, role, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let role = Role::parse(&role).ok_or_else(|| UsageError("--role: USER or ADMIN".into()))?;
            let user = accounts.set_role(user.id, role, None).await.map_err(explain)?;
            if json {
                print_json(&Outcome::of(&user))?;
            } else {
                print_line(&format!("{} is now {}", user.name, user.role.as_str()))?;
            }
        }
        AdminCommand::Unsuspend { username, .. } => {
            let user = accounts.find_user(&username).await.map_err(explain)?;
            let lifted = match accounts.unsuspend(user.id, None).await {
                Ok(lifted) => lifted,
                Err(ServiceError::NotFound) => anyhow::bail!("{} is not suspended", user.name),
                Err(e) => return Err(explain(e)),
            };
            if json {
                print_json(&Outcome {
                    suspension: Some(&lifted),
                    ..Outcome::of(&user)
                })?;
            } else {
                print_line(&format!("lifted the suspension of {}", user.name))?;
            }
        }
        AdminCommand::Import {
            from,
            dry_run,
            keep_keys,
            ..
        } => import::import(services, &from, dry_run, keep_keys, json).await?,
        // Handled in `run`, before the services are built.
        AdminCommand::Backup { .. } => {}
    }
    Ok(())
}

/// Users page by page (1000 at a time), written as they come: an aligned table (the columns
/// have fixed widths: an id is 36 characters, a name at most 20, a role at most 7) or one JSON
/// array.
async fn list_users(services: &Services, json: bool) -> anyhow::Result<()> {
    const PAGE: u32 = 1000;
    let mut out = std::io::stdout().lock();
    let mut write = |text: &str| out.write_all(text.as_bytes()).map_err(stdout_error);
    write(if json {
        "["
    } else {
        "ID                                    NAME                  ROLE     CREATED\n"
    })?;
    let mut after = None;
    let mut first = true;
    loop {
        let page = services.accounts.list_users(after, PAGE).await.map_err(explain)?;
        let mut chunk = String::new();
        for u in &page {
            if json {
                if !first {
                    chunk.push(',');
                }
                chunk.push_str("\n  ");
                chunk.push_str(&serde_json::to_string(u)?);
            } else {
                chunk.push_str(&table_row(u));
            }
            first = false;
        }
        write(&chunk)?;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some((last.created, last.id)),
            _ => break,
        }
    }
    write(if json && !first {
        "\n]\n"
    } else if json {
        "]\n"
    } else {
        ""
    })?;
    out.flush().map_err(stdout_error)
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
