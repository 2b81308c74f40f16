//! The steps that several concerns' write transactions share on SQLite: every one runs inside a
//! write transaction ([`super::WriteTx`], `BEGIN IMMEDIATE`), so what a step reads stays true
//! until the commit: SQLite has one writer, and no other lock is needed.

use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::domain::{NewEvent, RevocationReason, Timestamp, User};
use crate::store::rows::RevokedRow;
use crate::store::{accounts, events, keys};
use crate::store::{Cause, NewKey, RevokedKey, StoreError, StoreResult, VerifiedHash};

/// A new account's row: a taken name (regardless of case) is refused by the unique constraint.
pub(super) async fn insert_user(conn: &mut SqliteConnection, user: &User) -> StoreResult<()> {
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

/// Checks that the account's password hash is still the one the caller verified, and replaces
/// it with `password.upgrade` if there is one (a hash made here: no longer legacy).
/// [`StoreError::Gone`] when the account is, [`StoreError::PasswordChanged`] when the hash
/// changed since it was read.
pub(super) async fn replace_verified_hash(
    tx: &mut SqliteConnection,
    user_id: Uuid,
    password: &VerifiedHash<'_>,
    at: Timestamp,
) -> StoreResult<()> {
    let stored: Option<String> = sqlx::query_scalar(accounts::HASH_OF)
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
pub(super) async fn set_native_hash(
    tx: &mut SqliteConnection,
    user_id: Uuid,
    phc: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(accounts::SET_NATIVE_HASH)
        .bind(phc)
        .bind(at.as_millis())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_key(conn: &mut SqliteConnection, key: &NewKey) -> StoreResult<()> {
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

/// Marks live keys revoked (only those still live) and records one event each.
pub(super) async fn revoke_where(
    conn: &mut SqliteConnection,
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

/// Appends revoked or deleted keys of one user to the revocation feed: other processes drop them
/// from their caches, and `GET /revocations` streams them. Row by row: one writer at a time, so
/// `seq` order is commit order without a lock of its own (PostgreSQL's takes one). `reason`
/// overrides the keys' own (`account_deleted`).
pub(super) async fn insert_feed(
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

/// Records security events in the caller's transaction, one statement each (as PostgreSQL
/// does).
pub(super) async fn insert_events(conn: &mut SqliteConnection, events: &[NewEvent]) -> StoreResult<()> {
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
