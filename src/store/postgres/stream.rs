//! The revocation stream's reads on PostgreSQL (see `store::stream`). `seq` order is commit
//! order (`insert_feed` appends under `FEED_LOCK` until commit), so a read of the rows after a
//! `seq` misses none that commit later.

use sqlx::PgPool;

use crate::domain::{FeedBounds, FeedEntry};
use crate::store::stream::{bounds, FeedEntryRow, FEED_BOUNDS, FEED_ENTRY_COLUMNS};
use crate::store::StoreResult;

pub(super) async fn feed_after(pool: &PgPool, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>> {
    let rows: Vec<FeedEntryRow> = sqlx::query_as(&format!(
        "SELECT {FEED_ENTRY_COLUMNS} FROM revocation_feed \
         WHERE seq > $1 AND key_id IS NOT NULL AND user_id IS NOT NULL AND reason IS NOT NULL \
         ORDER BY seq LIMIT $2"
    ))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(FeedEntry::from).collect())
}

pub(super) async fn feed_bounds(pool: &PgPool) -> StoreResult<FeedBounds> {
    let ends: (Option<i64>, Option<i64>) = sqlx::query_as(FEED_BOUNDS).fetch_one(pool).await?;
    Ok(bounds(ends))
}
