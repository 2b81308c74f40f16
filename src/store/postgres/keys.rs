//! What [`crate::store::Keys`] does its own way on PostgreSQL (the rest is in
//! `store/sql/keys.rs`): a key is found by digest on the pool, and usage is written from arrays.

use std::collections::HashSet;

use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use crate::domain::{KeyDigest, Timestamp, User};
use crate::store::keys::KEY_WITH_OWNER;
use crate::store::rows::KeyWithUserRow;
use crate::store::{KeyRecord, KeyUsage, StoreResult, StoredUse};

impl PgStore {
    /// `Keys::find_key`.
    pub(super) async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        let row: Option<KeyWithUserRow> = sqlx::query_as(&format!("{} WHERE k.digest = $1", *KEY_WITH_OWNER))
            .bind(&digest.0[..])
            .fetch_optional(&self.pool)
            .await?;
        row.map(KeyWithUserRow::into_pair).transpose()
    }

    /// `Keys::record_usage`.
    pub(super) async fn write_usage(&self, batch: &[KeyUsage]) -> StoreResult<Vec<StoredUse>> {
        self.writing(async {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            // One statement per few thousand keys, the batch bound as arrays (SQLite's batches
            // are multi-row VALUES).
            const ROWS: usize = 5_000;
            let (used, unused): (Vec<&KeyUsage>, Vec<&KeyUsage>) =
                batch.iter().partition(|u| u.used.is_some());
            let mut tx = self.pool.begin().await?;
            let mut skipped = Vec::new();
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
                let unneeded_if_stored: Vec<Uuid> = ids
                    .iter()
                    .zip(&unless)
                    .filter(|(_, since)| since.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                // greatest(): a late flush never moves last_used backwards, nor replaces the
                // address and user agent of a newer use (the right-hand sides read the row as it
                // was). A routine write that another instance made unneeded matches no row (and
                // writes none); a row another instance is writing meanwhile is judged on what
                // that one commits.
                let written: HashSet<Uuid> = sqlx::query(
                    "UPDATE keys SET last_used_ms = greatest(coalesce(keys.last_used_ms, 0), v.at), \
                     last_ip = CASE WHEN v.at >= coalesce(keys.last_used_ms, 0) THEN v.ip ELSE keys.last_ip END, \
                     user_agent = CASE WHEN v.at >= coalesce(keys.last_used_ms, 0) THEN v.agent ELSE keys.user_agent END, \
                     activity = v.activity \
                     FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
                     AS v(id, at, ip, agent, activity, unless_since) WHERE keys.id = v.id \
                     AND (v.unless_since IS NULL OR coalesce(keys.last_used_ms, 0) < v.unless_since) \
                     RETURNING keys.id",
                )
                .bind(&ids)
                .bind(&ats)
                .bind(&ips)
                .bind(&agents)
                .bind(&activities)
                .bind(&unless)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
                // The routine writes that matched no row: the use stored instead (read after the
                // UPDATE, so a concurrent writer's committed use is seen).
                let unneeded: Vec<Uuid> = unneeded_if_stored
                    .into_iter()
                    .filter(|id| !written.contains(id))
                    .collect();
                if !unneeded.is_empty() {
                    let stored: Vec<(Uuid, i64)> = sqlx::query_as(
                        "SELECT id, last_used_ms FROM keys WHERE id = ANY($1) AND last_used_ms IS NOT NULL",
                    )
                    .bind(&unneeded)
                    .fetch_all(&mut *tx)
                    .await?;
                    skipped.extend(stored.into_iter().map(|(key_id, at)| StoredUse {
                        key_id,
                        last_used: Timestamp::from_millis(at),
                    }));
                }
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
            Ok(skipped)
        })
        .await
    }
}
