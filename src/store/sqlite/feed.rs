//! [`RevocationFeed`] on SQLite, on the reader connections. Appends are in `statements`.

use async_trait::async_trait;

use super::SqliteStore;
use crate::domain::{FeedBounds, FeedEntry, KeyDigest};
use crate::store::feed::{self, bounds, FeedEntryRow};
use crate::store::rows::FeedRow;
use crate::store::{RevocationFeed, StoreResult};

#[async_trait]
impl RevocationFeed for SqliteStore {
    async fn revocation_feed_head(&self) -> StoreResult<i64> {
        let head: Option<i64> = sqlx::query_scalar(feed::HEAD).fetch_one(&self.read).await?;
        Ok(head.unwrap_or(0))
    }

    async fn revocations_since(&self, seq: i64) -> StoreResult<Vec<(i64, KeyDigest)>> {
        let rows: Vec<FeedRow> = sqlx::query_as(feed::SINCE)
            .bind(seq)
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(FeedRow::into_entry).collect()
    }

    async fn feed_after(&self, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>> {
        let rows: Vec<FeedEntryRow> = sqlx::query_as(&feed::AFTER)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(FeedEntry::from).collect())
    }

    async fn feed_bounds(&self) -> StoreResult<FeedBounds> {
        let ends: (Option<i64>, Option<i64>) = sqlx::query_as(feed::BOUNDS).fetch_one(&self.read).await?;
        Ok(bounds(ends))
    }
}
