//! [`Store`] on PostgreSQL, for several instances sharing one database.
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
//!   revocation is recorded once (one `key_events` row, one `revocation_feed` row).
//!
//! Errors go through the one mapping ([`StoreError`]'s `From<sqlx::Error>`): lost connections,
//! a full disk, too many connections, a shutting-down server, serialization failures and
//! deadlocks are `Unavailable` (503 with `Retry-After`).

pub mod listen;
mod suspensions;

mod connect;
mod import;
pub(crate) mod read_only;
mod reset_codes;
mod service_accounts;
mod stream;
mod tickets;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use self::suspensions::{is_last_admin, suspension_in_force};
use super::health::WriteHealth;
use super::rows::{
    expired_keys, expiry_bounds, merge_counts, shared_activity, ts, unzip3, FeedRow, KeyRow, KeyWithUserRow,
    LiveKeyRow, LoginRow, RevokedRow, UserRow, KEY_COLUMNS, LIVE_KEY_COLUMNS, LOGIN_SELECT, USER_COLUMNS,
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

/// Expiry candidates, as in the SQLite store: live keys created at or before now − lifetime
/// (`keys_live`), or last used (else created) at or before now − idle timeout
/// (`keys_live_by_last_use`). Which of them expired, and when, is [`KeyPolicy`]'s to say. Keys of
/// service accounts last until revoked and are never candidates (each candidate's owner looked
/// up by primary key).
const EXPIRY_CANDIDATES_BY_LIFETIME: &str = "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND k.expires_ms IS NULL AND k.created_ms <= $1";
const EXPIRY_CANDIDATES_BY_IDLENESS: &str = "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND coalesce(k.last_used_ms, k.created_ms) <= $1";
/// Keys with a deadline of their own (imported from the original back end) past it at $1
/// (`keys_live_by_deadline`).
const EXPIRY_CANDIDATES_BY_DEADLINE: &str = "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND k.expires_ms IS NOT NULL AND k.expires_ms <= $1";
/// Marks keys expired, each at its own deadline, if still live.
const EXPIRE: &str = "UPDATE keys SET revoke_reason = 'expired', revoked_ms = v.at \
     FROM unnest($1::uuid[], $2::bigint[]) AS v(id, at) WHERE keys.id = v.id AND keys.revoked_ms IS NULL";

/// Pruning by age ($1 the cutoff): revocation feed, throttles, known networks, revoked keys,
/// shared request counts and networks.
const PRUNE: [&str; 7] = [
    // The feed loses a prefix only, up to its first entry young enough to keep, and never its
    // newest (`Store::feed_bounds`); entries carry the time of the revocation they record, which
    // is not always in `seq` order (an expired key is revoked as of its deadline).
    "DELETE FROM revocation_feed WHERE seq < coalesce(\
     (SELECT seq FROM revocation_feed WHERE at_ms >= $1 ORDER BY seq LIMIT 1), \
     (SELECT max(seq) FROM revocation_feed))",
    "DELETE FROM throttle_attempts WHERE at_ms < $1",
    "DELETE FROM known_networks WHERE last_success_ms < $1",
    "DELETE FROM keys WHERE revoked_ms < $1",
    "DELETE FROM key_request_counts WHERE window_start_ms < $1",
    "DELETE FROM key_networks WHERE last_seen_ms < $1",
    "DELETE FROM events WHERE at_ms < $1",
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

/// The advisory lock key of a throttle counter: the first 8 bytes of SHA-256 over the scope and
/// subject. Every instance derives the same key; two counters sharing one (a 2⁻⁶⁴ chance) only
/// queue behind each other.
fn counter_lock(counter: &Counter) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"killbill-auth throttle\0")
        .chain_update(counter.scope.as_str())
        .chain_update(b":")
        .chain_update(&counter.subject)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The advisory lock of one key's shared networks (see `share_activity`).
fn activity_lock(key: Uuid) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"killbill-auth activity\0")
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Locks the user's row until the transaction ends (see the module's notes).
async fn lock_user(conn: &mut PgConnection, user_id: Uuid) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// Checks, after [`lock_user`], that the account's password hash is still the one the caller
/// verified, and replaces it with `password.upgrade` if there is one (a hash made here: no
/// longer legacy). The hash's row is locked as it is read (an import's update of it holds no
/// user lock), so what is read here stays true until the commit. [`StoreError::Gone`] when the account is,
/// [`StoreError::PasswordChanged`] when the hash changed since it was read.
async fn replace_verified_hash(
    conn: &mut PgConnection,
    user_id: Uuid,
    password: &VerifiedHash<'_>,
    at: Timestamp,
) -> StoreResult<()> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT phc FROM password_hashes WHERE user_id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    match stored {
        None => return Err(StoreError::Gone),
        Some(stored) if stored != password.verified => return Err(StoreError::PasswordChanged),
        Some(_) => {}
    }
    if let Some(phc) = password.upgrade {
        set_native_hash(conn, user_id, phc, at).await?;
    }
    Ok(())
}

