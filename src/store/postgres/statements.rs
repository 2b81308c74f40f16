//! The steps that several concerns' write transactions share on PostgreSQL. Transactions run
//! side by side here (READ COMMITTED, on this instance's pool and on others), so the steps whose
//! reads a decision rests on take a lock first: the user's row ([`lock_user`]), the hash's row
//! (`FOR UPDATE`), the feed's advisory lock ([`FEED_LOCK`]). SQLite's write lock does all that.

use sqlx::PgConnection;
use uuid::Uuid;

use super::listen;
use crate::domain::{NewEvent, RevocationReason, Timestamp, User};
use crate::store::rows::RevokedRow;
use crate::store::{accounts, events, keys};
use crate::store::{Cause, NewKey, RevokedKey, StoreError, StoreResult, VerifiedHash};

/// Locks the user's row until the transaction ends (see the module `postgres`).
pub(super) async fn lock_user(conn: &mut PgConnection, user_id: Uuid) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// A new account's row: a taken name (regardless of case) is refused by the unique constraint.
pub(super) async fn insert_user(conn: &mut PgConnection, user: &User) -> StoreResult<()> {
    sqlx::query(accounts::INSERT_USER)
        .bind(user.id)
        .bind(user.name.as_str())
        .bind(user.name.canonical())
        .bind(user.role.as_str())
        .bind(user.created.as_millis())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Checks, after [`lock_user`], that the account's password hash is still the one the caller
/// verified, and replaces it with `password.upgrade` if there is one (a hash made here: no
/// longer legacy). The hash's row is locked as it is read (an import's update of it holds no
/// user lock), so what is read here stays true until the commit. [`StoreError::Gone`] when the
/// account is, [`StoreError::PasswordChanged`] when the hash changed since it was read.
pub(super) async fn replace_verified_hash(
    conn: &mut PgConnection,
    user_id: Uuid,
    password: &VerifiedHash<'_>,
    at: Timestamp,
) -> StoreResult<()> {
    let stored: Option<String> = sqlx::query_scalar(&format!("{} FOR UPDATE", accounts::HASH_OF))
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
pub(super) async fn set_native_hash(
    conn: &mut PgConnection,
    user_id: Uuid,
    phc: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(accounts::SET_NATIVE_HASH)
        .bind(phc)
        .bind(at.as_millis())
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn insert_key(conn: &mut PgConnection, key: &NewKey) -> StoreResult<()> {
    let ip = key.created_ip.map(|ip| ip.to_string());
    sqlx::query(keys::INSERT_KEY)
        .bind(key.id)
        .bind(key.user_id)
        .bind(&key.digest.0[..])
        .bind(key.created.as_millis())
        .bind(&ip)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks live keys revoked (only those still live) and records one event each. Of two
/// concurrent revocations of a key, the second waits for the first's row lock, re-checks
/// `revoked_ms IS NULL` and skips the row: each revocation is recorded once.
pub(super) async fn revoke_where(
    conn: &mut PgConnection,
    user_id: Uuid,
    key_ids: Option<&[Uuid]>,
    reason: RevocationReason,
    cause: &Cause<'_>,
) -> StoreResult<Vec<RevokedKey>> {
    let (at, network) = (cause.at, cause.network);
    let rows: Vec<RevokedRow> = match key_ids {
        None => {
            sqlx::query_as(keys::REVOKE_ALL)
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
                let row: Option<RevokedRow> = sqlx::query_as(keys::REVOKE_ONE)
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
    let events: Vec<NewEvent> = rows
        .iter()
        .map(|row| NewEvent::key_revoked(user_id, row.id, reason, at, network).by(cause.actor))
        .collect();
    insert_events(conn, &events).await?;
    rows.into_iter().map(|row| row.revoked(reason)).collect()
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

/// Records security events in the caller's transaction, one statement each (as SQLite does).
pub(super) async fn insert_events(conn: &mut PgConnection, events: &[NewEvent]) -> StoreResult<()> {
    for event in events {
        sqlx::query(events::INSERT_EVENT)
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
