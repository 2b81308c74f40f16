//! What the shared Rust (`store/sql/`) asks of PostgreSQL where the dialects really differ.
//! Transactions run side by side here (READ COMMITTED, on this instance's pool and on others),
//! so the steps whose reads a decision rests on take a lock first: the user's row
//! ([`lock_user`]), the hash's row ([`hash_for_write`]), the administrators' advisory lock
//! ([`lock_admins`]), the feed's ([`FEED_LOCK`]). SQLite's write lock does all that.

use std::sync::LazyLock;

use uuid::Uuid;

use super::{listen, Conn};
use crate::domain::Timestamp;
use crate::store::accounts;
use crate::store::{RevokedKey, StoreResult};

/// Locks the user's row until the transaction ends (see the module `postgres`).
pub(super) async fn lock_user(conn: &mut Conn, user_id: Uuid) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// The advisory lock of "the last administrator" checks, a constant every instance shares.
pub const ADMINS_LOCK: i64 = 0x6b62_6175_7468_6164; // "kbauthad"

/// Takes [`ADMINS_LOCK`] until the transaction ends: two administrators suspending or deleting
/// each other at the same moment cannot leave none in force.
pub(super) async fn lock_admins(conn: &mut Conn) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADMINS_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The password hash as a write reads it: its row locked as it is read (an import's update of
/// it holds no user lock).
pub(super) fn hash_for_write() -> &'static str {
    static LOCKED: LazyLock<String> = LazyLock::new(|| format!("{} FOR UPDATE", accounts::HASH_OF));
    &LOCKED
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
/// One statement from arrays (SQLite's appends row by row, under its write lock).
pub(super) async fn insert_feed(
    conn: &mut Conn,
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
