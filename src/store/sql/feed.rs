//! [`RevocationFeed`] on both databases (compiled in each, see `sql/`), on the reader
//! connections. Appends are the dialect's (`dialect::insert_feed`): `seq` order is commit order
//! (PostgreSQL appends under `FEED_LOCK` until commit, SQLite has one writer), so a read of the
//! rows after a `seq` misses none that commit later.

use async_trait::async_trait;

use super::Store;
use crate::domain::{FeedBounds, FeedEntry, KeyDigest};
use crate::store::feed::{self, bounds, FeedEntryRow};
use crate::store::rows::FeedRow;
use crate::store::{RevocationFeed, StoreResult};

#[async_trait]
impl RevocationFeed for Store {
    async fn revocation_feed_head(&self) -> StoreResult<i64> {
        let head: Option<i64> = sqlx::query_scalar(feed::HEAD).fetch_one(self.reader()).await?;
        Ok(head.unwrap_or(0))
    }

    async fn revocations_since(&self, seq: i64) -> StoreResult<Vec<(i64, KeyDigest)>> {
        let rows: Vec<FeedRow> = sqlx::query_as(feed::SINCE)
            .bind(seq)
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(FeedRow::into_entry).collect()
    }

    async fn feed_after(&self, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>> {
        let rows: Vec<FeedEntryRow> = sqlx::query_as(&feed::AFTER)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(FeedEntry::from).collect())
    }

    async fn feed_bounds(&self) -> StoreResult<FeedBounds> {
        let ends: (Option<i64>, Option<i64>) = sqlx::query_as(feed::BOUNDS).fetch_one(self.reader()).await?;
        Ok(bounds(ends))
    }
}
