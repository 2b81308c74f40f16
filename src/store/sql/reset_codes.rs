//! Reset codes on both databases (compiled in each, see `sql/`): a redemption first locks the
//! user (`lock_user`: the row on PostgreSQL, SQLite's write lock already held), as every writer
//! of a password does, then deletes the code if it still matches: of concurrent redemptions on
//! any instances exactly one finds it.

use async_trait::async_trait;
use uuid::Uuid;

use super::dialect::{insert_feed, lock_user};
use super::steps::{insert_events, insert_key, revoke_where, set_native_hash, suspension_in_force};
use super::Store;
use crate::domain::reset_code::{ResetCodeDigest, StoredCode};
use crate::domain::{NewEvent, RevocationReason};
use crate::store::reset_codes::{CodeRow, Redeemed, ResetCodes, OF_USER, PUT, SPEND};
use crate::store::{Cause, NewKey, StoreError, StoreResult};

#[async_trait]
impl ResetCodes for Store {
    async fn put_reset_code(&self, user_id: Uuid, code: &StoredCode, event: &NewEvent) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(PUT)
                .bind(user_id)
                .bind(&code.digest.0[..])
                .bind(event.at.as_millis())
                .bind(code.expires.as_millis())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Gone);
            }
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn reset_code(&self, user_id: Uuid) -> StoreResult<Option<StoredCode>> {
        let row: Option<CodeRow> = sqlx::query_as(OF_USER)
            .bind(user_id)
            .fetch_optional(self.reader())
            .await?;
        row.map(CodeRow::into_code).transpose()
    }

    async fn redeem_reset_code(
        &self,
        user_id: Uuid,
        code: &ResetCodeDigest,
        phc: &str,
        new_key: &NewKey,
        event: &NewEvent,
    ) -> StoreResult<Redeemed> {
        self.writing(async {
            let at = new_key.created;
            let mut tx = self.begin_write().await?;
            lock_user(&mut tx, user_id).await?;
            let spent = sqlx::query(SPEND)
                .bind(user_id)
                .bind(&code.0[..])
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?;
            if spent.rows_affected() == 0 {
                return Err(StoreError::Gone);
            }
            set_native_hash(&mut tx, user_id, phc, at).await?;
            let revoked = revoke_where(
                &mut tx,
                user_id,
                None,
                RevocationReason::PasswordChanged,
                &Cause::new(at, event.network.as_deref()),
            )
            .await?;
            let suspension = suspension_in_force(&mut tx, user_id, at).await?;
            if suspension.is_none() {
                insert_key(&mut tx, new_key).await?;
            }
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &revoked, None, at).await?;
            tx.commit().await?;
            Ok(Redeemed { revoked, suspension })
        })
        .await
    }
}
