//! `killbill-auth admin backup --to FILE`: a consistent copy of the SQLite database, made while
//! the service runs.
//!
//! SQLite's `VACUUM INTO` writes the database as one read transaction sees it: in WAL mode that
//! snapshot never blocks the service's writer, and the writer never disturbs it, so the copy is
//! one moment of the database whatever is committed meanwhile. The copy is compacted (no free
//! pages) and holds no WAL of its own. It is written into a file created here first, owner-only
//! and exclusively (an existing file is never overwritten, and the hashes in it are never
//! readable by others, not even for a moment), then synced and checked.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::UsageError;
use crate::config::{redact_url, DatabaseTarget, Settings};

/// How long the copy waits for a lock held by another process (the service's writer holds the
/// write lock only; a WAL read needs none, except while the WAL is recovered or reset).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What `admin backup` made.
#[derive(Debug, Serialize)]
pub(crate) struct BackupReport {
    /// The database copied.
    pub database: String,
    /// The copy.
    pub backup: String,
    /// The copy's size.
    pub bytes: u64,
    /// Accounts in the copy (service accounts included).
    pub users: i64,
}

pub(crate) async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<BackupReport> {
    let source = match settings.database_target()? {
        DatabaseTarget::Sqlite(path) => path,
        DatabaseTarget::Postgres(_) => {
            return Err(UsageError(format!(
                "admin backup copies the SQLite database, and this configuration uses PostgreSQL ({}); \
                 back it up with pg_dump into an owner-only file (it holds every password hash), e.g. \
                 umask 077; pg_dump --format=custom --file=killbill-auth.dump \"$DATABASE_URL\" (restore \
                 with pg_restore; see README.md, Backups)",
                redact_url(&settings.database.url)
            ))
            .into())
        }
    };
    if !source.is_file() {
        anyhow::bail!("no database at {} (database.url)", source.display());
    }
    let Some(target) = to.to_str() else {
        return Err(UsageError(format!("--to: the path must be valid UTF-8: {}", to.display())).into());
    };
    create_owner_only(to)?;
    match copy(&source, to, target).await {
        Ok(report) => Ok(report),
        Err(e) => {
            // Nothing half-made is left behind under the name asked for.
            let _ = std::fs::remove_file(to);
            Err(e)
        }
    }
}

async fn copy(source: &Path, to: &Path, target: &str) -> anyhow::Result<BackupReport> {
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(source)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        // Not `query_only` (SQLite refuses VACUUM INTO there), but this connection writes
        // nothing to the service's database: VACUUM INTO only reads it.
        .disable_statement_logging();
    let mut conn = options
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", source.display()))?;
    let result = sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await;
    let _ = conn.close().await;
    result.map_err(|e| anyhow::anyhow!("cannot copy {} to {}: {e}", source.display(), to.display()))?;

    // On disk before we say so: the file, then its directory entry.
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot sync {}: {e}", to.display()))?;
    sync_parent(to)?;

    // Checked as a restore would open it, without writing to it.
    let check = SqliteConnectOptions::from_str("sqlite:")?
        .filename(to)
        .read_only(true)
        .disable_statement_logging();
    let mut conn = check
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the copy {}: {e}", to.display()))?;
    let verdict: anyhow::Result<(String, i64)> = async {
        let quick: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut conn)
            .await?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut conn)
            .await?;
        Ok((quick, users))
    }
    .await;
    let _ = conn.close().await;
    let (quick, users) =
        verdict.map_err(|e| anyhow::anyhow!("cannot check the copy {}: {e}", to.display()))?;
    anyhow::ensure!(
        quick == "ok",
        "the copy {} fails PRAGMA quick_check: {quick}",
        to.display()
    );
    let bytes = std::fs::metadata(to)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", to.display()))?
        .len();
    Ok(BackupReport {
        database: source.display().to_string(),
        backup: to.display().to_string(),
        bytes,
        users,
    })
}

/// Creates the empty target file, owner-only, refusing one that exists (SQLite's `VACUUM INTO`
/// writes into an empty file and keeps its mode).
fn create_owner_only(to: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(anyhow::anyhow!(
            "{} exists: refusing to overwrite it (choose a new name)",
            to.display()
        )),
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", to.display())),
    }
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot sync directory {}: {e}", dir.display()))
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}
