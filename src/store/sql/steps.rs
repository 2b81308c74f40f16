//! The steps that several concerns' write transactions share, the same Rust on both databases
//! (compiled in each, see `sql/`). Where a step's reads need a lock on PostgreSQL and nothing on
//! SQLite (whose write transaction, `BEGIN IMMEDIATE`, already holds the one write lock), it asks
//! the dialect's `dialect.rs`: the user's row (`lock_user`), the hash's row ([`hash_for_write`]),
//! the administrators' lock ([`lock_admins`]).

use uuid::Uuid;

use super::dialect::{hash_for_write, lock_admins};
use super::Conn;
use crate::domain::{NewEvent, RevocationReason, Suspension, Timestamp, User};
use crate::store::rows::{RevokedRow, SuspensionRow};
use crate::store::suspensions::{IN_FORCE, OTHER_ADMINS, ROLE_OF};
use crate::store::{accounts, events, keys};
use crate::store::{Cause, NewKey, RevokedKey, StoreError, StoreResult, VerifiedHash};

/// A new account's row: a taken name (regardless of case) is refused by the unique constraint.
pub(in crate::store) async fn insert_user(conn: &mut Conn, user: &User) -> StoreResult<()> {
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

/// Checks, after `lock_user`, that the account's password hash is still the one the caller
/// verified, and replaces it with `password.upgrade` if there is one (a hash made here: no
/// longer legacy). The hash is read as [`hash_for_write`] says (PostgreSQL locks its row: an
/// import's update of it holds no user lock), so what is read here stays true until the commit.
/// [`StoreError::Gone`] when the account is, [`StoreError::PasswordChanged`] when the hash
/// changed since it was read.
pub(in crate::store) async fn replace_verified_hash(
    conn: &mut Conn,
    user_id: Uuid,
    password: &VerifiedHash<'_>,
    at: Timestamp,
) -> StoreResult<()> {
    let stored: Option<String> = sqlx::query_scalar(hash_for_write())
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
pub(in crate::store) async fn set_native_hash(
    conn: &mut Conn,
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

pub(in crate::store) async fn insert_key(conn: &mut Conn, key: &NewKey) -> StoreResult<()> {
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
/// concurrent revocations of a key on PostgreSQL, the second waits for the first's row lock,
/// re-checks `revoked_ms IS NULL` and skips the row: each revocation is recorded once.
pub(in crate::store) async fn revoke_where(
    conn: &mut Conn,
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

/// Records security events in the caller's transaction, one statement each.
pub(in crate::store) async fn insert_events(conn: &mut Conn, events: &[NewEvent]) -> StoreResult<()> {
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

/// The user's suspension in force at `now`, if any.
pub(in crate::store) async fn suspension_in_force(
    conn: &mut Conn,
    user_id: Uuid,
    now: Timestamp,
) -> StoreResult<Option<Suspension>> {
    let row: Option<SuspensionRow> = sqlx::query_as(&IN_FORCE)
        .bind(user_id)
        .bind(now.as_millis())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(Suspension::from))
}

/// Whether `user_id` is an administrator and no other administrator is in force (not
/// suspended) at `now`. Call after `lock_user`; when the user is an administrator it takes
/// [`lock_admins`] before counting the others, so that the count cannot change before the
/// caller commits.
pub(in crate::store) async fn is_last_admin(
    conn: &mut Conn,
    user_id: Uuid,
    now: Timestamp,
) -> StoreResult<bool> {
    let role: Option<String> = sqlx::query_scalar(ROLE_OF)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if role.as_deref() != Some("ADMIN") {
        return Ok(false);
    }
    lock_admins(conn).await?;
    let others: i64 = sqlx::query_scalar(OTHER_ADMINS)
        .bind(user_id)
        .bind(now.as_millis())
        .fetch_one(&mut *conn)
        .await?;
    Ok(others == 0)
}
