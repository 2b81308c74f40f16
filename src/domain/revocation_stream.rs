//! The revocation stream's rules (`GET /revocations`), in plain Rust: what a position in the
//! feed is, where a reconnecting client resumes, and whether a batch of revocations follows on
//! from what a client has already been sent.
//!
//! The feed (`revocation_feed`) numbers every revoked key with `seq`, in commit order across
//! processes and instances (SQLite has one writer; PostgreSQL appends under an advisory lock
//! held until commit). So a reader that has seen `seq` n has seen every row below n that will
//! ever commit, and "everything after n" is a complete answer as long as no row after n has
//! been pruned. Pruning deletes a *prefix* of the feed (never a row after a kept one) and always
//! keeps the newest row, so that:
//! - the feed's lowest kept `seq` tells whether anything after a client's position is gone, and
//! - its highest `seq` is the head: a position beyond it was never given by this database.

use serde::Serialize;
use uuid::Uuid;

use super::Timestamp;

/// One revoked key, as the stream sends it (`data:` of an event; `seq` is also its `id:`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = RevocationEvent,
    description = "The `data:` of one event of the revocation stream (`GET /revocations`): a revoked key; `seq` is also the event's `id:`."
)]
pub struct FeedEntry {
    pub seq: i64,
    pub key_id: Uuid,
    pub user_id: Uuid,
    /// A `RevokedKey` reason, or `account_deleted` for the keys of a deleted account.
    pub reason: String,
    pub at: Timestamp,
}

/// The ends of the feed as kept: the lowest `seq` (none while the feed is empty) and the
/// highest (0 while no key was ever revoked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedBounds {
    pub oldest: Option<i64>,
    pub head: i64,
}

/// Why a client cannot resume where it asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// Its position is beyond the head: a `seq` this database never gave (another database, a
    /// restored backup, a made-up number).
    AheadOfHead,
    /// Revocations after its position were pruned (older than the feed keeps).
    Pruned,
    /// The service cannot vouch for what it sent meanwhile (its reads failed for a while, or
    /// the connection that hears other instances was lost).
    Unproven,
}

impl ResetCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AheadOfHead => "ahead_of_head",
            Self::Pruned => "pruned",
            Self::Unproven => "unproven",
        }
    }
}

/// Whether a client that has seen everything up to `after` can be served "everything after
/// `after`" from a feed with these bounds. `bounds` must be read *after* the rows after `after`
/// (the lowest kept `seq` only grows), so that a prune racing with the read is noticed.
pub fn resume(after: i64, bounds: FeedBounds) -> Result<(), ResetCause> {
    if after > bounds.head {
        return Err(ResetCause::AheadOfHead);
    }
    if after == bounds.head {
        // Nothing after it, whatever was pruned before it.
        return Ok(());
    }
    match bounds.oldest {
        // The row right after `after` (or an earlier one) is still kept: nothing after it is
        // gone. (PostgreSQL may skip numbers, e.g. after a rolled-back transaction: a client
        // right at the edge of the kept window may then be reset needlessly, never wrongly.)
        Some(oldest) if oldest <= after.saturating_add(1) => Ok(()),
        _ => Err(ResetCause::Pruned),
    }
}

/// How a batch of entries read by the hub, "every entry in `(after, last entry]`", relates to a
/// client that has been sent everything up to `sent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Entries after `sent` follow on directly: send those.
    Follows,
    /// Nothing new for this client.
    Seen,
    /// The batch starts after `sent`, and what lies between was not sent to this client: read
    /// it from the database first.
    Gap,
}

/// See [`Fit`]. `after` is where the batch starts, `upto` its last `seq`.
pub fn fit(sent: i64, after: i64, upto: i64) -> Fit {
    if after > sent {
        Fit::Gap
    } else if upto <= sent {
        Fit::Seen
    } else {
        Fit::Follows
    }
}

/// A position as a client gives it (`?after=`, `Last-Event-ID`): a `seq`, written as a
/// non-negative decimal integer (0: from the beginning of what is kept). Anything else is
/// malformed.
pub fn parse_position(text: &str) -> Option<i64> {
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(oldest: Option<i64>, head: i64) -> FeedBounds {
        FeedBounds { oldest, head }
    }

    #[test]
    fn a_position_within_the_kept_feed_resumes() {
        assert_eq!(resume(5, bounds(Some(1), 10)), Ok(()));
        assert_eq!(resume(0, bounds(Some(1), 10)), Ok(()), "from the very beginning");
        assert_eq!(
            resume(4, bounds(Some(5), 10)),
            Ok(()),
            "the next row is the oldest kept"
        );
        assert_eq!(resume(9, bounds(Some(5), 10)), Ok(()));
    }

    #[test]
    fn the_head_itself_always_resumes() {
        assert_eq!(resume(10, bounds(Some(10), 10)), Ok(()));
        assert_eq!(
            resume(0, bounds(None, 0)),
            Ok(()),
            "an empty feed, nothing ever revoked"
        );
    }

    #[test]
    fn a_pruned_position_resets() {
        assert_eq!(resume(3, bounds(Some(5), 10)), Err(ResetCause::Pruned));
        assert_eq!(resume(0, bounds(Some(2), 10)), Err(ResetCause::Pruned));
    }

    #[test]
    fn a_position_beyond_the_head_resets() {
        assert_eq!(resume(11, bounds(Some(1), 10)), Err(ResetCause::AheadOfHead));
        assert_eq!(resume(1, bounds(None, 0)), Err(ResetCause::AheadOfHead));
        assert_eq!(
            resume(i64::MAX, bounds(Some(1), 10)),
            Err(ResetCause::AheadOfHead)
        );
    }

    #[test]
    fn batches_follow_are_seen_or_leave_a_gap() {
        // Sent up to 10.
        assert_eq!(fit(10, 10, 12), Fit::Follows);
        assert_eq!(fit(10, 8, 12), Fit::Follows, "overlaps what was sent");
        assert_eq!(fit(10, 5, 10), Fit::Seen);
        assert_eq!(fit(10, 5, 9), Fit::Seen);
        assert_eq!(fit(10, 11, 12), Fit::Gap, "11 itself was never sent");
        assert_eq!(fit(10, 20, 25), Fit::Gap);
    }

    #[test]
    fn positions_are_non_negative_integers() {
        assert_eq!(parse_position("0"), Some(0));
        assert_eq!(parse_position("42"), Some(42));
        assert_eq!(parse_position(" 42 "), Some(42));
        assert_eq!(parse_position("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            " ",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "abc",
            "0x10",
            "9223372036854775808",
            "99999999999999999999",
            "4 2",
            "٤٢",
        ] {
            assert_eq!(parse_position(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Any text is a position or malformed, never a panic; what parses is the integer written.
        #[test]
        fn arbitrary_positions_never_panic(text in "\\PC{0,24}") {
            if let Some(n) = parse_position(&text) {
                proptest::prop_assert!(n >= 0);
                let trimmed = text.trim_matches(|c| c == ' ' || c == '\t');
                proptest::prop_assert_eq!(trimmed.parse::<i64>().ok(), Some(n));
            }
        }

        /// Resuming never hides a pruned row: a position resumes only when the row right after
        /// it is kept or it is the head.
        #[test]
        fn resuming_is_sound(after in 0i64..100, oldest in 1i64..100, extra in 0i64..100) {
            let head = oldest + extra;
            let ok = resume(after, bounds(Some(oldest), head)).is_ok();
            proptest::prop_assert_eq!(ok, after == head || (after < head && oldest <= after + 1));
        }
    }
}
