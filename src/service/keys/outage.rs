//! What this instance knows of the revocation feed, and the outage grace that follows from it
//! (API.md, "Database outages and failovers"; `crate::domain::outage`).

use super::*;

impl KeyService {
    /// Sets `database.outage_grace`.
    pub fn set_outage_grace(&self, grace: Duration) {
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.outage_grace_ms.store(ms, Ordering::Relaxed);
    }

    /// The revocation feed was read (and what it held applied): cached keys are trusted again.
    pub fn feed_heard(&self) {
        self.feed_heard_ms
            .store(self.clock.now().as_millis(), Ordering::Relaxed);
        self.feed_failing.store(false, Ordering::Release);
    }

    /// A read of the revocation feed failed: cached keys validate for the grace from the last
    /// successful read, then answer 503.
    pub fn feed_failed(&self) {
        self.feed_failing.store(true, Ordering::Release);
    }

    /// Whether a read of the revocation feed has failed since the last successful one.
    pub fn feed_is_failing(&self) -> bool {
        self.feed_failing.load(Ordering::Acquire)
    }

    /// Notifications may have been missed: the next read of the feed re-reads its latest entries.
    pub fn feed_suspect(&self) {
        self.feed_suspect.store(true, Ordering::Release);
    }

    /// Whether the feed must be read again, clearing the mark.
    pub fn take_feed_suspect(&self) -> bool {
        self.feed_suspect.swap(false, Ordering::AcqRel)
    }

    /// Whether this instance can answer validations of cached keys now (`GET /health/ready`).
    pub fn cache_trusted(&self) -> bool {
        crate::domain::outage::cache_trusted(
            self.feed_failing.load(Ordering::Acquire),
            Timestamp::from_millis(self.feed_heard_ms.load(Ordering::Relaxed)),
            Duration::from_millis(self.outage_grace_ms.load(Ordering::Relaxed)),
            self.clock.now(),
        )
    }
}
