//! The write path: transactions on the one writer connection, and whether writes work.
//!
//! A write transaction is [`WriteTx`], our own guard around the write pool's connection, rather
//! than sqlx's `Transaction`. sqlx counts the transactions it opened on a connection and
//! refuses to open another while that count is above zero; when a `COMMIT` failed on a full
//! disk, SQLite had already rolled the transaction back by itself, so sqlx's `ROLLBACK` failed
//! too and its count stayed at 1: every later write on the connection failed ("attempted to
//! call begin_with at non-zero transaction depth"), for good, even after space came back. The
//! guard runs `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK` itself and keeps no count: after any
//! failure it rolls back, and if even that fails (other than because SQLite already did), it
//! closes the connection so that the pool opens a fresh one.
//!
//! [`WriteState`] remembers whether writes fail as unavailable (full disk, I/O error, read-only
//! file, lock timeout), so that `GET /health` can say so ([`WriteHealth`], shared with the other
//! stores); while they do, a probe write ([`PROBE`]) decides when they work again.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::store::error::is_unavailable;
use crate::store::health::WriteHealth;
use crate::store::StoreResult;
use crate::telemetry::Sampled;

/// The probe write: a row inserted and deleted in one committed transaction, leaving nothing
/// behind. Its 16 KiB need about as many new pages (and WAL frames) as a sign-up, the largest
/// common write (rows and index entries in five tables): with a single page's worth, the probe
/// fitted where sign-ups no longer did, and `GET /health` said 200 while they were refused.
pub(super) const PROBE: [&str; 2] = [
    "INSERT OR REPLACE INTO heartbeat (id, filler) VALUES (1, zeroblob(16384))",
    "DELETE FROM heartbeat",
];

/// What the write path shares with the pool's `after_connect` and with `GET /health`.
#[derive(Debug, Default)]
pub(super) struct WriteState {
    /// Whether writes fail.
    pub(super) health: WriteHealth,
    /// `PRAGMA max_page_count` for the writer connection, 0 for none (a fault drill).
    page_limit: AtomicU64,
}

impl WriteState {
    pub(super) fn page_limit(&self) -> Option<u64> {
        match self.page_limit.load(Ordering::Acquire) {
            0 => None,
            pages => Some(pages),
        }
    }

    pub(super) fn set_page_limit(&self, pages: Option<u64>) {
        self.page_limit.store(pages.unwrap_or(0), Ordering::Release);
    }
}

/// The statement that applies a page limit (`None`: SQLite's largest).
pub(super) fn max_page_count_sql(pages: Option<u64>) -> String {
    format!("PRAGMA max_page_count = {}", pages.unwrap_or(4_294_967_294))
}

/// A write transaction (`BEGIN IMMEDIATE`) on the writer connection. It derefs to the
/// connection, so statements run on `&mut *tx`. Only [`WriteTx::commit`] keeps its writes; on
/// drop without a commit it rolls back on a task of its own (a destructor cannot wait), which
/// holds the connection until the connection is clean again, so the next writer waits for it.
pub(super) struct WriteTx {
    /// Taken only by `commit` (which consumes the guard) and by `drop`.
    conn: Option<PoolConnection<Sqlite>>,
    state: Arc<WriteState>,
}

impl WriteTx {
    /// Takes the write lock at once (`BEGIN IMMEDIATE`), so that a writer in another process
    /// (the admin command line) makes it wait for `busy_timeout` instead of failing when a read
    /// inside it would have to become a write.
    pub(super) async fn begin(pool: &SqlitePool, state: &Arc<WriteState>) -> StoreResult<Self> {
        let begun = async {
            let mut conn = pool.acquire().await?;
            if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
                clean_up(conn).await;
                return Err(e.into());
            }
            Ok(conn)
        }
        .await;
        if begun.is_err() {
            state.health.note(&begun);
        }
        Ok(Self {
            conn: Some(begun?),
            state: state.clone(),
        })
    }

    /// Commits; on failure the transaction is rolled back (if SQLite has not done so already)
    /// and the connection left clean, before the error is returned.
    pub(super) async fn commit(mut self) -> StoreResult<()> {
        let Some(mut conn) = self.conn.take() else {
            return Err(sqlx::Error::Protocol("write transaction already ended".into()).into());
        };
        match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Every write says it while the disk is full: once a second, with a count.
                static SAMPLED: Sampled = Sampled::new(std::time::Duration::from_secs(1));
                if let Some(suppressed) = SAMPLED.admit() {
                    tracing::warn!(error = %e, suppressed, "commit failed; rolling back");
                }
                clean_up(conn).await;
                if is_unavailable(&e) {
                    self.state.health.failed(&e);
                }
                Err(e.into())
            }
        }
    }
}

impl WriteTx {
    /// Rolls back (a dry run), waiting until the connection is clean again.
    pub(super) async fn rollback(mut self) {
        if let Some(conn) = self.conn.take() {
            clean_up(conn).await;
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.conn {
            Some(conn) => conn,
            // `conn` is gone only once the guard is consumed (commit) or dropped.
            None => unreachable!("write transaction used after it ended"),
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("write transaction used after it ended"),
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(clean_up(conn));
            }
            // No runtime to roll back on (the process is stopping): drop the connection out of
            // the pool; closing it makes SQLite roll the transaction back.
            Err(_) => drop(conn.detach()),
        }
    }
}

/// Rolls back whatever the connection may still have open. "No transaction is active" is
/// fine (SQLite rolls back by itself after some errors, a full disk among them); any other
/// failure closes the connection, and the pool opens a fresh one for the next writer.
async fn clean_up(mut conn: PoolConnection<Sqlite>) {
    match sqlx::query("ROLLBACK").execute(&mut *conn).await {
        Ok(_) => {}
        Err(e) if is_no_transaction(&e) => {}
        Err(e) => {
            tracing::warn!(error = %e, "rollback failed; closing the write connection");
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the write connection");
            }
        }
    }
}

fn is_no_transaction(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains("no transaction is active"))
}
