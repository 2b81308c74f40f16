//! The admin commands' arguments and help, as clap reads them: `killbill-auth admin --help` and
//! each command's `--help`, with examples.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::ConfigArg;
use crate::domain::Timestamp;

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
    pub(super) fn common(&self) -> &Common {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_has_examples_in_its_help() {
        let mut cli = crate::cli::Cli::command();
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
}
