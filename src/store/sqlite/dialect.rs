//! What the shared Rust (`store/sql/`) asks of SQLite where the dialects really differ: the
//! locks, none here (every write transaction starts with the one write lock, `BEGIN IMMEDIATE`,
//! so what it reads stays true until it commits), and the feed's append, row by row.

use uuid::Uuid;

use super::Conn;
use crate::domain::Timestamp;
use crate::store::accounts;
use crate::store::{RevokedKey, StoreResult};

/// Nothing to lock: the write transaction holds SQLite's one write lock already (PostgreSQL
/// locks the user's row).
pub(super) async fn lock_user(_conn: &mut Conn, _user_id: Uuid) -> StoreResult<()> {
    Ok(())
}

/// Nothing to lock: the write lock already serialises "the last administrator" checks
/// (PostgreSQL takes an advisory lock).
pub(super) async fn lock_admins(_conn: &mut Conn) -> StoreResult<()> {
    Ok(())
}

/// The password hash as a write reads it: a plain read under the write lock (PostgreSQL locks
/// the row).
pub(super) fn hash_for_write() -> &'static str {
    accounts::HASH_OF
}

/// Appends revoked or deleted keys of one user to the revocation feed: other processes drop them
/// from their caches, and `GET /revocations` streams them. Row by row: one writer at a time, so
/// `seq` order is commit order without a lock of its own (PostgreSQL's takes one, and appends
/// from arrays). `reason` overrides the keys' own (`account_deleted`).
pub(super) async fn insert_feed(
    conn: &mut Conn,
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
