//! [`super::Store`] on an embedded SQLite database: the Rust both dialects share in `sql` (the
//! folder `store/sql/`, compiled here), and here what SQLite does its own way, each in a file
//! named after its concern (`throttles.rs`, …; `dialect.rs`: the locks it needs none of).
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction that returned is on disk
//! before the client hears about it (a kill -9 or a power cut loses no acknowledged write).
//! Concurrency: one writer connection (SQLite has one writer anyway; queueing in the pool is
//! cheaper than `SQLITE_BUSY` retries) and a few reader connections, which WAL lets run alongside.

mod activity;
mod dialect;
mod drills;
mod health;
mod housekeeping;
mod imports;
mod key_reader;
mod keys;
mod secrets;
// The Rust both dialects run, written once (see `store/sql/mod.rs`): loaded by both on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;
mod throttles;
mod tickets;
mod write;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use self::key_reader::KeyReader;
use self::write::{max_page_count_sql, WriteState, WriteTx};
use super::{StoreError, StoreResult};

/// The store and the connection the shared Rust (`store/sql/`) runs on here.
type Store = SqliteStore;
type Conn = SqliteConnection;

/// How long a statement waits for a lock held by another process (e.g. the admin CLI).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Whether writes fail, and the fault drill's page limit (see `write`).
    writes: Arc<WriteState>,
    /// The key lookup of the validation path, on the caller's thread (see `key_reader`).
    keys: KeyReader,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed, owner-only) and migrates the
    /// database.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        create_owner_only(path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        ensure_wal(&options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        let writes = Arc::new(WriteState::default());
        let state = writes.clone();
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .test_before_acquire(false)
            // The fault drill's page limit outlives the connection (a failed rollback closes it).
            .after_connect(move |conn, _| {
                let limit = state.page_limit();
                Box::pin(async move {
                    if limit.is_some() {
                        sqlx::query(&max_page_count_sql(limit)).execute(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT)
            // sqlx pings a connection before lending it by default: for SQLite, an in-process
            // file, that is only a second round trip to the connection's thread per query.
            .test_before_acquire(false)
            // query_only rather than a read-only open: a read-only connection cannot help recover or
            // checkpoint the WAL and may then answer SQLITE_BUSY at once instead of waiting.
            .connect_with(options.pragma("query_only", "ON"))
            .await?;
        let keys = KeyReader::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        Ok(Self {
            read,
            write,
            writes,
            keys,
        })
    }
}

/// Creates the database's directory (0700) and file (0600) when they do not exist yet, so that
/// no other user of the machine can read the hashes; SQLite gives the `-wal` and `-shm` files
/// the main file's mode. Existing ones are left as they are, with a warning when the file is
/// open to other users.
#[cfg(unix)]
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create database directory {}: {e}", dir.display()))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)
                .map_err(|e| anyhow::anyhow!("cannot read database file {}: {e}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the database file is open to other users of this machine (chmod 600 it, and 700 its directory)"
                );
            }
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot create database file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(not(unix))]
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create database directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Where reads go: the reader connections (WAL lets them run beside the writer).
    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Where a write of one statement goes, outside a transaction: the writer connection.
    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// A write transaction on the writer connection (see [`WriteTx`]).
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        WriteTx::begin(&self.write, &self.writes).await
    }

    /// Runs a write and notes its outcome: an unavailable database marks writes as failing
    /// (`GET /health` answers 503 until a probe write succeeds).
    async fn writing<T>(&self, write: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.writes.health.writing(write).await
    }

    /// The probe write (see [`write::PROBE`]).
    async fn probe_write(&self) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            for sql in write::PROBE {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            self.writes.health.recovered();
            Ok(())
        })
        .await
    }
}

/// Puts the database in WAL mode once. WAL is a property of the file; setting it again on every
/// connection (sqlx's `journal_mode` option) takes a lock that `busy_timeout` does not wait for,
/// so a connection opened next to another process (the admin command line next to the server)
/// could fail at once with "database is locked".
async fn ensure_wal(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
    let mut conn = SqliteConnection::connect_with(options).await?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(&mut conn)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(sqlx::Error::Protocol(format!("journal_mode is {mode}, not wal")));
        }
    }
    conn.close().await
}
