//! The revocation feed: every key revoked or deleted, in commit order, read by the other
//! processes (to forget cached keys) and by the revocation stream (`GET /revocations`).

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{FeedBounds, FeedEntry, KeyDigest, Timestamp};

#[async_trait]
pub trait RevocationFeed: Send + Sync {
    /// The last position in the revocation feed.
    async fn revocation_feed_head(&self) -> StoreResult<i64>;

    /// Keys revoked or deleted after position `seq` (by any process), with their positions.
    async fn revocations_since(&self, seq: i64) -> StoreResult<Vec<(i64, KeyDigest)>>;

    /// The revocation feed's entries after `after`, in `seq` (commit) order, at most `limit`;
    /// rows written before the feed named keys are skipped.
    async fn feed_after(&self, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>>;

    /// The lowest and highest `seq` the feed keeps ([`super::Housekeeping::prune`] deletes only a
    /// prefix of it and keeps the newest row, so the highest is the highest ever given).
    async fn feed_bounds(&self) -> StoreResult<FeedBounds>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// The last position. (Appending differs: SQLite inserts row by row under its write lock,
/// PostgreSQL a batch under the feed's advisory lock, see each backend's `dialect::insert_feed`.)
pub(super) const HEAD: &str = "SELECT max(seq) FROM revocation_feed";

/// Positions and digests after $1.
pub(super) const SINCE: &str =
    "SELECT seq, digest FROM revocation_feed WHERE seq > $1 ORDER BY seq LIMIT 10000";

/// The columns of [`FeedEntryRow`]. Rows written before the feed named keys (NULL `key_id`,
/// migrations `sqlite/0010` and `postgres/0004`) are skipped by the queries that select these.
const FEED_ENTRY_COLUMNS: &str = "seq, key_id, user_id, reason, at_ms";

/// Entries after $1, at most $2.
pub(super) static AFTER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {FEED_ENTRY_COLUMNS} FROM revocation_feed \
         WHERE seq > $1 AND key_id IS NOT NULL AND user_id IS NOT NULL AND reason IS NOT NULL \
         ORDER BY seq LIMIT $2"
    )
});

/// The feed's lowest and highest `seq`, each an end of the primary key (one scalar subquery
/// each: `SELECT min(seq), max(seq)` in one go is a scan in SQLite).
pub(super) const BOUNDS: &str =
    "SELECT (SELECT min(seq) FROM revocation_feed), (SELECT max(seq) FROM revocation_feed)";

#[derive(sqlx::FromRow)]
pub(super) struct FeedEntryRow {
    seq: i64,
    key_id: Uuid,
    user_id: Uuid,
    reason: String,
    at_ms: i64,
}

impl From<FeedEntryRow> for FeedEntry {
    fn from(row: FeedEntryRow) -> Self {
        FeedEntry {
            seq: row.seq,
            key_id: row.key_id,
            user_id: row.user_id,
            reason: row.reason,
            at: Timestamp::from_millis(row.at_ms),
        }
    }
}

pub(super) fn bounds((oldest, head): (Option<i64>, Option<i64>)) -> FeedBounds {
    FeedBounds {
        oldest,
        head: head.unwrap_or(0),
    }
}
