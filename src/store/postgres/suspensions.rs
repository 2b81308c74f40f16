//! Suspensions and security events on PostgreSQL. Several instances write at once, so the checks
//! and the writes they guard take locks: the user's row (a sign-in issuing a key waits for a
//! suspension being written, and sees it), and [`ADMINS_LOCK`] whenever an administrator is
//! suspended or deleted (two administrators suspending each other at the same moment cannot
//! leave none in force).

use sqlx::PgConnection;
use uuid::Uuid;

use super::{insert_events, insert_feed, lock_user, revoke_where, PgStore};
use crate::domain::{Event, NewEvent, RevocationReason, Role, Suspension, Timestamp};
use crate::store::rows::{EventRow, SuspensionRow, EVENT_COLUMNS, SUSPENSION_COLUMNS};
use crate::store::{Cause, RevokedKey, StoreError, StoreResult};

/// The advisory lock of "the last administrator" checks, a constant every instance shares.
pub const ADMINS_LOCK: i64 = 0x6b62_6175_7468_6164; // "kbauthad"

/// The user's suspension in force at `now`, if any.
pub(super) async fn suspension_in_force(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: Timestamp,
) -> StoreResult<Option<Suspension>> {
    let row: Option<SuspensionRow> = sqlx::query_as(&format!(
        "SELECT {SUSPENSION_COLUMNS} FROM suspensions \
         WHERE user_id = $1 AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > $2) \
         ORDER BY created_ms DESC LIMIT 1"
    ))
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
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
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
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users u WHERE u.role = 'ADMIN' AND u.id <> $1 \
         AND NOT EXISTS (SELECT 1 FROM suspensions s WHERE s.user_id = u.id \
                         AND s.lifted_ms IS NULL AND (s.until_ms IS NULL OR s.until_ms > $2))",
    )
    .bind(user_id)
    .bind(now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(others == 0)
}

impl PgStore {
    pub(super) async fn suspend_user(
        &self,
        suspension: &Suspension,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let (user_id, now) = (suspension.user_id, suspension.created);
            let mut tx = self.pool.begin().await?;
            lock_user(&mut tx, user_id).await?;
            if is_last_admin(&mut tx, user_id, now).await? {
                return Err(StoreError::LastAdmin);
            }
            sqlx::query(
                "UPDATE suspensions SET lifted_ms = $1 \
                 WHERE user_id = $2 AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > $1)",
            )
            .bind(now.as_millis())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO suspensions (id, user_id, reason, created_ms, until_ms, by_id, lifted_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            )
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

    pub(super) async fn lift_user_suspension(
        &self,
        user_id: Uuid,
        event: &NewEvent,
    ) -> StoreResult<Option<Suspension>> {
        self.writing(async {
            let now = event.at;
            let mut tx = self.pool.begin().await?;
            let lifted: Option<SuspensionRow> = sqlx::query_as(&format!(
                "UPDATE suspensions SET lifted_ms = $1 \
                 WHERE user_id = $2 AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > $1) \
                 RETURNING {SUSPENSION_COLUMNS}"
            ))
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

    pub(super) async fn change_role(
        &self,
        user_id: Uuid,
        role: Role,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            lock_user(&mut tx, user_id).await?;
            if role != Role::Admin && is_last_admin(&mut tx, user_id, event.at).await? {
                return Err(StoreError::LastAdmin);
            }
            let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND role <> 'SERVICE'")
                .bind(role.as_str())
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(Vec::new());
            }
            // Every process caches keys with their owner's role: the keys go, and the next
            // sign-in carries the new role everywhere at once.
            let cause = Cause::new(event.at, None).by(event.actor_id);
            let revoked = revoke_where(&mut tx, user_id, None, RevocationReason::Admin, &cause).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &revoked, None, event.at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    pub(super) async fn list_suspensions(&self, user_id: Uuid) -> StoreResult<Vec<Suspension>> {
        let rows: Vec<SuspensionRow> = sqlx::query_as(&format!(
            "SELECT {SUSPENSION_COLUMNS} FROM suspensions WHERE user_id = $1 ORDER BY created_ms DESC, lifted_ms IS NULL DESC, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Suspension::from).collect())
    }

    pub(super) async fn list_events(
        &self,
        user_id: Option<Uuid>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let before = before.unwrap_or(i64::MAX);
        let rows: Vec<EventRow> = match user_id {
            Some(user_id) => {
                sqlx::query_as(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
                ))
                .bind(user_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
                ))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(Event::try_from).collect()
    }
}
