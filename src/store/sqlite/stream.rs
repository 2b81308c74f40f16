//! The revocation stream's reads on SQLite (see `store::stream`), on the reader connections.

use sqlx::SqlitePool;

use crate::domain::{FeedBounds, FeedEntry};
use crate::store::stream::{bounds, FeedEntryRow, FEED_BOUNDS, FEED_ENTRY_COLUMNS};
use crate::store::StoreResult;

pub(super) async fn feed_after(pool: &SqlitePool, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>> {
    let rows: Vec<FeedEntryRow> = sqlx::query_as(&format!(
        "SELECT {FEED_ENTRY_COLUMNS} FROM revocation_feed \
         WHERE seq > ? AND key_id IS NOT NULL AND user_id IS NOT NULL AND reason IS NOT NULL \
         ORDER BY seq LIMIT ?"
    ))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(FeedEntry::from).collect())
}

pub(super) async fn feed_bounds(pool: &SqlitePool) -> StoreResult<FeedBounds> {
    let ends: (Option<i64>, Option<i64>) = sqlx::query_as(FEED_BOUNDS).fetch_one(pool).await?;
    Ok(bounds(ends))
}
