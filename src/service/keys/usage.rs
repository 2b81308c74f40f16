//! Writing what validation learnt of each key (`last_used`, `last_ip`, the user agent, the
//! anomaly state) back to the store: in batches, and for a key in steady use only every
//! `usage_write_every`.

use std::collections::HashMap;

use super::*;
use crate::store::StoredUse;

impl KeyService {
    /// What `entries` learnt, to be written. `routine`: the periodic flush, whose writes of a
    /// key in steady use another instance may have made unneeded (see
    /// [`LastUse::unless_stored_since`]); never a new network's.
    pub(super) fn take_usage(
        &self,
        entries: &[Arc<KeyEntry>],
        now: Timestamp,
        routine: bool,
    ) -> Vec<KeyUsage> {
        let fresh_for = self.usage_write_every() / 2;
        let skippable = routine && self.anomaly.shared;
        entries
            .iter()
            .map(|e| {
                let mut u = e.usage();
                let unless_stored_since = (skippable && !u.urgent).then(|| now.minus(fresh_for));
                u.dirty = false;
                u.urgent = false;
                u.written = now;
                let used = match (u.used, u.last_used, u.last_ip) {
                    (true, Some(at), Some(ip)) => Some(LastUse {
                        at,
                        ip,
                        user_agent: u.user_agent.as_deref().map(str::to_owned),
                        unless_stored_since,
                    }),
                    _ => None,
                };
                KeyUsage {
                    key_id: e.id,
                    used,
                    // Serialising plain data cannot fail; an empty state is the safe fallback.
                    activity: serde_json::to_string(&u.activity).unwrap_or_default(),
                }
            })
            .collect()
    }

    pub(super) async fn write_usage(
        &self,
        entries: Vec<Arc<KeyEntry>>,
        routine: bool,
    ) -> Result<usize, StoreError> {
        // In slices, each its own transaction: reading and serialising the state of every key
        // in use runs on a request thread, and one slice of it is short enough (about a
        // millisecond) not to be felt by the requests queued behind it.
        const SLICE: usize = 500;
        let mut written = 0;
        let mut rest = entries;
        while !rest.is_empty() {
            let later = rest.split_off(rest.len().min(SLICE));
            let batch = self.take_usage(&rest, self.clock.now(), routine);
            let skipped = match self.store.record_usage(&batch).await {
                Ok(skipped) => skipped,
                Err(e) => {
                    // Keep them for the next flush.
                    for entry in rest.iter().chain(&later) {
                        entry.usage().dirty = true;
                    }
                    self.dirty().extend(rest.into_iter().chain(later));
                    return Err(e);
                }
            };
            written += batch.len().saturating_sub(skipped.len());
            self.requeue_skipped(&rest, &skipped);
            rest = later;
        }
        Ok(written)
    }

    /// A routine write that another instance's stored use made unneeded stays queued, if this
    /// instance's use is newer, due again when the stored use is
    /// [`KeyService::usage_write_every`] old: whichever instance then holds a newer use writes
    /// it, so a key in use somewhere has its use stored within an interval (plus a flush tick),
    /// as on one instance. Before, an instance whose write was skipped came back an interval
    /// after its own attempt: up to one and a half intervals after the stored use when the
    /// instance that wrote it had stopped using the key.
    fn requeue_skipped(&self, entries: &[Arc<KeyEntry>], skipped: &[StoredUse]) {
        if skipped.is_empty() {
            return;
        }
        let stored: HashMap<Uuid, Timestamp> = skipped.iter().map(|s| (s.key_id, s.last_used)).collect();
        let mut requeue = Vec::new();
        for entry in entries {
            if let Some(&at) = stored.get(&entry.id) {
                let mut usage = entry.usage();
                usage.written = at;
                // Nothing newer than what is stored: nothing to come back for. A request since
                // may have queued it again already.
                if usage.last_used.is_some_and(|own| own > at) && !usage.dirty {
                    usage.dirty = true;
                    requeue.push(entry.clone());
                }
            }
        }
        self.dirty().extend(requeue);
    }

    /// Writes every pending usage update (at shutdown, and before housekeeping that reads
    /// usage); returns how many.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let entries = std::mem::take(&mut *self.dirty());
        self.write_usage(entries, false).await
    }

    /// The periodic flush: writes the usage that is due, a new network at once and any other
    /// change once its last write is [`KeyService::usage_write_every`] old, so that a key in
    /// steady use costs one row write every five minutes rather than one per flush. Returns how
    /// many were written.
    pub async fn flush_due(&self) -> Result<usize, StoreError> {
        let stale = self.clock.now().minus(self.usage_write_every());
        let pending = std::mem::take(&mut *self.dirty());
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|e| {
            let usage = e.usage();
            usage.urgent || usage.written <= stale
        });
        // Still marked dirty: they stay queued (judge does not queue them twice).
        self.dirty().extend(later);
        self.write_usage(due, true).await
    }

    /// How often a key in steady use has its use written: [`USAGE_WRITE_EVERY`], or a twentieth
    /// of `keys.idle_timeout` when that is shorter. A use reaches the database within this plus
    /// one flush tick (startup's `usage_flush_ticks`: this, in whole seconds). On several
    /// instances a routine write is skipped when another instance stored a use within half of
    /// this, so that a key in steady use is written once per interval, not once per instance;
    /// the skipped instance comes back when the stored use is this old
    /// ([`KeyService::requeue_skipped`]), so when the instance that wrote last stops using the
    /// key, another writes within the interval too (API.md: exact to five minutes; to a tenth
    /// of an idle timeout of 40 s and more).
    pub fn usage_write_every(&self) -> Duration {
        match self.policy.idle_timeout {
            Some(idle) => USAGE_WRITE_EVERY.min(idle / 20),
            None => USAGE_WRITE_EVERY,
        }
    }

    /// Writes the pending usage of one user's keys.
    pub async fn flush_user(&self, user_id: Uuid) -> Result<usize, StoreError> {
        let mine: Vec<Arc<KeyEntry>> = {
            let mut dirty = self.dirty();
            dirty.extract_if(.., |e| e.user.id == user_id).collect()
        };
        self.write_usage(mine, false).await
    }
}
