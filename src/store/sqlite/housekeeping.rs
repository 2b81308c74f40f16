//! [`Housekeeping`] on SQLite, in the write transaction: every statement answered by an index
//! (`housekeeping_reads_indexes_not_tables`), as it holds the write lock.

use async_trait::async_trait;

use super::sql::housekeeping::expiry_candidates;
use super::SqliteStore;
use crate::domain::{KeyPolicy, Timestamp};
use crate::store::housekeeping::prune_plan;
use crate::store::rows::expired_keys;
use crate::store::{Housekeeping, PruneCutoffs, StoreResult};

/// Marks one key expired at its deadline ($1), if it is still live: one statement per key
/// (PostgreSQL marks thousands at once from arrays).
pub(super) const EXPIRE: &str =
    "UPDATE keys SET revoke_reason = 'expired', revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL";

/// The feed loses a prefix only, up to its first entry young enough to keep ($1 the cutoff), and
/// never its newest (`RevocationFeed::feed_bounds`); entries carry the time of the revocation they
/// record, which is not always in `seq` order (an expired key is revoked as of its deadline).
/// `+at_ms` keeps SQLite off the index by age: walking the primary key from the oldest entry, it
/// reads the entries it deletes and stops at the first one it keeps
/// (`housekeeping_reads_indexes_not_tables`). PostgreSQL's planner needs no such hint.
pub(super) const PRUNE_FEED: &str = "DELETE FROM revocation_feed WHERE seq < coalesce(\
     (SELECT seq FROM revocation_feed WHERE +at_ms >= $1 ORDER BY seq LIMIT 1), \
     (SELECT max(seq) FROM revocation_feed))";

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn expire_keys(&self, policy: &KeyPolicy, now: Timestamp) -> StoreResult<u64> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let candidates = expiry_candidates(&mut tx, policy, now).await?;
            let mut expired = 0;
            for (id, at) in expired_keys(policy, now, candidates) {
                let done = sqlx::query(EXPIRE)
                    .bind(at.as_millis())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                expired += done.rows_affected();
            }
            tx.commit().await?;
            Ok(expired)
        })
        .await
    }

    async fn prune(&self, cutoffs: &PruneCutoffs) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            for (sql, before) in prune_plan(PRUNE_FEED, cutoffs) {
                sqlx::query(sql)
                    .bind(before.as_millis())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await
    }
}
