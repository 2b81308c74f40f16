//! [`super::Store`] on PostgreSQL, for several instances sharing one database: the Rust both
//! dialects share in `sql` (the folder `store/sql/`, compiled here), and here what PostgreSQL
//! does its own way, each in a file named after its concern (`throttles.rs`, …; `dialect.rs`:
//! its locks and the feed's append).
//!
//! The same rows, rules and answers as the SQLite store (`rows` holds what both decode; times
//! are millisecond `bigint`s), with one difference that matters: SQLite has one writer, and
//! every write transaction there starts with the write lock (`BEGIN IMMEDIATE`), so whatever a
//! transaction reads stays true until it commits. Here transactions run side by side, on this
//! instance's pool and on other instances, at READ COMMITTED; where a decision depends on what
//! was read, the transaction first takes a lock that every competing transaction takes too:
//!
//! - `count_attempt` takes a transaction-level advisory lock per counter
//!   (`pg_advisory_xact_lock`, a 64-bit key derived from the scope and subject, see
//!   [`counter_lock`]) before reading the counter's attempts, in ascending key order so that two
//!   attempts sharing several counters cannot deadlock. Attempts on one counter thus queue, and
//!   each reads (READ COMMITTED: a fresh snapshot per statement) every attempt committed before
//!   it: the limit is exact across connections and instances.
//! - `issue_key` (the per-user limit and eviction), `change_password`, `revoke_user_keys` and
//!   `delete_user` first lock the user's row (`SELECT … FOR UPDATE`): concurrent sign-ins of one
//!   user queue, each sees the keys the previous one left, and no key slips in between a
//!   password change (or a deletion) reading the live keys and revoking them.
//! - Revoking a key is `UPDATE … WHERE revoked_ms IS NULL`: of two concurrent revocations of a
//!   key, the second waits for the first, re-checks the condition and skips the row, so each
//!   revocation is recorded once (one `key_revoked` row in `events`, one `revocation_feed` row).
//!
//! Errors go through the one mapping ([`StoreError`]'s `From<sqlx::Error>`): lost connections,
//! a full disk, too many connections, a shutting-down server, serialization failures and
//! deadlocks are `Unavailable` (503 with `Retry-After`).

mod activity;
mod connect;
mod dialect;
mod health;
mod housekeeping;
mod imports;
mod keys;
pub mod listen;
pub(crate) mod read_only;
mod secrets;
// The Rust both dialects run, written once (see `store/sql/mod.rs`): loaded by both on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;
#[cfg(test)]
pub(crate) mod testing;
mod throttles;
mod tickets;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::health::WriteHealth;
use super::StoreResult;

/// The store and the connection the shared Rust (`store/sql/`) runs on here.
type Store = PgStore;
type Conn = PgConnection;

pub use self::dialect::FEED_LOCK;
pub use self::housekeeping::HOUSEKEEPING_LOCK;

/// How long a request waits for a pooled connection before it is answered 503 (as long as SQLite's
/// busy timeout). A burst of sign-ins of one user queues on that user's row lock while holding
/// pooled connections, and the others wait for the pool: 2 s answered such a burst (72 sign-ins at
/// once on 2 cores) with some 503s. While PostgreSQL is unreachable every request that needs it
/// waits this long before its 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The probe write (see `GET /health`): a 16 KiB row inserted and deleted in one committed
/// transaction, about the room a sign-up needs (the column is stored uncompressed, see the
/// migration).
const PROBE: [&str; 2] = [
    "INSERT INTO heartbeat (id, filler) VALUES (1, decode(repeat('00', 16384), 'hex')) \
     ON CONFLICT (id) DO UPDATE SET filler = excluded.filler",
    "DELETE FROM heartbeat",
];

pub struct PgStore {
    pool: PgPool,
    writes: WriteHealth,
}

impl PgStore {
    /// Connects (at most `max_connections` pooled connections) and applies the migrations.
    /// sqlx's migrator holds a session advisory lock while it works, so instances starting
    /// together on an empty database apply them once, the others waiting. Errors never carry
    /// the URL (it may hold a password).
    pub async fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("invalid PostgreSQL database url: {e}"))?
            .application_name("killbill-auth");
        connect::first_connection(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each query (sqlx's default): a round trip per query (a sign-in
            // makes about 25) to catch a connection that died. One that did (PostgreSQL
            // restarted) fails its query with a connection error, answered 503, and the pool
            // drops it; idle connections are recycled anyway.
            .test_before_acquire(false)
            // After a read-only error, connections made before it are not handed out again
            // (`read_only`): they may be on a demoted primary.
            .before_acquire(|_, meta| Box::pin(async move { Ok(read_only::keep(meta.age)) }))
            .idle_timeout(Duration::from_secs(300))
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("cannot migrate the PostgreSQL database: {e}"))?;
        Ok(Self {
            pool,
            writes: WriteHealth::default(),
        })
    }

    /// Where reads go: the pool (any connection).
    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// Where a write of one statement goes, outside a transaction: the pool.
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction (READ COMMITTED: what it reads can change before it commits unless it
    /// locks it, see the module's notes).
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Runs a write and notes its outcome (see [`WriteHealth`]).
    async fn writing<T>(&self, write: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.writes.writing(write).await
    }

    async fn probe_write(&self) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            for sql in PROBE {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            self.writes.recovered();
            Ok(())
        })
        .await
    }
}
