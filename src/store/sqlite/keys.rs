//! [`Keys`] on SQLite. A key is issued inside the write lock (`BEGIN IMMEDIATE`), which
//! serialises it with every password change and every other sign-in: the key limit and the
//! verified hash hold until the commit. Keys are found by digest through the key reader
//! (`key_reader`), on the request's thread.

use async_trait::async_trait;
use uuid::Uuid;

use super::statements::{insert_events, insert_feed, insert_key, replace_verified_hash, revoke_where};
use super::suspensions::suspension_in_force;
use super::SqliteStore;
use crate::domain::{KeyDigest, KeyPolicy, NewEvent, RevocationReason, Timestamp, User};
use crate::store::keys::{LIST_KEYS, LIVE_KEYS};
use crate::store::rows::{key_uses, KeyRow, LiveKeyRow};
use crate::store::{
    Cause, KeyRecord, KeyUsage, Keys, NewKey, RevokedKey, StoreError, StoreResult, VerifiedHash,
};

#[async_trait]
impl Keys for SqliteStore {
    async fn issue_key(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        policy: &KeyPolicy,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            // The write lock (BEGIN IMMEDIATE) serialises this with every password change.
            let mut tx = self.begin_write().await?;
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
        self.keys.find_key(digest)
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
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
    }

    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<()> {
        self.writing(async {
            if batch.is_empty() {
                return Ok(());
            }
            // SQLite's own batching: multi-row UPDATE … FROM (VALUES …), one statement per few
            // hundred keys instead of one per key (each statement is a round trip to sqlx's
            // connection thread); PostgreSQL binds arrays instead.
            const ROWS: usize = 500;
            let (used, unused): (Vec<&KeyUsage>, Vec<&KeyUsage>) = batch.iter().partition(|u| u.used.is_some());
            let mut tx = self.begin_write().await?;
            for chunk in used.chunks(ROWS) {
                let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                // max(): a late flush never moves last_used backwards. A routine write that
                // another writer made unneeded matches no row.
                let sql = format!(
                    "UPDATE keys SET last_used_ms = max(coalesce(keys.last_used_ms, 0), v.column2), \
                     last_ip = v.column3, user_agent = v.column4, activity = v.column5 \
                     FROM (VALUES {values}) AS v WHERE keys.id = v.column1 \
                     AND (v.column6 IS NULL OR coalesce(keys.last_used_ms, 0) < v.column6)"
                );
                let mut query = sqlx::query(&sql);
                for u in chunk {
                    if let Some(last) = &u.used {
                        query = query
                            .bind(u.key_id)
                            .bind(last.at.as_millis())
                            .bind(last.ip.to_string())
                            .bind(last.user_agent.clone())
                            .bind(u.activity.clone())
                            .bind(last.unless_stored_since.map(Timestamp::as_millis));
                    }
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in unused.chunks(ROWS) {
                let values = vec!["(?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "UPDATE keys SET activity = v.column2 FROM (VALUES {values}) AS v WHERE keys.id = v.column1"
                );
                let mut query = sqlx::query(&sql);
                for u in chunk {
                    query = query.bind(u.key_id).bind(u.activity.clone());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await
        })
        .await
    }
}
