//! [`Activity`] on SQLite: one upsert per window and per network, then the totals read back, in
//! one write transaction. Row by row: SQLite has one writer, so neither ordering nor locks are
//! needed (PostgreSQL's batches from arrays, in one order, under per-key advisory locks).

use async_trait::async_trait;
use uuid::Uuid;

use super::SqliteStore;
use crate::domain::{ActivityDelta, SharedActivity, Timestamp};
use crate::store::rows::{merge_counts, shared_activity};
use crate::store::{Activity, StoreResult};

#[async_trait]
impl Activity for SqliteStore {
    async fn share_activity(
        &self,
        deltas: &[(Uuid, ActivityDelta)],
        counts_since: Timestamp,
        networks_since: Timestamp,
    ) -> StoreResult<Vec<(Uuid, SharedActivity)>> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        self.writing(async {
            let mut tx = self.begin_write().await?;
            for (key_id, delta) in deltas {
                for (window, n, served) in merge_counts(delta) {
                    sqlx::query(
                        "INSERT INTO key_request_counts (key_id, window_start_ms, count, served) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (key_id, window_start_ms) DO UPDATE \
                         SET count = count + excluded.count, served = served + excluded.served",
                    )
                    .bind(key_id)
                    .bind(window)
                    .bind(n)
                    .bind(served)
                    .execute(&mut *tx)
                    .await?;
                }
                for (network, seen) in &delta.networks {
                    sqlx::query(
                        "INSERT INTO key_networks (key_id, network, last_seen_ms) VALUES (?, ?, ?) \
                         ON CONFLICT (key_id, network) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
                    )
                    .bind(key_id)
                    .bind(network.to_string())
                    .bind(seen)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let mut totals = Vec::with_capacity(deltas.len());
            for (key_id, _) in deltas {
                let counts: Vec<(i64, i64, i64)> = sqlx::query_as(
                    "SELECT window_start_ms, count, served FROM key_request_counts WHERE key_id = ? AND window_start_ms >= ?",
                )
                .bind(key_id)
                .bind(counts_since.as_millis())
                .fetch_all(&mut *tx)
                .await?;
                let networks: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT network, last_seen_ms FROM key_networks WHERE key_id = ? AND last_seen_ms > ?",
                )
                .bind(key_id)
                .bind(networks_since.as_millis())
                .fetch_all(&mut *tx)
                .await?;
                totals.push((*key_id, shared_activity(counts, networks)));
            }
            tx.commit().await?;
            Ok(totals)
        })
        .await
    }
}
