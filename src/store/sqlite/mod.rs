//! [`Store`] on an embedded SQLite database.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction that returned is on disk
//! before the client hears about it (a kill -9 or a power cut loses no acknowledged write).
//! Concurrency: one writer connection (SQLite has one writer anyway; queueing in the pool is
//! cheaper than `SQLITE_BUSY` retries) and a few reader connections, which WAL lets run alongside.

mod import;
mod key_reader;
mod reset_codes;
mod suspensions;

mod service_accounts;
mod stream;
mod tickets;
mod write;

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use uuid::Uuid;

use self::key_reader::KeyReader;
use self::suspensions::{is_last_admin, suspension_in_force};
use self::write::{max_page_count_sql, WriteState, WriteTx};
use super::rows::{
    expired_keys, expiry_bounds, merge_counts, shared_activity, ts, FeedRow, KeyRow, LiveKeyRow, LoginRow,
    RevokedRow, UserRow, KEY_COLUMNS, LIVE_KEY_COLUMNS, LOGIN_SELECT, USER_COLUMNS,
};
use super::{
    Admission, Cause, CountedAttempt, ImportKey, KeyOutcome, KeyRecord, KeyUsage, NewKey, PruneCutoffs,
    RevokedKey, Store, StoreError, StoreResult, UserOutcome, VerifiedHash, ACCOUNT_DELETED,
};
use crate::domain::import::{ImportUser, Run};
use crate::domain::key_lifecycle::KeyUse;
use crate::domain::{ActivityDelta, Event, NewEvent, Role, SharedActivity, StoredHash, Suspension};
use crate::domain::{
    Counter, FailureLog, KeyDigest, KeyPolicy, RevocationReason, ThrottlePolicy, Timestamp, User,
};
use crate::domain::{FeedBounds, FeedEntry};

/// How long a statement waits for a lock held by another process (e.g. the admin CLI).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Expiry candidates: live keys that may be past their deadline (?1 the bound), each statement
/// answered by an index rather than a scan of every live key
/// (`housekeeping_reads_indexes_not_tables`): by lifetime (`keys_live`: created at or before
/// now − lifetime) and, when an idle timeout is set, by idleness (`keys_live_by_last_use`: last
/// used, else created, at or before now − idle timeout). Which of them expired, and when, is
/// [`KeyPolicy`]'s to say (`rows::expired_keys`); [`EXPIRE`] marks each. Keys of service
/// accounts last until revoked (`Role::keys_last_until_revoked`) and are never candidates: each
/// candidate's owner is looked up by primary key (`CROSS JOIN` keeps the keys index as the outer
/// loop in SQLite, rather than a scan of `users`).
const EXPIRY_CANDIDATES_BY_LIFETIME: &str = "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND k.expires_ms IS NULL AND k.created_ms <= ?1";
const EXPIRY_CANDIDATES_BY_IDLENESS: &str = "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND coalesce(k.last_used_ms, k.created_ms) <= ?1";
/// Keys with a deadline of their own (imported from the original back end) past it at ?1
/// (`keys_live_by_deadline`).
const EXPIRY_CANDIDATES_BY_DEADLINE: &str = "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND k.expires_ms IS NOT NULL AND k.expires_ms <= ?1";
/// Marks one key expired at its deadline (?1), if it is still live.
const EXPIRE: &str =
    "UPDATE keys SET revoke_reason = 'expired', revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL";
/// Pruning by age (?1 the cutoff): revocation feed, throttles, known networks, revoked keys,
/// shared request counts and networks.
const PRUNE: [&str; 7] = [
    // The feed loses a prefix only, up to its first entry young enough to keep, and never its
    // newest (`Store::feed_bounds`); entries carry the time of the revocation they record, which
    // is not always in `seq` order (an expired key is revoked as of its deadline). `+at_ms` keeps
    // SQLite off the index by age: walking the primary key from the oldest entry, it reads the
    // entries it deletes and stops at the first one it keeps (`housekeeping_reads_indexes_not_tables`).
    "DELETE FROM revocation_feed WHERE seq < coalesce(\
     (SELECT seq FROM revocation_feed WHERE +at_ms >= ?1 ORDER BY seq LIMIT 1), \
     (SELECT max(seq) FROM revocation_feed))",
    "DELETE FROM throttle_attempts WHERE at_ms < ?1",
    "DELETE FROM known_networks WHERE last_success_ms < ?1",
    "DELETE FROM keys WHERE revoked_ms < ?1",
    "DELETE FROM key_request_counts WHERE window_start_ms < ?1",
    "DELETE FROM key_networks WHERE last_seen_ms < ?1",
    "DELETE FROM events WHERE at_ms < ?1",
];

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

