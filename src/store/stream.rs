//! The revocation stream's rows (`GET /revocations`), as both SQL stores read them.

use uuid::Uuid;

use crate::domain::{FeedBounds, FeedEntry, Timestamp};

/// The columns of [`FeedEntryRow`]. Rows written before the feed named keys (NULL `key_id`,
/// migrations `sqlite/0010` and `postgres/0004`) are skipped by the queries that select these.
pub(super) const FEED_ENTRY_COLUMNS: &str = "seq, key_id, user_id, reason, at_ms";

/// The feed's lowest and highest `seq`, each an end of the primary key (one scalar subquery
/// each: `SELECT min(seq), max(seq)` in one go is a scan in SQLite).
pub(super) const FEED_BOUNDS: &str =
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
