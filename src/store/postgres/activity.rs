//! [`Activity`] on PostgreSQL: every instance adds to the same rows at once, so the batch is
//! upserted from arrays in one order (key, then window or network: no deadlock between two
//! instances), and networks under a per-key advisory lock (SQLite's single writer needs neither).

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::PgStore;
use crate::domain::{ActivityDelta, SharedActivity, Timestamp};
use crate::store::rows::{merge_counts, shared_activity, unzip3};
use crate::store::{Activity, StoreResult};

/// The advisory lock of one key's shared networks (see `share_activity`).
fn activity_lock(key: Uuid) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"killbill-auth activity\0")
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[async_trait]
impl Activity for PgStore {
    async fn share_activity(
        &self,
        deltas: &[(Uuid, ActivityDelta)],
        counts_since: Timestamp,
        networks_since: Timestamp,
    ) -> StoreResult<Vec<(Uuid, SharedActivity)>> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        // Rows in one order on every instance (key, then window or network), so that two
        // instances adding to the same keys at once cannot deadlock.
        let mut counts: Vec<(Uuid, i64, i64, i64)> = Vec::new();
        let mut networks: Vec<(Uuid, String, i64)> = Vec::new();
        for (key_id, delta) in deltas {
            for (window, n, served) in merge_counts(delta) {
                counts.push((*key_id, window, n, served));
            }
            for (network, seen) in &delta.networks {
                networks.push((*key_id, network.to_string(), *seen));
            }
        }
        counts.sort_unstable();
        counts.dedup_by(|later, first| {
            let same = later.0 == first.0 && later.1 == first.1;
            if same {
                first.2 = first.2.saturating_add(later.2);
                first.3 = first.3.saturating_add(later.3);
            }
            same
        });
        networks.sort_unstable();
        networks.dedup_by(|later, first| {
            let same = later.0 == first.0 && later.1 == first.1;
            if same {
                first.2 = first.2.max(later.2);
            }
            same
        });
        // Networks are read back only for keys that brought one: the union grows only when an
        // instance shares a network, and that instance then sees it whole. Two instances adding
        // networks to one key at once take turns on the key's advisory lock, so the second sees
        // the first's.
        let mut network_keys: Vec<Uuid> = networks.iter().map(|(k, _, _)| *k).collect();
        network_keys.dedup();
        let mut key_locks: Vec<i64> = network_keys.iter().map(|k| activity_lock(*k)).collect();
        key_locks.sort_unstable();
        key_locks.dedup();
        let keys: Vec<Uuid> = deltas.iter().map(|(id, _)| *id).collect();
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            // The totals of the windows this instance added to, as the upsert leaves them (a
            // concurrent upsert of the same row waits for this one, and sees its sum): no second
            // read of every shared key.
            let mut count_rows: Vec<(Uuid, i64, i64, i64)> = Vec::new();
            if !counts.is_empty() {
                let (ids, windows, ns): (Vec<Uuid>, Vec<i64>, Vec<i64>) =
                    unzip3(counts.iter().map(|(k, w, n, _)| (*k, *w, *n)));
                let served: Vec<i64> = counts.iter().map(|c| c.3).collect();
                count_rows = sqlx::query_as(
                    "INSERT INTO key_request_counts (key_id, window_start_ms, count, served) \
                     SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                     ON CONFLICT (key_id, window_start_ms) DO UPDATE \
                     SET count = key_request_counts.count + excluded.count, \
                         served = key_request_counts.served + excluded.served \
                     RETURNING key_id, window_start_ms, count, served",
                )
                .bind(&ids)
                .bind(&windows)
                .bind(&ns)
                .bind(&served)
                .fetch_all(&mut *tx)
                .await?;
            }
            let mut network_rows: Vec<(Uuid, String, i64)> = Vec::new();
            if !networks.is_empty() {
                sqlx::query("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, n)")
                    .bind(&key_locks)
                    .execute(&mut *tx)
                    .await?;
                let (ids, nets, seen): (Vec<Uuid>, Vec<String>, Vec<i64>) = unzip3(networks.iter().cloned());
                sqlx::query(
                    "INSERT INTO key_networks (key_id, network, last_seen_ms) \
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[]) \
                     ON CONFLICT (key_id, network) DO UPDATE \
                     SET last_seen_ms = GREATEST(key_networks.last_seen_ms, excluded.last_seen_ms)",
                )
                .bind(&ids)
                .bind(&nets)
                .bind(&seen)
                .execute(&mut *tx)
                .await?;
                network_rows = sqlx::query_as(
                    "SELECT key_id, network, last_seen_ms FROM key_networks \
                     WHERE key_id = ANY($1) AND last_seen_ms > $2",
                )
                .bind(&network_keys)
                .bind(networks_since.as_millis())
                .fetch_all(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            // Grouped in one pass (a second's share may hold tens of thousands of keys).
            type Rows = (Vec<(i64, i64, i64)>, Vec<(String, i64)>);
            let mut by_key: std::collections::HashMap<Uuid, Rows> =
                keys.iter().map(|k| (*k, (Vec::new(), Vec::new()))).collect();
            for (key, window, count, served) in count_rows {
                if window >= counts_since.as_millis() {
                    if let Some((counts, _)) = by_key.get_mut(&key) {
                        counts.push((window, count, served));
                    }
                }
            }
            for (key, network, seen) in network_rows {
                if let Some((_, networks)) = by_key.get_mut(&key) {
                    networks.push((network, seen));
                }
            }
            Ok(by_key
                .into_iter()
                .map(|(key, (counts, networks))| (key, shared_activity(counts, networks)))
                .collect())
        })
        .await
    }
}
