//! [`Suspensions`] on both databases (compiled in each, see `sql/`). The checks ("the last
//! administrator", "suspended now") and the writes they guard cannot interleave with another
//! writer's: a suspension first locks the user (`lock_user`: the row on PostgreSQL, so that a
//! sign-in issuing a key waits for it and sees it; SQLite's write lock already held), and "the
//! last administrator" takes `lock_admins` (two administrators suspending each other at the same
//! moment cannot leave none in force).

use async_trait::async_trait;
use uuid::Uuid;

use super::dialect::{insert_feed, lock_user};
use super::steps::{insert_events, is_last_admin, revoke_where};
use super::Store;
use crate::domain::{NewEvent, RevocationReason, Suspension, Timestamp};
use crate::store::rows::SuspensionRow;
use crate::store::suspensions::{self, END_IN_FORCE, LIFT};
use crate::store::{Cause, RevokedKey, StoreError, StoreResult, Suspensions};

#[async_trait]
impl Suspensions for Store {
    async fn suspend(&self, suspension: &Suspension, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let (user_id, now) = (suspension.user_id, suspension.created);
            let mut tx = self.begin_write().await?;
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
            let mut tx = self.begin_write().await?;
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
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(Suspension::from).collect())
    }
}
