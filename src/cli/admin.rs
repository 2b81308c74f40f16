//! `killbill-auth admin …`: administration on the service's database, working while the service
//! runs (the store's locks make the two take turns). Results go to standard output: words, an
//! aligned table for listings, or one JSON document with `--json`; logs go to standard error.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{ConfigArg, UsageError};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{Role, Suspension, Timestamp, User};
use crate::service::ServiceError;
use crate::startup::Services;

/// What every admin command takes.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct Common {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// Prints the result as one JSON document on standard output (users as API.md's `User`).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Creates an administrator; the password is read from standard input (not echoed on a terminal).
    #[command(after_help = "\
The password is asked twice on a terminal; otherwise it is the first line of standard input. It
must pass the same policy as anyone's. Prints `created administrator NAME (ID)`, or with --json
{\"user\": User}.

Examples:
  killbill-auth admin create-admin --username root
  printf '%s\\n' \"$ROOT_PASSWORD\" | killbill-auth admin create-admin --username root --config /etc/killbill-auth.toml")]
    CreateAdmin {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
    },
    /// Creates a service account (role SERVICE, for a game server) with no password and prints
    /// its key, once, alone on standard output.
    #[command(after_help = "\
Without --json the key is the only line on standard output (what a script captures) and the
account is described on standard error; with --json: {\"user\": User, \"key\": \"…\"}. The key
is shown only once; it lasts until `admin revoke-keys --username NAME`.

Examples:
  KEY=$(killbill-auth admin create-service --name matchmaker)
  killbill-auth admin create-service --name matchmaker --json > matchmaker.json")]
    CreateService {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        name: String,
    },
    /// Lists every user: id, name, role, creation time (an aligned table, or a JSON array).
    #[command(after_help = "\
A table with a header line, in creation order; with --json one JSON array of API.md's `User`
({\"id\", \"name\", \"role\", \"created\"}).

Examples:
  killbill-auth admin list-users
  killbill-auth admin list-users --json | jq -r '.[] | select(.role == \"ADMIN\") | .name'")]
    ListUsers {
        #[command(flatten)]
        common: Common,
    },
    /// Revokes every key of a user (reason `admin`).
    #[command(after_help = "\
Running instances refuse the keys within a second. Prints `revoked N key(s) of NAME`, or with
--json {\"user\": User, \"revoked\": N}.

Examples:
  killbill-auth admin revoke-keys --username bill
  killbill-auth admin revoke-keys --username matchmaker     # the only way a service key ends")]
    RevokeKeys {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
    },
    /// Issues a one-time password reset code for a player who forgot the password (players have
    /// no e-mail); a newer code voids the older one.
    #[command(after_help = "\
Hand the code to the player (support chat, in person); they set a new password with it on the
account page or with POST /users/reset, which revokes every key of theirs. The code is shown once
and stored only as a digest. Prints `reset code for NAME: CODE (expires TIME)`, or with --json
{\"user\": User, \"code\": str, \"expires\": RFC 3339}.

Examples:
  killbill-auth admin reset-code --username bill
  killbill-auth admin reset-code --username bill --lifetime 2h")]
    ResetCode {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
        /// How long the code lasts, e.g. `24h` (the default), `30m`; at most `7d`.
        #[arg(long, value_name = "DURATION", value_parser = parse_code_lifetime)]
        lifetime: Option<std::time::Duration>,
    },
    /// Deletes a user with their keys and history.
    #[command(after_help = "\
The last administrator in force cannot be deleted (exit 1). Prints `deleted NAME (ID)`, or with
--json {\"user\": User, \"deleted\": true}.

Example:
  killbill-auth admin delete-user --username bill")]
    DeleteUser {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
    },
    /// Suspends a user (replacing a suspension in force) and revokes every key of theirs. The
    /// reason is shown to the player when they sign in. Without --for or --until the suspension
    /// is permanent.
    #[command(after_help = "\
Prints `suspended NAME until TIME` (or `permanently`), or with --json
{\"user\": User, \"suspension\": Suspension}.

Examples:
  killbill-auth admin suspend --username bill --reason 'aimbot' --for 7d
  killbill-auth admin suspend --username bill --reason 'chargeback' --until 2026-12-24T18:00:00Z
  killbill-auth admin suspend --username bill --reason 'cheating, third offence'     # permanent")]
    Suspend {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
        /// 1 to 200 characters, shown to the player.
        #[arg(long)]
        reason: String,
        /// How long, e.g. `7d`, `12h`.
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        duration: Option<humantime::Duration>,
        /// Until when, RFC 3339, e.g. `2026-12-24T18:00:00Z`.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<Timestamp>,
    },
    /// Makes a user an administrator (`ADMIN`) or a player again (`USER`). The last
    /// administrator in force cannot be demoted.
    #[command(after_help = "\
Every key of the user is revoked: the new role applies from their next sign-in. Prints
`NAME is now ROLE`, or with --json {\"user\": User}.

Examples:
  killbill-auth admin set-role --username ted --role ADMIN
  killbill-auth admin set-role --username ted --role USER")]
    SetRole {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
        /// `USER` or `ADMIN`.
        #[arg(long, value_parser = ["USER", "ADMIN"])]
        role: String,
    },
    /// Lifts the suspension in force (kept in the history as lifted).
    #[command(after_help = "\
Exit 1 when none is in force. Prints `lifted the suspension of NAME`, or with --json
{\"user\": User, \"suspension\": Suspension}.

Example:
  killbill-auth admin unsuspend --username bill")]
    Unsuspend {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        username: String,
    },
    /// Moves players in from the original Kill Bill 2 back end (its MySQL/MariaDB database) or
    /// from a JSON lines file: accounts keep their password (the player signs in with it), and
    /// with --keep-keys their live keys keep working.
    #[command(after_help = IMPORT_HELP)]
    Import {
        #[command(flatten)]
        common: Common,
        /// `mysql://user:password@host:port/database` (the original back end; the password may
        /// also come from MYSQL_PWD), or a file of JSON lines.
        #[arg(long, value_name = "SOURCE")]
        from: String,
        /// Reads and checks everything, reports what would be done, writes nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also keeps the original back end's live keys working (MySQL only), stored as digests.
        #[arg(long)]
        keep_keys: bool,
    },
    /// Copies the SQLite database, consistently, while the service runs (for PostgreSQL use
    /// pg_dump).
    #[command(after_help = "\
The copy is one consistent moment of the database (SQLite's VACUUM INTO, in one read
transaction: the service goes on reading and writing meanwhile), written owner-only (0600) to a
file that must not exist yet, synced to disk and checked (PRAGMA quick_check). To restore, stop
the service and put the copy in place of the database file (removing its -wal and -shm files).
Keep the pepper (if set) with it: without the same pepper no password verifies. With PostgreSQL
(database.url = \"postgres://…\") it exits 2: use pg_dump --format=custom instead.
Prints `backed up PATH to FILE (N bytes, U users)`, or with --json
{\"database\": PATH, \"backup\": FILE, \"bytes\": N, \"users\": U}.

Examples:
  killbill-auth admin backup --to /var/backups/killbill-auth-$(date +%F).db
  killbill-auth admin backup --config /etc/killbill-auth.toml --to ./copy.db --json")]
    Backup {
        #[command(flatten)]
        common: Common,
        /// Where the copy goes; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

const IMPORT_HELP: &str = "\
Streams the source in batches of 1,000 rows, one transaction each, so it runs next to the
service and its memory stays flat. Password hashes are kept as they are (Argon2 as Spring
Security writes it, or bcrypt) and replaced by the configured Argon2id at each player's next
sign-in. A name that is invalid here, or taken regardless of case (by an account here, by an
earlier row of the source, or, in the original database, by another account differing only by
case), is refused and listed, never renamed. Running it again imports nothing twice: accounts
imported earlier are \"already present\" (a hash changed at the source since, and never used here,
follows it), new keys are added, and keys no longer live at the source are revoked here. See
book/src/migration.md for the cut-over.

JSON lines: one object a line, {\"username\", \"password_hash\", \"created\" (RFC 3339 or epoch
ms, optional), \"role\" (USER or ADMIN, optional)}; unknown fields are refused.

Each refused row is printed as it is met (`refused: line 7 (bill): why`), then the counts; with
--json one document {\"refusals\": [{\"at\", \"name\", \"reason\"}], \"source\", \"dry_run\",
\"accounts\": {\"read\", \"imported\", \"already_present\", \"hash_updated\", \"refused\"},
\"keys\": {\"read\", \"imported\", \"already_present\", \"skipped\", \"refused\", \"revoked\"} or null,
\"seconds\"}. A progress bar is drawn on standard error when it is a terminal. Exit 0 when the
source was read to its end (refused rows included: they are listed and counted), 1 when it could
not be (unreachable, unreadable), 2 for --keep-keys with a file or a URL that does not parse.

Examples:
  killbill-auth admin import --from 'mysql://kb2@10.0.0.5/killbill' --keep-keys --dry-run
  MYSQL_PWD=… killbill-auth admin import --from mysql://kb2@10.0.0.5:3306/killbill --keep-keys
  killbill-auth admin import --from players.jsonl --json > import-report.json";

/// `--lifetime` of a reset code: a duration within API.md's bounds (a bad one is a usage error).
fn parse_code_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let asked = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. 24h, 30m"))?;
    crate::domain::reset_code::lifetime(Some(asked))
}

/// `--until`: an RFC 3339 date-time (a bad one is a usage error, exit 2, like any bad argument).
fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text)
        .ok_or_else(|| format!("not an RFC 3339 date-time, e.g. 2026-12-24T18:00:00Z: {text:?}"))
}

impl AdminCommand {
    fn common(&self) -> &Common {
        match self {
            AdminCommand::CreateAdmin { common, .. }
            | AdminCommand::CreateService { common, .. }
            | AdminCommand::ListUsers { common }
            | AdminCommand::RevokeKeys { common, .. }
            | AdminCommand::DeleteUser { common, .. }
            | AdminCommand::ResetCode { common, .. }
            | AdminCommand::Suspend { common, .. }
            | AdminCommand::SetRole { common, .. }
            | AdminCommand::Unsuspend { common, .. }
            | AdminCommand::Import { common, .. }
            | AdminCommand::Backup { common, .. } => common,
        }
    }

    /// The `--config` file the command was given.
    pub(crate) fn config(&self) -> &Option<PathBuf> {
        &self.common().config.config
    }
}

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
        } => import(services, &from, dry_run, keep_keys, json).await?,
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

/// `admin import`: refusals as they come (text lines, or the elements of the JSON document's
/// `refusals`), then the counts.
async fn import(
    services: &Services,
    from: &str,
    dry_run: bool,
    keep_keys: bool,
    json: bool,
) -> anyhow::Result<()> {
    use crate::service::import::{Importer, Location, Options, SourceError};
    let source = Location::parse(from);
    let importer = Importer::new(
        services.store.clone(),
        services.clock.clone(),
        services.accounts.hasher(),
        services.keys.clone(),
    );
    let mut sink = ImportOutput::new(json);
    if json {
        sink.write("{\n  \"refusals\": [")?;
    }
    let report = match importer
        .run(&source, Options { dry_run, keep_keys }, &mut sink)
        .await
    {
        Ok(report) => report,
        Err(e) => {
            sink.bar.finish_and_clear();
            if json {
                // Keep standard output a JSON document even when the import stops half-way.
                let _ = sink.write("\n  ],\n  \"error\": true\n}\n");
            }
            return Err(match e.downcast::<SourceError>() {
                Ok(usage) => UsageError(usage.0).into(),
                Err(e) => e,
            });
        }
    };
    sink.bar.finish_and_clear();
    if json {
        let tail = serde_json::to_string_pretty(&report)?;
        let tail = tail.strip_prefix('{').unwrap_or(&tail);
        sink.write(if sink.any { "\n  ]," } else { "]," })?;
        sink.write(tail)?;
        return sink.write("\n");
    }
    let a = &report.accounts;
    sink.write(&format!(
        "accounts: {} imported, {} already present ({} with the hash updated), {} refused, of {} read ({:.1} s)\n",
        a.imported, a.already_present, a.hash_updated, a.refused, a.read, report.seconds
    ))?;
    if let Some(k) = &report.keys {
        let revoked = k
            .revoked
            .map_or_else(|| "not checked in a dry run".to_owned(), |n| n.to_string());
        sink.write(&format!(
            "keys: {} imported, {} already present, {} skipped (owner not imported or suspended), {} unreadable, of {} live read; revoked as gone from the source: {revoked}\n",
            k.imported, k.already_present, k.skipped, k.refused, k.read
        ))?;
    }
    if report.dry_run {
        sink.write("dry run: nothing was written\n")?;
    }
    Ok(())
}

/// Where `admin import` writes: standard output for results, a progress bar on standard error
/// when that is a terminal.
struct ImportOutput {
    json: bool,
    /// Whether a refusal was written (JSON: the commas).
    any: bool,
    bar: indicatif::ProgressBar,
}

impl ImportOutput {
    fn new(json: bool) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        Self {
            json,
            any: false,
            bar,
        }
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        self.bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(stdout_error)
        })
    }
}

impl crate::service::import::ImportSink for ImportOutput {
    fn refused(&mut self, refused: crate::service::import::Refused) -> anyhow::Result<()> {
        let text = if self.json {
            format!(
                "{}\n    {}",
                if self.any { "," } else { "" },
                serde_json::to_string(&refused)?
            )
        } else {
            match &refused.name {
                Some(name) => format!("refused: {} ({name:?}): {}\n", refused.at, refused.reason),
                None => format!("refused: {}: {}\n", refused.at, refused.reason),
            }
        };
        self.any = true;
        self.write(&text)
    }

    fn phase(&mut self, phase: crate::service::import::Phase, total: Option<u64>) {
        use crate::service::import::Phase;
        let template = match phase {
            Phase::File => "{wide_bar} {percent}% {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
            Phase::Accounts => "accounts {wide_bar} {percent}% {pos}/{len} ({per_sec}, {eta} left)",
            Phase::Keys => "keys {wide_bar} {percent}% {pos}/{len} ({per_sec}, {eta} left)",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            self.bar.set_style(style);
        }
        self.bar.set_position(0);
        self.bar.set_length(total.unwrap_or(0));
    }

    fn progress(&mut self, position: u64) {
        self.bar.set_position(position);
    }
}

fn table_row(u: &User) -> String {
    format!(
        "{:<36}  {:<20}  {:<7}  {}\n",
        u.id.to_string(),
        u.name.as_str(),
        u.role.as_str(),
        u.created
    )
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot write to standard output: {e}")
}

/// One line on standard output; an error (a closed pipe) is the command's failure, not a panic.
fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// One JSON document, pretty-printed, on standard output.
fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    print_line(&serde_json::to_string_pretty(value)?)
}

/// What a command did to one user, as `--json` prints it: `{"user": User}` and what applies.
#[derive(Serialize)]
struct Outcome<'a> {
    user: &'a User,
    /// `create-service`: the key, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// `revoke-keys`: how many keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<usize>,
    /// `delete-user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    /// `suspend`: the new suspension; `unsuspend`: the one lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    suspension: Option<&'a Suspension>,
    /// `reset-code`: the code, shown once, and when it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<Timestamp>,
}

impl<'a> Outcome<'a> {
    fn of(user: &'a User) -> Self {
        Self {
            user,
            key: None,
            revoked: None,
            deleted: None,
            suspension: None,
            code: None,
            expires: None,
        }
    }
}

/// A service error in words for the operator.
fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such user"),
        ServiceError::UsernameTaken => anyhow::anyhow!("that username is already taken"),
        ServiceError::NoPassword => anyhow::anyhow!("refused: a service account has no password to reset"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_has_examples_in_its_help() {
        let mut cli = super::super::Cli::command();
        let help = cli.render_long_help().to_string();
        assert!(
            help.contains("Exit codes") && help.contains("Examples:"),
            "{help}"
        );
        let serve = cli
            .find_subcommand_mut("serve")
            .map(|c| c.render_long_help().to_string());
        assert!(serve.is_some_and(|h| h.contains("Examples:") && h.contains("--check-config")));
        let Some(admin) = cli.find_subcommand_mut("admin") else {
            panic!("no admin command")
        };
        let names: Vec<String> = admin.get_subcommands().map(|c| c.get_name().to_owned()).collect();
        assert!(names.len() >= 9, "{names:?}");
        for name in names {
            let Some(sub) = admin.find_subcommand_mut(&name) else {
                panic!("{name}")
            };
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Example"), "admin {name} --help:\n{help}");
            assert!(
                help.contains("--json") && help.contains("--config"),
                "admin {name} --help:\n{help}"
            );
        }
    }

    #[test]
    fn table_columns_line_up_whatever_the_name() {
        let row = |name: &str, role| {
            table_row(&User {
                id: uuid::Uuid::nil(),
                name: crate::domain::Username::parse(name).unwrap(),
                role,
                created: Timestamp::from_millis(0),
            })
        };
        let a = row("bob", Role::User);
        let b = row("a_name_of_twenty_chr", Role::Service);
        assert_eq!(a.find("1970"), b.find("1970"));
        assert_eq!(a.find("USER"), b.find("SERVICE"));
    }
}