/// Replaces the account's password hash with one made here (no longer legacy).
async fn set_native_hash(
    conn: &mut PgConnection,
    user_id: Uuid,
    phc: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query("UPDATE password_hashes SET phc = $1, updated_ms = $2, legacy = false WHERE user_id = $3")
        .bind(phc)
        .bind(at.as_millis())
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A new account's row: a taken name (regardless of case) is refused by the unique constraint.
async fn insert_user(conn: &mut PgConnection, user: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, username, username_canonical, role, created_ms) VALUES ($1, $2, $3, $4, $5)",
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

async fn insert_key(conn: &mut PgConnection, key: &NewKey) -> StoreResult<()> {
    let ip = key.created_ip.map(|ip| ip.to_string());
    sqlx::query("INSERT INTO keys (id, user_id, digest, created_ms, created_ip) VALUES ($1, $2, $3, $4, $5)")
        .bind(key.id)
        .bind(key.user_id)
        .bind(&key.digest.0[..])
        .bind(key.created.as_millis())
        .bind(&ip)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks live keys revoked (only those still live) and records one event and one feed entry
/// each.
async fn revoke_where(
    conn: &mut PgConnection,
    user_id: Uuid,
    key_ids: Option<&[Uuid]>,
    reason: RevocationReason,
    cause: &Cause<'_>,
) -> StoreResult<Vec<RevokedKey>> {
    let (at, network) = (cause.at, cause.network);
    let rows: Vec<RevokedRow> = match key_ids {
        None => {
            sqlx::query_as(
                "UPDATE keys SET revoked_ms = $1, revoke_reason = $2, revoked_network = $3 \
                 WHERE user_id = $4 AND revoked_ms IS NULL RETURNING id, digest",
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
                    "UPDATE keys SET revoked_ms = $1, revoke_reason = $2, revoked_network = $3 \
                     WHERE id = $4 AND user_id = $5 AND revoked_ms IS NULL RETURNING id, digest",
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
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let events: Vec<NewEvent> = ids
        .iter()
        .map(|&id| NewEvent::key_revoked(user_id, id, reason, at, network).by(cause.actor))
        .collect();
    insert_events(conn, &events).await?;
    rows.into_iter().map(|row| row.revoked(reason)).collect()
}

/// The advisory lock of housekeeping (expiry and pruning), a constant every instance shares.
pub const HOUSEKEEPING_LOCK: i64 = 0x6b62_6175_7468_686b; // "kbauthhk"

/// Housekeeping runs on one instance at a time: whether this transaction got the turn (it holds
/// the lock until it ends). An instance that does not get it skips this round; another instance
/// is doing the same work.
async fn housekeeping_turn(tx: &mut PgConnection) -> StoreResult<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(HOUSEKEEPING_LOCK)
        .fetch_one(&mut *tx)
        .await?)
}

/// The advisory lock that serialises appends to the revocation feed from the insert to the commit,
/// so that `seq` order is commit order: a reader that has seen `seq` n has seen every row below it
/// that will ever commit (`GET /revocations` resumes by `seq`).
pub const FEED_LOCK: i64 = 0x6b62_6175_7468_6664; // "kbauthfd"

/// Appends revoked or deleted keys of one user to the revocation feed, in the given order, and
/// notifies every instance (`listen`): PostgreSQL delivers a transaction's notifications when, and
/// only if, it commits, in commit order. `reason` overrides the keys' own (`account_deleted`).
/// Takes [`FEED_LOCK`] until the transaction ends: call it once, just before the commit, after
/// every other lock (a second lock taken while holding it could deadlock with another writer).
async fn insert_feed(
    conn: &mut PgConnection,
    user_id: Uuid,
    keys: &[RevokedKey],
    reason: Option<&str>,
    at: Timestamp,
) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
    let digests: Vec<Vec<u8>> = keys.iter().map(|k| k.digest.0.to_vec()).collect();
    let reasons: Vec<&str> = keys.iter().map(|k| reason.unwrap_or(k.reason.as_str())).collect();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(FEED_LOCK)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO revocation_feed (digest, at_ms, key_id, user_id, reason) \
         SELECT d, $2, k, $3, r FROM unnest($1::bytea[], $4::uuid[], $5::text[]) WITH ORDINALITY AS f(d, k, r, n) \
         ORDER BY n",
    )
    .bind(&digests)
    .bind(at.as_millis())
    .bind(user_id)
    .bind(&ids)
    .bind(&reasons)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, encode(d, 'hex')) FROM unnest($2::bytea[]) AS f(d)")
        .bind(listen::REVOCATIONS_CHANNEL)
        .bind(&digests)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records security events in the caller's transaction.
async fn insert_events(conn: &mut PgConnection, events: &[NewEvent]) -> StoreResult<()> {
    for event in events {
        sqlx::query(
            "INSERT INTO events (id, at_ms, kind, user_id, actor_id, network, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn check_writes(&self) -> StoreResult<()> {
        if self.writes.failing() {
            self.probe_write().await
        } else {
            Ok(())
        }
    }

    fn writes_failing(&self) -> bool {
        self.writes.failing()
    }

    async fn set_size_limit(&self, _pages: Option<u64>) -> StoreResult<()> {
        Err(StoreError::Other(
            "the database size limit is a SQLite fault drill, not supported on PostgreSQL".into(),
        ))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_user(
        &self,
        user: &User,
        phc: &str,
        key: Option<&NewKey>,
        event: &NewEvent,
    ) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            insert_user(&mut tx, user).await?;
            sqlx::query("INSERT INTO password_hashes (user_id, phc, updated_ms) VALUES ($1, $2, $3)")
                .bind(user.id)
                .bind(phc)
                .bind(user.created.as_millis())
                .execute(&mut *tx)
                .await?;
            if let Some(key) = key {
                insert_key(&mut tx, key).await?;
            }
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_users(&self, after: Option<(Timestamp, Uuid)>, limit: u32) -> StoreResult<Vec<User>> {
        let (after_ms, after_id) = after.map_or((i64::MIN, Uuid::nil()), |(t, id)| (t.as_millis(), id));
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE (created_ms, id) > ($1, $2) ORDER BY created_ms, id LIMIT $3"
        ))
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn remember_network(&self, user_id: Uuid, network: &str, at: Timestamp) -> StoreResult<()> {
        self.writing(async {
            sqlx::query(
                "INSERT INTO known_networks (user_id, network, last_success_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, network) DO UPDATE \
                 SET last_success_ms = greatest(known_networks.last_success_ms, excluded.last_success_ms)",
            )
            .bind(user_id)
            .bind(network)
            .bind(at.as_millis())
            .execute(&self.pool)
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
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM users u JOIN known_networks k ON k.user_id = u.id \
             WHERE u.username_canonical = $1 AND k.network = $2 AND k.last_success_ms >= $3",
        )
        .bind(canonical_name)
        .bind(network)
        .bind(since.as_millis())
        .fetch_optional(&self.pool)
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
        // Rows in one order on every instance (key, then window or network), so that two
        // instances adding to the same keys at once cannot deadlock.
        let mut counts: Vec<(Uuid, i64, i64, i64)> = Vec::new();
        let mut networks: Vec<(Uuid, String, i64)> = Vec::new();
        for (key_id, delta) in deltas {
            for (window, n, served) in merge_counts(delta) {
                counts.push((*key_id, window, n, served));
            }
            for (network, seen) in &delta.networks {
                networks.push((*key_id, network.to_string(), *seen));
            }
        }
        counts.sort_unstable();
        counts.dedup_by(|later, first| {
            let same = later.0 == first.0 && later.1 == first.1;
            if same {
                first.2 = first.2.saturating_add(later.2);
                first.3 = first.3.saturating_add(later.3);
            }
            same
        });
        networks.sort_unstable();
        networks.dedup_by(|later, first| {
            let same = later.0 == first.0 && later.1 == first.1;
            if same {
                first.2 = first.2.max(later.2);
            }
            same
        });
        // Networks are read back only for keys that brought one: the union grows only when an
        // instance shares a network, and that instance then sees it whole. Two instances adding
        // networks to one key at once take turns on the key's advisory lock, so the second sees
        // the first's.
        let mut network_keys: Vec<Uuid> = networks.iter().map(|(k, _, _)| *k).collect();
        network_keys.dedup();
        let mut key_locks: Vec<i64> = network_keys.iter().map(|k| activity_lock(*k)).collect();
        key_locks.sort_unstable();
        key_locks.dedup();
        let keys: Vec<Uuid> = deltas.iter().map(|(id, _)| *id).collect();
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            // The totals of the windows this instance added to, as the upsert leaves them (a
            // concurrent upsert of the same row waits for this one, and sees its sum): no second
            // read of every shared key.
            let mut count_rows: Vec<(Uuid, i64, i64, i64)> = Vec::new();
            if !counts.is_empty() {
                let (ids, windows, ns): (Vec<Uuid>, Vec<i64>, Vec<i64>) =
                    unzip3(counts.iter().map(|(k, w, n, _)| (*k, *w, *n)));
                let served: Vec<i64> = counts.iter().map(|c| c.3).collect();
                count_rows = sqlx::query_as(
                    "INSERT INTO key_request_counts (key_id, window_start_ms, count, served) \
                     SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                     ON CONFLICT (key_id, window_start_ms) DO UPDATE \
                     SET count = key_request_counts.count + excluded.count, \
                         served = key_request_counts.served + excluded.served \
                     RETURNING key_id, window_start_ms, count, served",
                )
                .bind(&ids)
                .bind(&windows)
                .bind(&ns)
                .bind(&served)
                .fetch_all(&mut *tx)
                .await?;
            }
            let mut network_rows: Vec<(Uuid, String, i64)> = Vec::new();
            if !networks.is_empty() {
                sqlx::query("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, n)")
                    .bind(&key_locks)
                    .execute(&mut *tx)
                    .await?;
                let (ids, nets, seen): (Vec<Uuid>, Vec<String>, Vec<i64>) = unzip3(networks.iter().cloned());
                sqlx::query(
                    "INSERT INTO key_networks (key_id, network, last_seen_ms) \
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[]) \
                     ON CONFLICT (key_id, network) DO UPDATE \
                     SET last_seen_ms = GREATEST(key_networks.last_seen_ms, excluded.last_seen_ms)",
                )
                .bind(&ids)
                .bind(&nets)
                .bind(&seen)
                .execute(&mut *tx)
                .await?;
                network_rows = sqlx::query_as(
                    "SELECT key_id, network, last_seen_ms FROM key_networks \
                     WHERE key_id = ANY($1) AND last_seen_ms > $2",
                )
                .bind(&network_keys)
                .bind(networks_since.as_millis())
                .fetch_all(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            // Grouped in one pass (a second's share may hold tens of thousands of keys).
            type Rows = (Vec<(i64, i64, i64)>, Vec<(String, i64)>);
            let mut by_key: std::collections::HashMap<Uuid, Rows> =
                keys.iter().map(|k| (*k, (Vec::new(), Vec::new()))).collect();
            for (key, window, count, served) in count_rows {
                if window >= counts_since.as_millis() {
                    if let Some((counts, _)) = by_key.get_mut(&key) {
                        counts.push((window, count, served));
                    }
                }
            }
            for (key, network, seen) in network_rows {
                if let Some((_, networks)) = by_key.get_mut(&key) {
                    networks.push((network, seen));
                }
            }
            Ok(by_key
                .into_iter()
                .map(|(key, (counts, networks))| (key, shared_activity(counts, networks)))
                .collect())
        })
        .await
    }

    async fn service_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.writing(async {
            // The first to insert wins; everyone reads what won.
            sqlx::query(
                "INSERT INTO service_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
            let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM service_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
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
            let mut tx = self.pool.begin().await?;
            // One lock per counter, in ascending order (no deadlock between attempts sharing
            // counters; a function scan hands the aggregate its rows in array order), held until
            // commit: the counts read below cannot change before this attempt is counted (see
            // the module's notes). Three statements whatever the number of counters: a sign-in
            // has four.
            let mut locks: Vec<i64> = counters.iter().map(counter_lock).collect();
            locks.sort_unstable();
            locks.dedup();
            sqlx::query("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, n)")
                .bind(&locks)
                .execute(&mut *tx)
                .await?;
            let scopes: Vec<&str> = counters.iter().map(|c| c.scope.as_str()).collect();
            let subjects: Vec<&str> = counters.iter().map(|c| c.subject.as_str()).collect();
            let since: Vec<i64> = counters
                .iter()
                .map(|c| now.minus(policy.limit(c.scope).1).as_millis())
                .collect();
            // Each counter's attempts within its window (never more than its limit: a refused
            // attempt is not counted).
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT c.n, t.at_ms FROM unnest($1::text[], $2::text[], $3::bigint[]) \
                 WITH ORDINALITY AS c(scope, subject, since, n) \
                 JOIN throttle_attempts t ON t.scope = c.scope AND t.subject = c.subject AND t.at_ms > c.since",
            )
            .bind(&scopes)
            .bind(&subjects)
            .bind(&since)
            .fetch_all(&mut *tx)
            .await?;
            let mut blocked = Vec::new();
            for (i, counter) in counters.iter().enumerate() {
                let (limit, window) = policy.limit(counter.scope);
                let n = i64::try_from(i + 1).unwrap_or(i64::MAX);
                let times = rows.iter().filter(|(c, _)| *c == n).map(|(_, at)| *at);
                if let Some(wait) = FailureLog::from_millis(times).blocked_for(limit, window, now) {
                    blocked.push((counter.scope, wait));
                }
            }
            if !blocked.is_empty() {
                // Nothing written: the rollback (on drop) only releases the locks.
                return Ok(Admission::Refused { blocked });
            }
            let ids: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO throttle_attempts (scope, subject, at_ms) \
                 SELECT scope, subject, $3 FROM unnest($1::text[], $2::text[]) AS c(scope, subject) RETURNING id",
            )
            .bind(&scopes)
            .bind(&subjects)
            .bind(now.as_millis())
            .fetch_all(&mut *tx)
            .await?;
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
            // Deleting attempts can only lower a count: no lock is needed for that. But two
            // successful sign-ins of one account from one network each delete their own rows and
            // then every row of their shared counter, in two statements: without an order they
            // deadlock on each other's rows. The counter's lock (the one `count_attempt` takes)
            // makes them queue before either deletes anything.
            let mut tx = self.pool.begin().await?;
            if let Some(counter) = forgive {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(counter_lock(counter))
                    .execute(&mut *tx)
                    .await?;
            }
            if !attempt.0.is_empty() {
                sqlx::query("DELETE FROM throttle_attempts WHERE id = ANY($1)")
                    .bind(&attempt.0)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(counter) = forgive {
                sqlx::query("DELETE FROM throttle_attempts WHERE scope = $1 AND subject = $2")
                    .bind(counter.scope.as_str())
                    .bind(&counter.subject)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn revocation_feed_head(&self) -> StoreResult<i64> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM revocation_feed")
            .fetch_one(&self.pool)
            .await?;
        Ok(head.unwrap_or(0))
    }

    async fn revocations_since(&self, seq: i64) -> StoreResult<Vec<(i64, KeyDigest)>> {
        // Caveat: sequence numbers are taken at insert, not at commit, so a row with a
        // lower `seq` may become visible after one with a higher `seq` was read here.
        let rows: Vec<FeedRow> =
            sqlx::query_as("SELECT seq, digest FROM revocation_feed WHERE seq > $1 ORDER BY seq LIMIT 10000")
                .bind(seq)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(FeedRow::into_entry).collect()
    }

    async fn expire_keys(&self, policy: &KeyPolicy, now: Timestamp) -> StoreResult<u64> {
        self.writing(async {
            let (by_lifetime, by_idleness) = expiry_bounds(policy, now);
            let mut tx = self.pool.begin().await?;
            if !housekeeping_turn(&mut tx).await? {
                return Ok(0);
            }
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
            for chunk in expired_keys(policy, now, candidates).chunks(10_000) {
                let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
                let ats: Vec<i64> = chunk.iter().map(|(_, at)| at.as_millis()).collect();
                let done = sqlx::query(EXPIRE)
                    .bind(&ids)
                    .bind(&ats)
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
            let mut tx = self.pool.begin().await?;
            if !housekeeping_turn(&mut tx).await? {
                return Ok(());
            }
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
            sqlx::query("DELETE FROM reset_codes WHERE expires_ms < $1")
                .bind(cutoffs.tickets.as_millis())
                .execute(&mut *tx)
                .await?;
            sqlx::query(import::PRUNE)
                .bind(cutoffs.revoked_keys.as_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn find_login(&self, canonical_name: &str) -> StoreResult<Option<(User, StoredHash)>> {
        let row: Option<LoginRow> =
            sqlx::query_as(&format!("{LOGIN_SELECT} WHERE u.username_canonical = $1"))
                .bind(canonical_name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(LoginRow::into_login).transpose()
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<(User, StoredHash)>> {
        let row: Option<LoginRow> = sqlx::query_as(&format!("{LOGIN_SELECT} WHERE u.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
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
            let mut tx = self.pool.begin().await?;
            // Concurrent sign-ins of this user, on any instance, queue here (and behind a
            // suspension or a password change being written).
            lock_user(&mut tx, key.user_id).await?;
            replace_verified_hash(&mut tx, key.user_id, password, key.created).await?;
            if let Some(suspension) = suspension_in_force(&mut tx, key.user_id, key.created).await? {
                return Err(StoreError::Suspended(suspension));
            }
            let rows: Vec<LiveKeyRow> = sqlx::query_as(&format!(
                "SELECT {LIVE_KEY_COLUMNS} FROM keys WHERE user_id = $1 AND revoked_ms IS NULL"
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
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
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
            let mut tx = self.pool.begin().await?;
            lock_user(&mut tx, user_id).await?;
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
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &revoked, None, new_key.created).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn delete_user(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let at = event.at;
            let mut tx = self.pool.begin().await?;
            // No key can be issued between reading the live keys and deleting them.
            lock_user(&mut tx, user_id).await?;
            if is_last_admin(&mut tx, user_id, at).await? {
                return Err(StoreError::LastAdmin);
            }
            let rows: Vec<RevokedRow> =
                sqlx::query_as("SELECT id, digest FROM keys WHERE user_id = $1 AND revoked_ms IS NULL")
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let gone = rows
                .into_iter()
                .map(|row| row.revoked(RevocationReason::Admin))
                .collect::<StoreResult<Vec<_>>>()?;
            // Keys, hashes and suspensions go with the user (ON DELETE CASCADE); events stay
            // until `events.retention`.
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &gone, Some(ACCOUNT_DELETED), at).await?;
            tx.commit().await?;
            Ok(gone)
        })
        .await
    }

    async fn find_key(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        let row: Option<KeyWithUserRow> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS}, u.username, u.role, u.created_ms AS user_created_ms \
             FROM keys k JOIN users u ON u.id = k.user_id WHERE k.digest = $1"
        ))
        .bind(&digest.0[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(KeyWithUserRow::into_pair).transpose()
    }

    async fn revoke_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Option<RevokedKey>> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
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
            let mut tx = self.pool.begin().await?;
            // A sign-in committing meanwhile leaves its key live, as it would have after this.
            lock_user(&mut tx, user_id).await?;
            let revoked = revoke_where(&mut tx, user_id, None, reason, cause).await?;
            insert_feed(&mut tx, user_id, &revoked, None, cause.at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn list_keys(&self, user_id: Uuid, revoked_since: Timestamp) -> StoreResult<Vec<KeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM keys k \
             WHERE k.user_id = $1 AND (k.revoked_ms IS NULL OR k.revoked_ms >= $2) ORDER BY k.created_ms, k.id"
        ))
        .bind(user_id)
        .bind(revoked_since.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
    }

    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<()> {
        self.writing(async {
            if batch.is_empty() {
                return Ok(());
            }
            // One statement per few thousand keys, the batch bound as arrays.
            const ROWS: usize = 5_000;
            let (used, unused): (Vec<&KeyUsage>, Vec<&KeyUsage>) =
                batch.iter().partition(|u| u.used.is_some());
            let mut tx = self.pool.begin().await?;
            for chunk in used.chunks(ROWS) {
                let mut ids = Vec::with_capacity(chunk.len());
                let mut ats = Vec::with_capacity(chunk.len());
                let mut ips = Vec::with_capacity(chunk.len());
                let mut agents: Vec<Option<String>> = Vec::with_capacity(chunk.len());
                let mut activities = Vec::with_capacity(chunk.len());
                for u in chunk {
                    if let Some(last) = &u.used {
                        ids.push(u.key_id);
                        ats.push(last.at.as_millis());
                        ips.push(last.ip.to_string());
                        agents.push(last.user_agent.clone());
                        activities.push(u.activity.clone());
                    }
                }
                // greatest(): a late flush never moves last_used backwards.
                sqlx::query(
                    "UPDATE keys SET last_used_ms = greatest(coalesce(keys.last_used_ms, 0), v.at), \
                     last_ip = v.ip, user_agent = v.agent, activity = v.activity \
                     FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[]) \
                     AS v(id, at, ip, agent, activity) WHERE keys.id = v.id",
                )
                .bind(&ids)
                .bind(&ats)
                .bind(&ips)
                .bind(&agents)
                .bind(&activities)
                .execute(&mut *tx)
                .await?;
            }
            for chunk in unused.chunks(ROWS) {
                let ids: Vec<Uuid> = chunk.iter().map(|u| u.key_id).collect();
                let activities: Vec<String> = chunk.iter().map(|u| u.activity.clone()).collect();
                sqlx::query(
                    "UPDATE keys SET activity = v.activity \
                     FROM unnest($1::uuid[], $2::text[]) AS v(id, activity) WHERE keys.id = v.id",
                )
                .bind(&ids)
                .bind(&activities)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
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
        if events.is_empty() {
            return Ok(());
        }
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            insert_events(&mut tx, events).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
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
        stream::feed_after(&self.pool, after, limit).await
    }

    async fn feed_bounds(&self) -> StoreResult<FeedBounds> {
        stream::feed_bounds(&self.pool).await
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
pub(crate) mod testing {
    //! Fresh databases for tests: one per test (`kb_test_<uuid>`), dropped at the end.

    use secrecy::SecretString;
    use sqlx::Connection;

    /// The server tests use: `KILLBILL_TEST_POSTGRES_URL`, else the local one.
    pub(crate) fn server_url() -> String {
        std::env::var("KILLBILL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A database created for one test, dropped (best effort) when this is dropped, even after
    /// a failed assertion.
    pub(crate) struct TestDatabase {
        pub(crate) name: String,
        pub(crate) url: SecretString,
    }

    impl TestDatabase {
        pub(crate) async fn create() -> Self {
            let name = format!("kb_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&server_url())
                .await
                .expect("PostgreSQL for the tests (KILLBILL_TEST_POSTGRES_URL)");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create the test database");
            let _ = admin.close().await;
            let base = server_url();
            let root = base.rsplit_once('/').map_or(base.as_str(), |(root, _)| root);
            Self {
                url: SecretString::from(format!("{root}/{name}")),
                name,
            }
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let name = self.name.clone();
            // A destructor cannot await: drop it from a thread with its own runtime.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&server_url()).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                        .ok()?;
                    admin.close().await.ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("could not drop test database {}", self.name);
            }
        }
    }
}
