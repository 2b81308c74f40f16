//! Validation through a database outage (API.md, "Database outages and failovers"): a key this
//! instance holds in its cache keeps validating for `database.outage_grace` after the instance
//! last heard the revocation feed; after that, and for any key not in the cache, the answer is
//! 503. While the feed is read successfully (every second), the cache is trusted whatever the
//! grace: the grace counts only once a read has failed.

use std::time::Duration;

use super::Timestamp;

/// Whether cached keys may still be trusted at `now`: the feed was last read successfully at
/// `heard`, and `failing` says whether a read has failed since.
pub fn cache_trusted(failing: bool, heard: Timestamp, grace: Duration, now: Timestamp) -> bool {
    !failing || now <= heard.plus(grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn the_grace_counts_from_the_last_read_and_only_while_reads_fail() {
        let grace = Duration::from_secs(30);
        assert!(
            cache_trusted(false, at(0), grace, at(3_600_000)),
            "reads work: trusted"
        );
        assert!(cache_trusted(true, at(0), grace, at(30_000)));
        assert!(!cache_trusted(true, at(0), grace, at(30_001)));
        assert!(!cache_trusted(true, at(0), Duration::ZERO, at(1)), "0s: at once");
        assert!(cache_trusted(true, at(0), Duration::ZERO, at(0)));
    }
}
