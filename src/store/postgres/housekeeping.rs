//! [`Housekeeping`] on PostgreSQL: one instance at a time ([`HOUSEKEEPING_LOCK`]); an instance
//! that does not get the turn skips the round, another is doing the same work.

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;

use super::sql::housekeeping::expiry_candidates;
use super::PgStore;
use crate::domain::{KeyPolicy, Timestamp};
use crate::store::housekeeping::prune_plan;
use crate::store::rows::expired_keys;
use crate::store::{Housekeeping, PruneCutoffs, StoreResult};

/// Marks keys expired, each at its own deadline, if still live: thousands at once from arrays
/// (SQLite marks them one statement each).
const EXPIRE: &str = "UPDATE keys SET revoke_reason = 'expired', revoked_ms = v.at \
     FROM unnest($1::uuid[], $2::bigint[]) AS v(id, at) WHERE keys.id = v.id AND keys.revoked_ms IS NULL";

/// The feed loses a prefix only, up to its first entry young enough to keep ($1 the cutoff), and
/// never its newest (`RevocationFeed::feed_bounds`); entries carry the time of the revocation they
/// record, which is not always in `seq` order (an expired key is revoked as of its deadline).
/// (SQLite's has a planner hint, `+at_ms`.)
const PRUNE_FEED: &str = "DELETE FROM revocation_feed WHERE seq < coalesce(\
     (SELECT seq FROM revocation_feed WHERE at_ms >= $1 ORDER BY seq LIMIT 1), \
     (SELECT max(seq) FROM revocation_feed))";

/// The advisory lock of housekeeping (expiry and pruning), a constant every instance shares.
pub const HOUSEKEEPING_LOCK: i64 = 0x6b62_6175_7468_686b; // "kbauthhk"

/// Housekeeping runs on one instance at a time: whether this transaction got the turn (it holds
/// the lock until it ends). An instance that does not get it skips this round; another instance
/// is doing the same work.
async fn housekeeping_turn(tx: &mut PgConnection) -> StoreResult<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(HOUSEKEEPING_LOCK)
        .fetch_one(&mut *tx)
        .await?)
}

#[async_trait]
impl Housekeeping for PgStore {
    async fn expire_keys(&self, policy: &KeyPolicy, now: Timestamp) -> StoreResult<u64> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            if !housekeeping_turn(&mut tx).await? {
                return Ok(0);
            }
            let candidates = expiry_candidates(&mut tx, policy, now).await?;
            let mut expired = 0;
            for chunk in expired_keys(policy, now, candidates).chunks(10_000) {
                let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
                let ats: Vec<i64> = chunk.iter().map(|(_, at)| at.as_millis()).collect();
                let done = sqlx::query(EXPIRE)
                    .bind(&ids)
                    .bind(&ats)
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
            let mut tx = self.pool.begin().await?;
            if !housekeeping_turn(&mut tx).await? {
                return Ok(());
            }
            for (sql, before) in prune_plan(PRUNE_FEED, cutoffs) {
                sqlx::query(sql)
                    .bind(before.as_millis())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
