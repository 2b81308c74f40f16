//! [`Suspensions`] on PostgreSQL. Several instances write at once, so the checks
//! and the writes they guard take locks: the user's row (a sign-in issuing a key waits for a
//! suspension being written, and sees it), and [`ADMINS_LOCK`] whenever an administrator is
//! suspended or deleted (two administrators suspending each other at the same moment cannot
//! leave none in force).

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;

use super::statements::{insert_events, insert_feed, lock_user, revoke_where};
use super::PgStore;
use crate::domain::{NewEvent, RevocationReason, Suspension, Timestamp};
use crate::store::rows::SuspensionRow;
use crate::store::suspensions::{self, END_IN_FORCE, IN_FORCE, LIFT, OTHER_ADMINS, ROLE_OF};
use crate::store::{Cause, RevokedKey, StoreError, StoreResult, Suspensions};

/// The advisory lock of "the last administrator" checks, a constant every instance shares.
pub const ADMINS_LOCK: i64 = 0x6b62_6175_7468_6164; // "kbauthad"

/// The user's suspension in force at `now`, if any.
pub(super) async fn suspension_in_force(
    conn: &mut PgConnection,
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

/// Whether `user_id` is an administrator and no other administrator is in force at `now`. Call
/// with the user's row locked; takes [`ADMINS_LOCK`] (until the transaction ends) when the user
/// is an administrator, so that the count cannot change before the caller commits.
pub(super) async fn is_last_admin(
    conn: &mut PgConnection,
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
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADMINS_LOCK)
        .execute(&mut *conn)
        .await?;
    let others: i64 = sqlx::query_scalar(OTHER_ADMINS)
        .bind(user_id)
        .bind(now.as_millis())
        .fetch_one(&mut *conn)
        .await?;
    Ok(others == 0)
}

#[async_trait]
impl Suspensions for PgStore {
    async fn suspend(&self, suspension: &Suspension, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let (user_id, now) = (suspension.user_id, suspension.created);
            let mut tx = self.pool.begin().await?;
            lock_user(&mut tx, user_id).await?;
            if is_last_admin(&mut tx, user_id, now).await? {
                return Err(StoreError::LastAdmin);
            }
            sqlx::query(END_IN_FORCE)
                .bind(now.as_millis())
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(suspensions::INSERT)
                .bind(suspension.id)
                .bind(user_id)
                .bind(&suspension.reason)
                .bind(now.as_millis())
                .bind(suspension.until.map(Timestamp::as_millis))
                .bind(suspension.by)
                .execute(&mut *tx)
                .await?;
            let cause = Cause::new(now, event.network.as_deref()).by(event.actor_id);
            let revoked = revoke_where(&mut tx, user_id, None, RevocationReason::Suspended, &cause).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &revoked, None, now).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn lift_suspension(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Option<Suspension>> {
        self.writing(async {
            let now = event.at;
            let mut tx = self.pool.begin().await?;
            let lifted: Option<SuspensionRow> = sqlx::query_as(&LIFT)
                .bind(now.as_millis())
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(lifted) = lifted else {
                return Ok(None);
            };
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
            Ok(Some(lifted.into()))
        })
        .await
    }

    async fn list_suspensions(&self, user_id: Uuid) -> StoreResult<Vec<Suspension>> {
        let rows: Vec<SuspensionRow> = sqlx::query_as(&suspensions::OF_USER)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Suspension::from).collect())
    }
}
