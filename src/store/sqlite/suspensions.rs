//! Suspensions and security events on SQLite. One writer at a time: the checks ("the last
//! administrator", "suspended now") and the writes they guard cannot interleave with another
//! process's.

use sqlx::SqliteConnection;
use uuid::Uuid;

use super::{insert_event, insert_feed, revoke_where, SqliteStore};
use crate::domain::{Event, NewEvent, RevocationReason, Role, Suspension, Timestamp};
use crate::store::rows::{EventRow, SuspensionRow, EVENT_COLUMNS, SUSPENSION_COLUMNS};
use crate::store::{Cause, RevokedKey, StoreError, StoreResult};

/// A suspension in force: not lifted, not ended.
const IN_FORCE: &str = "lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > ?)";

/// The user's suspension in force at `now`, if any.
pub(super) async fn suspension_in_force(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    now: Timestamp,
) -> StoreResult<Option<Suspension>> {
    let row: Option<SuspensionRow> = sqlx::query_as(&format!(
        "SELECT {SUSPENSION_COLUMNS} FROM suspensions WHERE user_id = ? AND {IN_FORCE} \
         ORDER BY created_ms DESC LIMIT 1"
    ))
    .bind(user_id)
    .bind(now.as_millis())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Suspension::from))
}

/// Whether `user_id` is an administrator and no other administrator is in force (not
/// suspended) at `now`.
pub(super) async fn is_last_admin(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    now: Timestamp,
) -> StoreResult<bool> {
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if role.as_deref() != Some("ADMIN") {
        return Ok(false);
    }
    let others: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM users u WHERE u.role = 'ADMIN' AND u.id <> ? \
         AND NOT EXISTS (SELECT 1 FROM suspensions WHERE user_id = u.id AND {IN_FORCE})"
    ))
    .bind(user_id)
    .bind(now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(others == 0)
}

impl SqliteStore {
    pub(super) async fn suspend_user(
        &self,
        suspension: &Suspension,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let (user_id, now) = (suspension.user_id, suspension.created);
            let mut tx = self.begin_write().await?;
            if is_last_admin(&mut tx, user_id, now).await? {
                return Err(StoreError::LastAdmin);
            }
            sqlx::query(&format!(
                "UPDATE suspensions SET lifted_ms = ? WHERE user_id = ? AND {IN_FORCE}"
            ))
            .bind(now.as_millis())
            .bind(user_id)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO suspensions (id, user_id, reason, created_ms, until_ms, by_id, lifted_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, NULL)",
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
            insert_event(&mut tx, event).await?;
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
            let mut tx = self.begin_write().await?;
            let lifted: Option<SuspensionRow> = sqlx::query_as(&format!(
                "UPDATE suspensions SET lifted_ms = ? WHERE user_id = ? AND {IN_FORCE} \
                 RETURNING {SUSPENSION_COLUMNS}"
            ))
            .bind(now.as_millis())
            .bind(user_id)
            .bind(now.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(lifted) = lifted else {
                return Ok(None);
            };
            insert_event(&mut tx, event).await?;
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
            let mut tx = self.begin_write().await?;
            if role != Role::Admin && is_last_admin(&mut tx, user_id, event.at).await? {
                return Err(StoreError::LastAdmin);
            }
            let done = sqlx::query("UPDATE users SET role = ? WHERE id = ? AND role <> 'SERVICE'")
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
            insert_event(&mut tx, event).await?;
            insert_feed(&mut tx, user_id, &revoked, None, event.at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    pub(super) async fn list_suspensions(&self, user_id: Uuid) -> StoreResult<Vec<Suspension>> {
        let rows: Vec<SuspensionRow> = sqlx::query_as(&format!(
            "SELECT {SUSPENSION_COLUMNS} FROM suspensions WHERE user_id = ? ORDER BY created_ms DESC, lifted_ms IS NULL DESC, id"
        ))
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(Suspension::from).collect())
    }

    pub(super) async fn insert_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.writing(async {
            let mut tx = self.begin_write().await?;
            for event in events {
                insert_event(&mut tx, event).await?;
            }
            tx.commit().await
        })
        .await
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
                "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
            ))
                .bind(user_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?"
                ))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?
            }
        };
        rows.into_iter().map(Event::try_from).collect()
    }
}
