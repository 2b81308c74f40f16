//! Pooled connections that may still be on a demoted primary. Behind PgBouncer in session mode a
//! client connection stays bound to the server it was given: after a failover, if the pooler is
//! repointed without closing its server connections, the service's pooled connections keep
//! reaching the old node, now a standby, and every write fails with SQLSTATE 25006 (read-only
//! transaction) for as long as they live (measured with the failover harness of
//! `tests/postgres/failover.rs`: writes still 503 30 s after the repoint). So a 25006 marks every
//! connection made before it as suspect, and the pool drops such a connection instead of handing
//! it out (`before_acquire`, no round trip): the next one is made anew, through the repointed
//! pooler. One marker for the process: a store that never saw a 25006 is not affected, and one
//! that did only reconnects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);
/// When a read-only error was last seen, in ms after [`BASE`], plus one; 0 = never.
static SEEN: AtomicU64 = AtomicU64::new(0);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A statement failed with 25006: connections made until now may be on a standby.
pub(crate) fn seen() {
    SEEN.store(ms(BASE.elapsed()).saturating_add(1), Ordering::Relaxed);
}

/// Whether a pooled connection of this age may be handed out: it was made after the last
/// read-only error (or there was none).
pub(crate) fn keep(age: Duration) -> bool {
    keep_at(SEEN.load(Ordering::Relaxed), ms(BASE.elapsed()), ms(age))
}

fn keep_at(seen: u64, now: u64, age: u64) -> bool {
    seen == 0 || now.saturating_sub(age) >= seen
}

#[cfg(test)]
mod tests {
    use super::keep_at;

    #[test]
    fn connections_made_before_a_read_only_error_are_dropped() {
        assert!(keep_at(0, 10_000, 9_000), "no error seen");
        // An error at 5 s (stored as 5001): a connection made at 1 s is dropped, one made at 6 s kept.
        assert!(!keep_at(5_001, 10_000, 9_000));
        assert!(keep_at(5_001, 10_000, 4_000));
    }
}
