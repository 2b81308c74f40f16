//! [`Keys`] on PostgreSQL. Issuing a key first locks the user's row (`lock_user`): concurrent
//! sign-ins of one user, on any instance, queue, and each sees the keys the previous one left
//! (the key limit and eviction), and a password change or suspension being written.

use async_trait::async_trait;
use uuid::Uuid;

use super::statements::{
    insert_events, insert_feed, insert_key, lock_user, replace_verified_hash, revoke_where,
};
use super::suspensions::suspension_in_force;
use super::PgStore;
use crate::domain::{KeyDigest, KeyPolicy, NewEvent, RevocationReason, Timestamp, User};
use crate::store::keys::{KEY_WITH_OWNER, LIST_KEYS, LIVE_KEYS};
use crate::store::rows::{key_uses, KeyRow, KeyWithUserRow, LiveKeyRow};
use crate::store::{
    Cause, KeyRecord, KeyUsage, Keys, NewKey, RevokedKey, StoreError, StoreResult, VerifiedHash,
};

#[async_trait]
impl Keys for PgStore {
    async fn issue_key(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        policy: &KeyPolicy,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            // Concurrent sign-ins of this user, on any instance, queue here (and behind a
            // suspension or a password change being written).
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
        let row: Option<KeyWithUserRow> = sqlx::query_as(&format!("{} WHERE k.digest = $1", *KEY_WITH_OWNER))
            .bind(&digest.0[..])
            .fetch_optional(&self.pool)
            .await?;
        row.map(KeyWithUserRow::into_pair).transpose()
    }

    async fn revoke_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Option<RevokedKey>> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
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
            let mut tx = self.pool.begin().await?;
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
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
    }

    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<()> {
        self.writing(async {
            if batch.is_empty() {
                return Ok(());
            }
            // One statement per few thousand keys, the batch bound as arrays (SQLite's batches
            // are multi-row VALUES).
            const ROWS: usize = 5_000;
            let (used, unused): (Vec<&KeyUsage>, Vec<&KeyUsage>) =
                batch.iter().partition(|u| u.used.is_some());
            let mut tx = self.pool.begin().await?;
            for chunk in used.chunks(ROWS) {
                let mut ids = Vec::with_capacity(chunk.len());
                let mut ats = Vec::with_capacity(chunk.len());
                let mut ips = Vec::with_capacity(chunk.len());
                let mut agents: Vec<Option<String>> = Vec::with_capacity(chunk.len());
                let mut activities = Vec::with_capacity(chunk.len());
                let mut unless: Vec<Option<i64>> = Vec::with_capacity(chunk.len());
                for u in chunk {
                    if let Some(last) = &u.used {
                        ids.push(u.key_id);
                        ats.push(last.at.as_millis());
                        ips.push(last.ip.to_string());
                        agents.push(last.user_agent.clone());
                        activities.push(u.activity.clone());
                        unless.push(last.unless_stored_since.map(Timestamp::as_millis));
                    }
                }
                // greatest(): a late flush never moves last_used backwards. A routine write
                // that another instance made unneeded matches no row (and writes none).
                sqlx::query(
                    "UPDATE keys SET last_used_ms = greatest(coalesce(keys.last_used_ms, 0), v.at), \
                     last_ip = v.ip, user_agent = v.agent, activity = v.activity \
                     FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
                     AS v(id, at, ip, agent, activity, unless_since) WHERE keys.id = v.id \
                     AND (v.unless_since IS NULL OR coalesce(keys.last_used_ms, 0) < v.unless_since)",
                )
                .bind(&ids)
                .bind(&ats)
                .bind(&ips)
                .bind(&agents)
                .bind(&activities)
                .bind(&unless)
                .execute(&mut *tx)
                .await?;
            }
            for chunk in unused.chunks(ROWS) {
                let ids: Vec<Uuid> = chunk.iter().map(|u| u.key_id).collect();
                let activities: Vec<String> = chunk.iter().map(|u| u.activity.clone()).collect();
                sqlx::query(
                    "UPDATE keys SET activity = v.activity \
                     FROM unnest($1::uuid[], $2::text[]) AS v(id, activity) WHERE keys.id = v.id",
                )
                .bind(&ids)
                .bind(&activities)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