/// A new account's row: a taken name (regardless of case) is refused by the unique constraint.
async fn insert_user(conn: &mut SqliteConnection, user: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, username, username_canonical, role, created_ms) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user.id)
    .bind(user.name.as_str())
    .bind(user.name.canonical())
    .bind(user.role.as_str())
    .bind(user.created.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Checks, inside a write transaction, that the account's password hash is still the one the
/// caller verified, and replaces it with `password.upgrade` if there is one (a hash made here:
/// no longer legacy). [`StoreError::Gone`] when the account is, [`StoreError::PasswordChanged`]
/// when the hash changed since it was read.
async fn replace_verified_hash(
    tx: &mut SqliteConnection,
    user_id: Uuid,
    password: &VerifiedHash<'_>,
    at: Timestamp,
) -> StoreResult<()> {
    let stored: Option<String> = sqlx::query_scalar("SELECT phc FROM password_hashes WHERE user_id = ?")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    match stored {
        None => return Err(StoreError::Gone),
        Some(stored) if stored != password.verified => return Err(StoreError::PasswordChanged),
        Some(_) => {}
    }
    if let Some(phc) = password.upgrade {
        set_native_hash(tx, user_id, phc, at).await?;
    }
    Ok(())
}

/// Replaces the account's password hash with one made here (no longer legacy).
async fn set_native_hash(
    tx: &mut SqliteConnection,
    user_id: Uuid,
    phc: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query("UPDATE password_hashes SET phc = ?, updated_ms = ?, legacy = 0 WHERE user_id = ?")
        .bind(phc)
        .bind(at.as_millis())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn insert_key(conn: &mut SqliteConnection, key: &NewKey) -> StoreResult<()> {
    let ip = key.created_ip.map(|ip| ip.to_string());
    sqlx::query("INSERT INTO keys (id, user_id, digest, created_ms, created_ip) VALUES (?, ?, ?, ?, ?)")
        .bind(key.id)
        .bind(key.user_id)
        .bind(&key.digest.0[..])
        .bind(key.created.as_millis())
        .bind(&ip)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks live keys revoked (only those still live) and records one event each.
async fn revoke_where(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    key_ids: Option<&[Uuid]>,
    reason: RevocationReason,
    cause: &Cause<'_>,
) -> StoreResult<Vec<RevokedKey>> {
    let (at, network) = (cause.at, cause.network);
    let rows: Vec<RevokedRow> = match key_ids {
        None => {
            sqlx::query_as(
                "UPDATE keys SET revoked_ms = ?, revoke_reason = ?, revoked_network = ? \
             WHERE user_id = ? AND revoked_ms IS NULL RETURNING id, digest",
            )
            .bind(at.as_millis())
            .bind(reason.as_str())
            .bind(network)
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?
        }
        Some(ids) => {
            let mut rows = Vec::with_capacity(ids.len());
            for id in ids {
                let row: Option<RevokedRow> = sqlx::query_as(
                    "UPDATE keys SET revoked_ms = ?, revoke_reason = ?, revoked_network = ? \
                     WHERE id = ? AND user_id = ? AND revoked_ms IS NULL RETURNING id, digest",
                )
                .bind(at.as_millis())
                .bind(reason.as_str())
                .bind(network)
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?;
                rows.extend(row);
            }
            rows
        }
    };
    let mut revoked = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.id;
        insert_event(
            &mut *conn,
            &NewEvent::key_revoked(user_id, id, reason, at, network).by(cause.actor),
        )
        .await?;
        revoked.push(row.revoked(reason)?);
    }
    Ok(revoked)
}

/// Appends revoked or deleted keys of one user to the revocation feed: other processes drop them
/// from their caches, and `GET /revocations` streams them. One writer at a time, so `seq` order is
/// commit order. `reason` overrides the keys' own (`account_deleted`).
async fn insert_feed(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    keys: &[RevokedKey],
    reason: Option<&str>,
    at: Timestamp,
) -> StoreResult<()> {
    for key in keys {
        sqlx::query(
            "INSERT INTO revocation_feed (digest, at_ms, key_id, user_id, reason) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.digest.0[..])
        .bind(at.as_millis())
        .bind(key.id)
        .bind(user_id)
        .bind(reason.unwrap_or(key.reason.as_str()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records a security event in the caller's transaction.
async fn insert_event(conn: &mut SqliteConnection, event: &NewEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (id, at_ms, kind, user_id, actor_id, network, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.id)
    .bind(event.at.as_millis())
    .bind(event.kind.as_str())
    .bind(event.user_id)
    .bind(event.actor_id)
    .bind(&event.network)
    .bind(event.detail.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn check_writes(&self) -> StoreResult<()> {
        if self.writes.health.failing() {
            self.probe_write().await
        } else {
            Ok(())
        }
    }

    fn writes_failing(&self) -> bool {
        self.writes.health.failing()
    }

    async fn set_size_limit(&self, pages: Option<u64>) -> StoreResult<()> {
        self.writes.set_page_limit(pages);
        let mut conn = self.write.acquire().await?;
        sqlx::query(&max_page_count_sql(pages))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.keys.close();
        self.read.close().await;
        self.write.close().await;
    }

    async fn create_user(
        &self,
        user: &User,
        phc: &str,
        key: Option<&NewKey>,
        event: &NewEvent,
    ) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            insert_user(&mut tx, user).await?;
            sqlx::query("INSERT INTO password_hashes (user_id, phc, updated_ms) VALUES (?, ?, ?)")
                .bind(user.id)
                .bind(phc)
                .bind(user.created.as_millis())
                .execute(&mut *tx)
                .await?;
            if let Some(key) = key {
                insert_key(&mut tx, key).await?;
            }
            insert_event(&mut tx, event).await?;
            tx.commit().await
        })
        .await
    }

    async fn list_users(&self, after: Option<(Timestamp, Uuid)>, limit: u32) -> StoreResult<Vec<User>> {
        let (after_ms, after_id) = after.map_or((i64::MIN, Uuid::nil()), |(t, id)| (t.as_millis(), id));
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE (created_ms, id) > (?, ?) ORDER BY created_ms, id LIMIT ?"
        ))
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn remember_network(&self, user_id: Uuid, network: &str, at: Timestamp) -> StoreResult<()> {
        self.writing(async {
            sqlx::query(
                "INSERT INTO known_networks (user_id, network, last_success_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id, network) DO UPDATE SET last_success_ms = max(last_success_ms, excluded.last_success_ms)",
            )
            .bind(user_id)
            .bind(network)
            .bind(at.as_millis())
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    async fn is_known_network(
        &self,
        canonical_name: &str,
        network: &str,
        since: Timestamp,
    ) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM users u JOIN known_networks k ON k.user_id = u.id \
             WHERE u.username_canonical = ? AND k.network = ? AND k.last_success_ms >= ?",
        )
        .bind(canonical_name)
        .bind(network)
        .bind(since.as_millis())
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    async fn share_activity(
        &self,
        deltas: &[(Uuid, ActivityDelta)],
        counts_since: Timestamp,
        networks_since: Timestamp,
    ) -> StoreResult<Vec<(Uuid, SharedActivity)>> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        self.writing(async {
            let mut tx = self.begin_write().await?;
            for (key_id, delta) in deltas {
                for (window, n, served) in merge_counts(delta) {
                    sqlx::query(
                        "INSERT INTO key_request_counts (key_id, window_start_ms, count, served) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (key_id, window_start_ms) DO UPDATE \
                         SET count = count + excluded.count, served = served + excluded.served",
                    )
                    .bind(key_id)
                    .bind(window)
                    .bind(n)
                    .bind(served)
                    .execute(&mut *tx)
                    .await?;
                }
                for (network, seen) in &delta.networks {
                    sqlx::query(
                        "INSERT INTO key_networks (key_id, network, last_seen_ms) VALUES (?, ?, ?) \
                         ON CONFLICT (key_id, network) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
                    )
                    .bind(key_id)
                    .bind(network.to_string())
                    .bind(seen)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let mut totals = Vec::with_capacity(deltas.len());
            for (key_id, _) in deltas {
                let counts: Vec<(i64, i64, i64)> = sqlx::query_as(
                    "SELECT window_start_ms, count, served FROM key_request_counts WHERE key_id = ? AND window_start_ms >= ?",
                )
                .bind(key_id)
                .bind(counts_since.as_millis())
                .fetch_all(&mut *tx)
                .await?;
                let networks: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT network, last_seen_ms FROM key_networks WHERE key_id = ? AND last_seen_ms > ?",
                )
                .bind(key_id)
                .bind(networks_since.as_millis())
                .fetch_all(&mut *tx)
                .await?;
                totals.push((*key_id, shared_activity(counts, networks)));
            }
            tx.commit().await?;
            Ok(totals)
        })
        .await
    }

    async fn service_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.writing(async {
            // The first to insert wins; everyone reads what won.
            sqlx::query(
                "INSERT INTO service_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .execute(&self.write)
            .await?;
            let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM service_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.write)
                .await?;
            Ok(value)
        })
        .await
    }

    async fn count_attempt(
        &self,
        counters: &[Counter],
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> StoreResult<Admission> {
        self.writing(async {
            // The write lock is taken first (BEGIN IMMEDIATE), so that the counts read below cannot
            // change before this attempt is counted: concurrent attempts queue here, one at a time.
            let mut tx = self.begin_write().await?;
            let mut blocked = Vec::new();
            for counter in counters {
                let (limit, window) = policy.limit(counter.scope);
                // The latest `limit` attempts within the window decide (see `FailureLog`).
                let times: Vec<i64> = sqlx::query_scalar(
                    "SELECT at_ms FROM throttle_attempts WHERE scope = ? AND subject = ? AND at_ms > ? \
                     ORDER BY at_ms DESC LIMIT ?",
                )
                .bind(counter.scope.as_str())
                .bind(&counter.subject)
                .bind(now.minus(window).as_millis())
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
                if let Some(wait) = FailureLog::from_millis(times).blocked_for(limit, window, now) {
                    blocked.push((counter.scope, wait));
                }
            }
            if !blocked.is_empty() {
                return Ok(Admission::Refused { blocked });
            }
            let mut ids = Vec::with_capacity(counters.len());
            for counter in counters {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO throttle_attempts (scope, subject, at_ms) VALUES (?, ?, ?) RETURNING id",
                )
                .bind(counter.scope.as_str())
                .bind(&counter.subject)
                .bind(now.as_millis())
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(Admission::Counted(CountedAttempt(ids)))
        })
        .await
    }
    async fn uncount_attempt(&self, attempt: &CountedAttempt, forgive: Option<&Counter>) -> StoreResult<()> {
        self.writing(async {
            if attempt.0.is_empty() && forgive.is_none() {
                return Ok(());
            }
            let mut tx = self.begin_write().await?;
            for id in &attempt.0 {
                sqlx::query("DELETE FROM throttle_attempts WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(counter) = forgive {
                sqlx::query("DELETE FROM throttle_attempts WHERE scope = ? AND subject = ?")
                    .bind(counter.scope.as_str())
                    .bind(&counter.subject)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn revocation_feed_head(&self) -> StoreResult<i64> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM revocation_feed")
            .fetch_one(&self.read)
            .await?;
        Ok(head.unwrap_or(0))
    }

    async fn revocations_since(&self, seq: i64) -> StoreResult<Vec<(i64, KeyDigest)>> {
        let rows: Vec<FeedRow> =
            sqlx::query_as("SELECT seq, digest FROM revocation_feed WHERE seq > ? ORDER BY seq LIMIT 10000")
                .bind(seq)
                .fetch_all(&self.read)
                .await?;
        rows.into_iter().map(FeedRow::into_entry).collect()
    }

    async fn expire_keys(&self, policy: &KeyPolicy, now: Timestamp) -> StoreResult<u64> {
        self.writing(async {
            let (by_lifetime, by_idleness) = expiry_bounds(policy, now);
            let mut tx = self.begin_write().await?;
            let mut candidates: Vec<LiveKeyRow> = sqlx::query_as(EXPIRY_CANDIDATES_BY_LIFETIME)
                .bind(by_lifetime.as_millis())
                .fetch_all(&mut *tx)
                .await?;
            if let Some(bound) = by_idleness {
                candidates.extend(
                    sqlx::query_as::<_, LiveKeyRow>(EXPIRY_CANDIDATES_BY_IDLENESS)
                        .bind(bound.as_millis())
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
            candidates.extend(
                sqlx::query_as::<_, LiveKeyRow>(EXPIRY_CANDIDATES_BY_DEADLINE)
                    .bind(now.as_millis())
                    .fetch_all(&mut *tx)
                    .await?,
            );
            let mut expired = 0;
            for (id, at) in expired_keys(policy, now, candidates) {
                let done = sqlx::query(EXPIRE)
                    .bind(at.as_millis())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                expired += done.rows_affected();
            }
            tx.commit().await?;
            Ok(expired)
        })
        .await
    }

    async fn prune(&self, cutoffs: &PruneCutoffs) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let [feed, throttles, networks, keys, counts, seen, events] = PRUNE;
            for (sql, before) in [
                (feed, cutoffs.feed),
                (throttles, cutoffs.throttles),
                (networks, cutoffs.known_networks),
                (keys, cutoffs.revoked_keys),
                (counts, cutoffs.shared_activity),
                (seen, cutoffs.shared_activity),
                (events, cutoffs.events),
            ] {
                sqlx::query(sql)
                    .bind(before.as_millis())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(tickets::PRUNE)
                .bind(cutoffs.tickets.as_millis())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM reset_codes WHERE expires_ms < ?")
                .bind(cutoffs.tickets.as_millis())
                .execute(&mut *tx)
                .await?;
            sqlx::query(import::PRUNE)
                .bind(cutoffs.revoked_keys.as_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .await
    }

    async fn find_login(&self, canonical_name: &str) -> StoreResult<Option<(User, StoredHash)>> {
        let row: Option<LoginRow> = sqlx::query_as(&format!("{LOGIN_SELECT} WHERE u.username_canonical = ?"))
            .bind(canonical_name)
            .fetch_optional(&self.read)
            .await?;
        row.map(LoginRow::into_login).transpose()
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<(User, StoredHash)>> {
        let row: Option<LoginRow> = sqlx::query_as(&format!("{LOGIN_SELECT} WHERE u.id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.map(LoginRow::into_login).transpose()
    }

    async fn issue_key(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        policy: &KeyPolicy,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            // The write lock (BEGIN IMMEDIATE) serialises this with every password change.
            let mut tx = self.begin_write().await?;
            replace_verified_hash(&mut tx, key.user_id, password, key.created).await?;
            if let Some(suspension) = suspension_in_force(&mut tx, key.user_id, key.created).await? {
                return Err(StoreError::Suspended(suspension));
            }
            let rows: Vec<LiveKeyRow> = sqlx::query_as(&format!(
                "SELECT {LIVE_KEY_COLUMNS} FROM keys WHERE user_id = ? AND revoked_ms IS NULL"
            ))
            .bind(key.user_id)
            .fetch_all(&mut *tx)
            .await?;
            let live: Vec<KeyUse<Uuid>> = rows
                .iter()
                .map(|row| KeyUse {
                    id: row.id,
                    created: ts(row.created_ms),
                    last_used: row.last_used_ms.map(ts),
                    deadline: row.expires_ms.map(ts),
                })
                .collect();
            let plan = policy.plan_issue(&live, key.created);
            if plan.refused {
                // Nothing written: the expired keys are marked by housekeeping or the next sign-in.
                return Err(StoreError::KeyLimit);
            }
            let mut revoked = Vec::new();
            for (id, at) in plan.expired {
                let one = [id];
                let expired = revoke_where(
                    &mut tx,
                    key.user_id,
                    Some(&one),
                    RevocationReason::Expired,
                    &Cause::new(at, None),
                )
                .await?;
                revoked.extend(expired);
            }
            if !plan.evicted.is_empty() {
                let ip = key.created_ip.map(|ip| ip.to_string());
                let evicted = revoke_where(
                    &mut tx,
                    key.user_id,
                    Some(&plan.evicted),
                    RevocationReason::Evicted,
                    &Cause::new(key.created, ip.as_deref()),
                )
                .await?;
                revoked.extend(evicted);
            }
            insert_key(&mut tx, key).await?;
            insert_event(&mut tx, event).await?;
            insert_feed(&mut tx, key.user_id, &revoked, None, key.created).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn change_password(
        &self,
        user_id: Uuid,
        replaced: &str,
        phc: &str,
        new_key: &NewKey,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let password = VerifiedHash {
                verified: replaced,
                upgrade: Some(phc),
            };
            replace_verified_hash(&mut tx, user_id, &password, new_key.created).await?;
            let revoked = revoke_where(
                &mut tx,
                user_id,
                None,
                RevocationReason::PasswordChanged,
                &Cause::new(new_key.created, event.network.as_deref()),
            )
            .await?;
            insert_key(&mut tx, new_key).await?;
            insert_event(&mut tx, event).await?;
            insert_feed(&mut tx, user_id, &revoked, None, new_key.created).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn delete_user(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let at = event.at;
            let mut tx = self.begin_write().await?;
            if is_last_admin(&mut tx, user_id, at).await? {
                return Err(StoreError::LastAdmin);
            }
            let rows: Vec<RevokedRow> =
                sqlx::query_as("SELECT id, digest FROM keys WHERE user_id = ? AND revoked_ms IS NULL")
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let gone = rows
                .into_iter()
                .map(|row| row.revoked(RevocationReason::Admin))
                .collect::<StoreResult<Vec<_>>>()?;
            insert_feed(&mut tx, user_id, &gone, Some(ACCOUNT_DELETED), at).await?;
            // Keys, hashes and suspensions go with the user (ON DELETE CASCADE); events stay
            // until `events.retention`.
            sqlx::query("DELETE FROM users WHERE id = ?")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            insert_event(&mut tx, event).await?;
            tx.commit().await?;
            Ok(gone)
        })
        .await
    }

    async fn find_key(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        self.keys.find_key(digest)
    }

    async fn revoke_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Option<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let revoked = revoke_where(&mut tx, user_id, Some(&[key_id]), reason, cause).await?;
            insert_feed(&mut tx, user_id, &revoked, None, cause.at).await?;
            tx.commit().await?;
            Ok(revoked.into_iter().next())
        })
        .await
    }

    async fn revoke_user_keys(
        &self,
        user_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let revoked = revoke_where(&mut tx, user_id, None, reason, cause).await?;
            insert_feed(&mut tx, user_id, &revoked, None, cause.at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn list_keys(&self, user_id: Uuid, revoked_since: Timestamp) -> StoreResult<Vec<KeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys k \
             WHERE k.user_id = ? AND (k.revoked_ms IS NULL OR k.revoked_ms >= ?) ORDER BY k.created_ms, k.id"
        );
        let rows: Vec<KeyRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(revoked_since.as_millis())
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
    }

    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<()> {
        self.writing(async {
            if batch.is_empty() {
                return Ok(());
            }
            // Multi-row UPDATE … FROM (VALUES …): one statement per few hundred keys instead of one
            // per key (each statement is a round trip to sqlx's connection thread).
            const ROWS: usize = 500;
            let (used, unused): (Vec<&KeyUsage>, Vec<&KeyUsage>) = batch.iter().partition(|u| u.used.is_some());
            let mut tx = self.begin_write().await?;
            for chunk in used.chunks(ROWS) {
                let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                // max(): a late flush never moves last_used backwards.
                let sql = format!(
                    "UPDATE keys SET last_used_ms = max(coalesce(keys.last_used_ms, 0), v.column2), \
                     last_ip = v.column3, user_agent = v.column4, activity = v.column5 \
                     FROM (VALUES {values}) AS v WHERE keys.id = v.column1"
                );
                let mut query = sqlx::query(&sql);
                for u in chunk {
                    if let Some(last) = &u.used {
                        query = query
                            .bind(u.key_id)
                            .bind(last.at.as_millis())
                            .bind(last.ip.to_string())
                            .bind(last.user_agent.clone())
                            .bind(u.activity.clone());
                    }
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in unused.chunks(ROWS) {
                let values = vec!["(?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "UPDATE keys SET activity = v.column2 FROM (VALUES {values}) AS v WHERE keys.id = v.column1"
                );
                let mut query = sqlx::query(&sql);
                for u in chunk {
                    query = query.bind(u.key_id).bind(u.activity.clone());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await
        })
        .await
    }

    // Suspensions and security events

    async fn suspend(&self, suspension: &Suspension, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.suspend_user(suspension, event).await
    }

    async fn lift_suspension(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Option<Suspension>> {
        self.lift_user_suspension(user_id, event).await
    }

    async fn suspensions(&self, user_id: Uuid) -> StoreResult<Vec<Suspension>> {
        self.list_suspensions(user_id).await
    }

    async fn set_role(&self, user_id: Uuid, role: Role, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.change_role(user_id, role, event).await
    }

    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        self.insert_events(events).await
    }

    async fn events(
        &self,
        user_id: Option<Uuid>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        self.list_events(user_id, before, limit).await
    }

    // Service accounts

    async fn create_service(&self, user: &User, key: &NewKey, event: &NewEvent) -> StoreResult<()> {
        service_accounts::create_service(self, user, key, event).await
    }

    async fn find_account(&self, canonical_name: &str) -> StoreResult<Option<User>> {
        service_accounts::find_account(self, canonical_name).await
    }

    async fn find_account_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        service_accounts::find_account_by_id(self, id).await
    }

    // Join tickets

    async fn create_ticket(&self, ticket: &crate::store::NewTicket) -> StoreResult<bool> {
        tickets::create_ticket(self, ticket).await
    }

    async fn take_ticket(
        &self,
        digest: &crate::domain::TicketDigest,
        now: Timestamp,
    ) -> StoreResult<Option<crate::store::TakenTicket>> {
        tickets::take_ticket(self, digest, now).await
    }

    // Revocation stream

    async fn feed_after(&self, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>> {
        stream::feed_after(&self.read, after, limit).await
    }

    async fn feed_bounds(&self) -> StoreResult<FeedBounds> {
        stream::feed_bounds(&self.read).await
    }

    // Imports

    async fn import_users(&self, run: &Run, batch: &[ImportUser]) -> StoreResult<Vec<UserOutcome>> {
        self.import_user_batch(run, batch).await
    }

    async fn import_keys(
        &self,
        run: &Run,
        batch: &[ImportKey],
        dry_owners: &std::collections::HashMap<String, Uuid>,
    ) -> StoreResult<Vec<KeyOutcome>> {
        self.import_key_batch(run, batch, dry_owners).await
    }

    async fn revoke_keys_gone_from_source(
        &self,
        run: &Run,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, RevokedKey)>> {
        self.revoke_gone_keys(run, now, limit).await
    }

    async fn hash_classes(&self) -> StoreResult<Vec<String>> {
        self.list_hash_classes().await
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::domain::{AccessKey, EventKind, OnLimit, Role, Username};
    use crate::store::LastUse;

    fn test_event() -> NewEvent {
        NewEvent::new(EventKind::SignedIn, Timestamp::from_millis(0), None)
    }

    /// The password hash of the test's account, as a sign-in verified it.
    const STUB_HASH: VerifiedHash<'static> = VerifiedHash {
        verified: "$argon2id$stub",
        upgrade: None,
    };

    fn policy() -> KeyPolicy {
        KeyPolicy {
            lifetime: Duration::from_secs(180 * 86_400),
            idle_timeout: None,
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        }
    }

    fn new_key(user: &User, at: i64) -> (NewKey, KeyDigest) {
        let digest = AccessKey::generate().digest();
        let key = NewKey {
            id: Uuid::new_v4(),
            user_id: user.id,
            digest,
            created: ts(at),
            created_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
        };
        (key, digest)
    }

    /// The validation path reads keys with its own SQLite connections (`key_reader`), everything
    /// else through sqlx: both must see the same row the same way, whatever state it is in.
    #[tokio::test]
    async fn the_key_reader_decodes_rows_as_sqlx_does() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("kb.db")).await.expect("store");
        let user = User {
            id: Uuid::new_v4(),
            name: Username::from_trusted("reader_check".into()),
            role: Role::Admin,
            created: ts(1_700_000_000_000),
        };
        let (fresh, fresh_digest) = new_key(&user, 1_700_000_000_001);
        store
            .create_user(&user, STUB_HASH.verified, Some(&fresh), &test_event())
            .await
            .expect("user");
        let (used, used_digest) = new_key(&user, 1_700_000_000_002);
        store
            .issue_key(&used, &STUB_HASH, &policy(), &test_event())
            .await
            .expect("key");
        store
            .record_usage(&[KeyUsage {
                key_id: used.id,
                used: Some(LastUse {
                    at: ts(1_700_000_100_000),
                    ip: "2001:db8::1".parse().expect("address"),
                    user_agent: Some("Kill Bill 2/1.0 (é)".into()),
                }),
                activity: r#"{"networks":[]}"#.into(),
            }])
            .await
            .expect("usage");
        let (revoked, revoked_digest) = new_key(&user, 1_700_000_000_003);
        store
            .issue_key(&revoked, &STUB_HASH, &policy(), &test_event())
            .await
            .expect("key");
        store
            .revoke_key(
                user.id,
                revoked.id,
                RevocationReason::IpChanges,
                &Cause::new(ts(1_700_000_200_000), Some("203.0.113.0/24")),
            )
            .await
            .expect("revoke");

        let listed = store.list_keys(user.id, ts(0)).await.expect("list");
        assert_eq!(listed.len(), 3);
        for digest in [fresh_digest, used_digest, revoked_digest] {
            let (record, owner) = store.find_key(&digest).await.expect("read").expect("found");
            let by_sqlx = listed.iter().find(|k| k.digest == digest).expect("listed");
            assert_eq!(&record, by_sqlx);
            assert_eq!(owner, user);
        }
        let used_record = listed.iter().find(|k| k.id == used.id).expect("listed");
        assert_eq!(used_record.user_agent.as_deref(), Some("Kill Bill 2/1.0 (é)"));
        assert!(listed
            .iter()
            .any(|k| k.revoked == Some((ts(1_700_000_200_000), RevocationReason::IpChanges))));

        assert!(store
            .find_key(&AccessKey::generate().digest())
            .await
            .expect("read")
            .is_none());
        store.close().await;
        assert!(matches!(
            store.find_key(&fresh_digest).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    /// Migration 0010 rebuilds `users`, `password_hashes`, `keys` and `known_networks` (to widen
    /// two CHECK constraints) inside sqlx's transaction: every row of a database made by 0001 to
    /// 0009 survives, the foreign keys still hold and still cascade, and the new values are
    /// accepted.
    #[tokio::test]
    async fn migration_0010_keeps_every_row_and_every_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let old = SqlitePool::connect_with(options).await.unwrap();
        let all = sqlx::migrate!("./migrations/sqlite");
        let up_to_0009 = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                all.migrations
                    .iter()
                    .filter(|m| m.version <= 9)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        up_to_0009.run(&old).await.unwrap();
        let (bill, ann) = (Uuid::new_v4(), Uuid::new_v4());
        let (live, revoked) = (Uuid::new_v4(), Uuid::new_v4());
        for (id, name, role) in [(bill, "Bill", "ADMIN"), (ann, "ann", "USER")] {
            sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?, 1000)")
                .bind(id)
                .bind(name)
                .bind(name.to_ascii_lowercase())
                .bind(role)
                .execute(&old)
                .await
                .unwrap();
            sqlx::query("INSERT INTO password_hashes VALUES (?, '$argon2id$old', 1000)")
                .bind(id)
                .execute(&old)
                .await
                .unwrap();
        }
        let live_digest = [7u8; 32];
        sqlx::query(
            "INSERT INTO keys (id, user_id, digest, created_ms, created_ip, last_used_ms, last_ip, user_agent, activity) \
             VALUES (?, ?, ?, 2000, '198.51.100.7', 3000, '198.51.100.8', 'KB2', '{}')",
        )
        .bind(live)
        .bind(bill)
        .bind(&live_digest[..])
        .execute(&old)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO keys (id, user_id, digest, created_ms, revoked_ms, revoke_reason, revoked_network) \
             VALUES (?, ?, ?, 2000, 4000, 'ip_changes', '203.0.113.0/24')",
        )
        .bind(revoked)
        .bind(ann)
        .bind(&[8u8; 32][..])
        .execute(&old)
        .await
        .unwrap();
        sqlx::query("INSERT INTO known_networks VALUES (?, '198.51.100.0/24', 5000)")
            .bind(bill)
            .execute(&old)
            .await
            .unwrap();
        sqlx::query("INSERT INTO key_events (key_id, user_id, event, at_ms) VALUES (?, ?, 'issued', 2000)")
            .bind(live)
            .bind(bill)
            .execute(&old)
            .await
            .unwrap();
        sqlx::query("INSERT INTO revocation_feed (digest, at_ms) VALUES (?, 4000)")
            .bind(&[8u8; 32][..])
            .execute(&old)
            .await
            .unwrap();
        old.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let (user, phc) = store.find_login("bill").await.unwrap().unwrap();
        assert_eq!(
            (user.id, user.name.as_str(), user.role, phc.phc.as_str()),
            (bill, "Bill", Role::Admin, "$argon2id$old")
        );
        let (key, owner) = store.find_key(&KeyDigest(live_digest)).await.unwrap().unwrap();
        assert_eq!(owner.id, bill);
        assert_eq!(
            (
                key.id,
                key.created,
                key.last_used,
                key.last_ip.as_deref(),
                key.user_agent.as_deref()
            ),
            (live, ts(2000), Some(ts(3000)), Some("198.51.100.8"), Some("KB2"))
        );
        assert_eq!(key.activity.as_deref(), Some("{}"));
        let (gone, _) = store.find_key(&KeyDigest([8u8; 32])).await.unwrap().unwrap();
        assert_eq!(gone.revoked, Some((ts(4000), RevocationReason::IpChanges)));
        assert_eq!(gone.revoked_network.as_deref(), Some("203.0.113.0/24"));
        assert!(store
            .is_known_network("bill", "198.51.100.0/24", ts(0))
            .await
            .unwrap());
        assert_eq!(store.revocations_since(0).await.unwrap().len(), 1);

        let mut conn = store.write.acquire().await.unwrap();
        let problems: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let references: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, f.\"table\" FROM sqlite_schema m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert!(
            references.iter().all(|(_, parent)| !parent.ends_with("_new")),
            "{references:?}"
        );
        drop(conn);
        // The new values are accepted; deleting a user still takes its keys and hash with it.
        let service = User {
            id: Uuid::new_v4(),
            name: Username::parse("game_server").unwrap(),
            role: Role::Service,
            created: ts(6000),
        };
        store
            .create_user(&service, "$argon2id$x", None, &test_event())
            .await
            .unwrap();
        store
            .revoke_key(
                bill,
                live,
                RevocationReason::Suspended,
                &Cause::new(ts(7000), None),
            )
            .await
            .unwrap()
            .unwrap();
        store.delete_user(ann, &test_event()).await.unwrap();
        assert!(store.find_key(&KeyDigest([8u8; 32])).await.unwrap().is_none());
        assert!(store.find_user(ann).await.unwrap().is_none());
    }

    /// The fault drill's page limit holds on the writer connection that replaces a closed one
    /// (a failed rollback closes it), and lifting it gives SQLite's largest again.
    #[tokio::test]
    async fn the_size_limit_survives_a_new_write_connection() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("kb.db")).await.expect("store");
        let max_pages = || async {
            let mut conn = store.write.acquire().await.expect("connection");
            sqlx::query_scalar::<_, i64>("PRAGMA max_page_count")
                .fetch_one(&mut *conn)
                .await
                .expect("pragma")
        };
        store.set_size_limit(Some(1000)).await.expect("limit");
        assert_eq!(max_pages().await, 1000);
        let conn = store.write.acquire().await.expect("connection");
        conn.close().await.expect("close");
        assert_eq!(max_pages().await, 1000, "on the new connection");
        store.set_size_limit(None).await.expect("no limit");
        assert!(max_pages().await > 1_000_000_000);
        store.close().await;
    }

    /// Housekeeping runs in the write transaction, every 10 minutes and at start-up: none of its
    /// statements may scan a table (with a million keys a scan held a core and the write lock
    /// for about 100 ms, and the first requests after a start waited behind it).
    #[tokio::test]
    async fn housekeeping_reads_indexes_not_tables() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("kb.db");
        let store = SqliteStore::open(&path).await.expect("store");
        let conn = rusqlite::Connection::open(&path).expect("connection");
        for sql in PRUNE.into_iter().chain([
            EXPIRY_CANDIDATES_BY_LIFETIME,
            EXPIRY_CANDIDATES_BY_IDLENESS,
            EXPIRY_CANDIDATES_BY_DEADLINE,
            EXPIRE,
            tickets::PRUNE,
            tickets::TAKE,
            import::PRUNE,
        ]) {
            let mut explain = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("statement");
            let mut rows = explain.raw_query();
            let mut plan = Vec::new();
            while let Some(row) = rows.next().expect("plan") {
                plan.push(row.get::<_, String>(3).expect("detail"));
            }
            assert!(!plan.is_empty(), "no plan for {sql}");
            // The feed's prune walks the primary key from its oldest entry to the first one it
            // keeps (the `LIMIT 1`): a scan that reads what it deletes and one row more.
            let feed_walk = sql == PRUNE[0];
            assert!(
                plan.iter().all(|step| step.starts_with("SEARCH")
                    || step.starts_with("SCALAR SUBQUERY")
                    || (feed_walk && step == "SCAN revocation_feed")),
                "{sql}: {plan:?}"
            );
        }
        store.close().await;
    }
}
