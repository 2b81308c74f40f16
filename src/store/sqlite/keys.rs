//! What [`crate::store::Keys`] does its own way on SQLite (the rest is in `store/sql/keys.rs`):
//! keys are found by digest through the key reader (`key_reader`), on the request's thread, and
//! usage is written in multi-row `VALUES` batches.

use super::SqliteStore;
use crate::domain::{KeyDigest, Timestamp, User};
use crate::store::{KeyRecord, KeyUsage, StoreResult};

impl SqliteStore {
    /// `Keys::find_key`.
    pub(super) async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        self.keys.find_key(digest)
    }

    /// `Keys::record_usage`.
    pub(super) async fn write_usage(&self, batch: &[KeyUsage]) -> StoreResult<()> {
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
