//! [`Keys`] on both databases (compiled in each, see `sql/`). Issuing a key first locks the
//! user (`lock_user`: the row on PostgreSQL, SQLite's write lock already held): concurrent
//! sign-ins of one user, on any instance, queue, and each sees the keys the previous one left
//! (the key limit and eviction), and a password change or suspension being written. Finding a
//! key by digest and writing usage batches differ by dialect (each's `keys.rs`).

use async_trait::async_trait;
use uuid::Uuid;

use super::dialect::{insert_feed, lock_user};
use super::steps::{insert_events, insert_key, replace_verified_hash, revoke_where, suspension_in_force};
use super::Store;
use crate::domain::{KeyDigest, KeyPolicy, NewEvent, RevocationReason, Timestamp, User};
use crate::store::keys::{LIST_KEYS, LIVE_KEYS};
use crate::store::rows::{key_uses, KeyRow, LiveKeyRow};
use crate::store::{
    Cause, KeyRecord, KeyUsage, Keys, NewKey, RevokedKey, StoreError, StoreResult, StoredUse, VerifiedHash,
};

#[async_trait]
impl Keys for Store {
    async fn issue_key(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        policy: &KeyPolicy,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            // Concurrent sign-ins of this user, on any instance, queue here (and behind a
            // suspension or a password change being written); SQLite's write lock is held already.
            lock_user(&mut tx, key.user_id).await?;
            replace_verified_hash(&mut tx, key.user_id, password, key.created).await?;
            if let Some(suspension) = suspension_in_force(&mut tx, key.user_id, key.created).await? {
                return Err(StoreError::Suspended(suspension));
            }
            let rows: Vec<LiveKeyRow> = sqlx::query_as(&LIVE_KEYS)
                .bind(key.user_id)
                .fetch_all(&mut *tx)
                .await?;
            let plan = policy.plan_issue(&key_uses(&rows), key.created);
            if plan.refused {
                // Nothing written: the expired keys are marked by housekeeping or the next sign-in.
                return Err(StoreError::KeyLimit);
            }
            let mut revoked = Vec::new();
            for (id, at) in plan.expired {
                let one = [id];
                let expired = revoke_where(
                    &mut tx,
                    key.user_id,
                    Some(&one),
                    RevocationReason::Expired,
                    &Cause::new(at, None),
                )
                .await?;
                revoked.extend(expired);
            }
            if !plan.evicted.is_empty() {
                let ip = key.created_ip.map(|ip| ip.to_string());
                let evicted = revoke_where(
                    &mut tx,
                    key.user_id,
                    Some(&plan.evicted),
                    RevocationReason::Evicted,
                    &Cause::new(key.created, ip.as_deref()),
                )
                .await?;
                revoked.extend(evicted);
            }
            insert_key(&mut tx, key).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, key.user_id, &revoked, None, key.created).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn find_key(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        self.key_by_digest(digest).await
    }

    async fn revoke_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Option<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let revoked = revoke_where(&mut tx, user_id, Some(&[key_id]), reason, cause).await?;
            insert_feed(&mut tx, user_id, &revoked, None, cause.at).await?;
            tx.commit().await?;
            Ok(revoked.into_iter().next())
        })
        .await
    }

    async fn revoke_user_keys(
        &self,
        user_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            // A sign-in committing meanwhile leaves its key live, as it would have after this.
            lock_user(&mut tx, user_id).await?;
            let revoked = revoke_where(&mut tx, user_id, None, reason, cause).await?;
            insert_feed(&mut tx, user_id, &revoked, None, cause.at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn list_keys(&self, user_id: Uuid, revoked_since: Timestamp) -> StoreResult<Vec<KeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(&LIST_KEYS)
            .bind(user_id)
            .bind(revoked_since.as_millis())
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
    }

    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<Vec<StoredUse>> {
        self.write_usage(batch).await
    }
}
