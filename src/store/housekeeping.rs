//! Housekeeping: keys marked expired, and rows no longer needed deleted, every few minutes and at
//! start-up (on PostgreSQL by one instance at a time).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::{KeyPolicy, Timestamp};

/// Rows older than these are deleted by [`Housekeeping::prune`].
#[derive(Clone, Copy, Debug)]
pub struct PruneCutoffs {
    /// Revocation feed entries: the prefix of the feed up to the first entry at or after this
    /// is deleted, but never the newest entry (see [`super::RevocationFeed::feed_bounds`]).
    pub feed: Timestamp,
    /// Counted throttle attempts.
    pub throttles: Timestamp,
    /// Known networks (by their last successful sign-in).
    pub known_networks: Timestamp,
    /// Revoked keys (by their revocation); and imported keys remembered by digest, by their
    /// original expiry (as long after it as a revoked key is listed).
    pub revoked_keys: Timestamp,
    /// Shared anomaly state: request counts of windows that started before, networks last seen
    /// before.
    pub shared_activity: Timestamp,
    /// Join tickets that expired before (redeemed or not), and reset codes that expired before.
    pub tickets: Timestamp,
    /// Security events (`events.retention`).
    pub events: Timestamp,
}

#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Marks the live keys that are past their deadline at `now` as revoked (`expired`, at the
    /// moment they expired); returns how many.
    async fn expire_keys(&self, policy: &KeyPolicy, now: Timestamp) -> StoreResult<u64>;

    /// Deletes what is no longer needed, each kind of row before its own cut-off.
    async fn prune(&self, cutoffs: &PruneCutoffs) -> StoreResult<()>;
}

// Statements both dialects run ($n placeholders, see the module `store`). Marking the expired
// keys differs (one statement per key in SQLite, one per ten thousand from arrays in PostgreSQL),
// and so does the first statement of pruning (a planner hint for SQLite).

/// Expiry candidates: live keys that may be past their deadline ($1 the bound), each statement
/// answered by an index rather than a scan of every live key
/// (`housekeeping_reads_indexes_not_tables`): by lifetime (`keys_live`: created at or before
/// now − lifetime) and, when an idle timeout is set, by idleness (`keys_live_by_last_use`: last
/// used, else created, at or before now − idle timeout). Which of them expired, and when, is
/// [`KeyPolicy`]'s to say (`rows::expired_keys`). Keys of service accounts last until revoked
/// (`Role::keys_last_until_revoked`) and are never candidates: each candidate's owner is looked
/// up by primary key (`CROSS JOIN` keeps the keys index as the outer loop in SQLite, rather than
/// a scan of `users`).
pub(super) const EXPIRY_CANDIDATES_BY_LIFETIME: &str =
    "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND k.expires_ms IS NULL AND k.created_ms <= $1";
pub(super) const EXPIRY_CANDIDATES_BY_IDLENESS: &str =
    "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND coalesce(k.last_used_ms, k.created_ms) <= $1";
/// Keys with a deadline of their own (imported from the original back end) past it at $1
/// (`keys_live_by_deadline`).
pub(super) const EXPIRY_CANDIDATES_BY_DEADLINE: &str =
    "SELECT k.id, k.created_ms, k.last_used_ms, k.expires_ms \
     FROM keys k CROSS JOIN users u WHERE u.id = k.user_id AND u.role <> 'SERVICE' \
     AND k.revoked_ms IS NULL AND k.expires_ms IS NOT NULL AND k.expires_ms <= $1";

/// Pruning by age ($1 the cutoff) after the feed's prefix: throttles, known networks, revoked
/// keys, shared request counts and networks, events.
pub(super) const PRUNE: [&str; 6] = [
    "DELETE FROM throttle_attempts WHERE at_ms < $1",
    "DELETE FROM known_networks WHERE last_success_ms < $1",
    "DELETE FROM keys WHERE revoked_ms < $1",
    "DELETE FROM key_request_counts WHERE window_start_ms < $1",
    "DELETE FROM key_networks WHERE last_seen_ms < $1",
    "DELETE FROM events WHERE at_ms < $1",
];

/// Each statement of [`PRUNE`] with its cut-off, in order, then the feed's own statement (each
/// backend's) first, and the tickets', reset codes' and imported keys' after.
pub(super) fn prune_plan<'a>(feed: &'a str, cutoffs: &PruneCutoffs) -> [(&'a str, Timestamp); 10] {
    let [throttles, networks, keys, counts, seen, events] = PRUNE;
    [
        (feed, cutoffs.feed),
        (throttles, cutoffs.throttles),
        (networks, cutoffs.known_networks),
        (keys, cutoffs.revoked_keys),
        (counts, cutoffs.shared_activity),
        (seen, cutoffs.shared_activity),
        (events, cutoffs.events),
        (super::tickets::PRUNE, cutoffs.tickets),
        (super::reset_codes::PRUNE, cutoffs.tickets),
        (super::imports::PRUNE, cutoffs.revoked_keys),
    ]
}
