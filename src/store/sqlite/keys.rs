//! What [`crate::store::Keys`] does its own way on SQLite (the rest is in `store/sql/keys.rs`):
//! keys are found by digest through the key reader (`key_reader`), on the request's thread, and
//! usage is written in multi-row `VALUES` batches.

use std::collections::HashSet;

use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use crate::domain::{KeyDigest, Timestamp, User};
use crate::store::{KeyRecord, KeyUsage, StoreResult, StoredUse};

impl SqliteStore {
    /// `Keys::find_key`.
    pub(super) async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        self.keys.find_key(digest)
    }

    /// `Keys::record_usage`.
    pub(super) async fn write_usage(&self, batch: &[KeyUsage]) -> StoreResult<Vec<StoredUse>> {
        self.writing(async {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            // SQLite's own batching: multi-row UPDATE … FROM (VALUES …), one statement per few
            // hundred keys instead of one per key (each statement is a round trip to sqlx's
            // connection thread); PostgreSQL binds arrays instead.
            const ROWS: usize = 500;
            let (used, unused): (Vec<&KeyUsage>, Vec<&KeyUsage>) = batch.iter().partition(|u| u.used.is_some());
            let mut tx = self.begin_write().await?;
            let mut skipped = Vec::new();
            for chunk in used.chunks(ROWS) {
                let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                // max(): a late flush never moves last_used backwards, nor replaces the address
                // and user agent of a newer use (the right-hand sides read the row as it was).
                // A routine write that another writer made unneeded matches no row.
                let sql = format!(
                    "UPDATE keys SET last_used_ms = max(coalesce(keys.last_used_ms, 0), v.column2), \
                     last_ip = CASE WHEN v.column2 >= coalesce(keys.last_used_ms, 0) THEN v.column3 ELSE keys.last_ip END, \
                     user_agent = CASE WHEN v.column2 >= coalesce(keys.last_used_ms, 0) THEN v.column4 ELSE keys.user_agent END, \
                     activity = v.column5 \
                     FROM (VALUES {values}) AS v WHERE keys.id = v.column1 \
                     AND (v.column6 IS NULL OR coalesce(keys.last_used_ms, 0) < v.column6) \
                     RETURNING keys.id"
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
                let written: HashSet<Uuid> = query.fetch_all(&mut *tx).await?.iter().map(|r| r.get(0)).collect();
                // The routine writes that matched no row: the use stored instead, as this
                // transaction sees it.
                let unneeded: Vec<Uuid> = chunk
                    .iter()
                    .filter(|u| u.used.as_ref().is_some_and(|l| l.unless_stored_since.is_some()))
                    .map(|u| u.key_id)
                    .filter(|id| !written.contains(id))
                    .collect();
                if !unneeded.is_empty() {
                    let sql = format!(
                        "SELECT id, last_used_ms FROM keys WHERE last_used_ms IS NOT NULL AND id IN ({})",
                        vec!["?"; unneeded.len()].join(", ")
                    );
                    let mut query = sqlx::query_as::<_, (Uuid, i64)>(&sql);
                    for id in &unneeded {
                        query = query.bind(id);
                    }
                    for (key_id, at) in query.fetch_all(&mut *tx).await? {
                        skipped.push(StoredUse {
                            key_id,
                            last_used: Timestamp::from_millis(at),
                        });
                    }
                }
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
            tx.commit().await?;
            Ok(skipped)
        })
        .await
    }
}
