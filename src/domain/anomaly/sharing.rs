//! Several instances serving one key count together (API.md: what all instances saw, with a lag
//! of at most a second): what this instance counted and saw since it last shared is kept apart,
//! taken when it is worth a write ([`KeyActivity::take_due`]), added to the shared totals by the
//! store as deltas (never read-modify-write), and the totals come back
//! ([`KeyActivity::absorb`]).

use ipnet::IpNet;

use super::{add_count, duration_ms, note_seen, AnomalyPolicy, KeyActivity};
use crate::domain::{RevocationReason, Timestamp};

/// The longest gap between two takings-in of the totals over which what the other instances
/// served is charged to this bucket. A busy key is shared every second; after a longer gap the
/// others' requests are mostly older than a bucket remembers (a burst at the rate), and charging
/// them would throttle a key that is quiet now.
const CHARGE_WITHIN_MS: i64 = 3_000;

/// What one instance saw of a key since it last shared: requests per flood window start (all
/// that presented the key, for the flood rule), those of them it served (for the rate limit),
/// and networks with when they were seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivityDelta {
    pub counts: Vec<(i64, u64)>,
    pub served: Vec<(i64, u64)>,
    pub networks: Vec<(IpNet, i64)>,
}

impl ActivityDelta {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.served.is_empty() && self.networks.is_empty()
    }
}

/// What every instance saw of a key: total requests and served requests per recent flood
/// window, and the networks seen within the window with their latest sighting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedActivity {
    pub counts: Vec<(i64, u64)>,
    pub served: Vec<(i64, u64)>,
    pub networks: Vec<(IpNet, i64)>,
}

impl KeyActivity {
    /// Whether there is anything this instance saw and has not shared.
    pub fn has_unshared(&self) -> bool {
        !self.unshared.is_empty() || !self.unshared_networks.is_empty()
    }

    /// Whether what this instance saw must be shared now (API.md, "Several instances": what
    /// validation writes grows with trouble, not traffic): a network to share (new here, or
    /// not shared for [`reshare_seen_after_ms`]); or a busy key: its unshared requests reach 1 %
    /// of `flood_max_requests`, or this second's requests pass a tenth of `per_second`. A quiet
    /// key's requests wait, at most 1 % of the flood limit per instance, so it costs no write
    /// per request; a busy one is shared every second, so its flood and rate counts lag by at
    /// most a second across instances.
    pub fn share_due(&self, policy: &AnomalyPolicy) -> bool {
        !self.unshared_networks.is_empty() || self.counts_due(policy)
    }

    /// The request half of [`KeyActivity::share_due`]: whether the key is busy. Once true it
    /// stays true until the requests are taken, whenever the sharing tick comes.
    fn counts_due(&self, policy: &AnomalyPolicy) -> bool {
        let unshared: u64 = self.unshared.iter().map(|(_, n)| *n).sum();
        if unshared == 0 {
            return false;
        }
        let busy_total = (policy.flood_max_requests / 100).max(1);
        self.busy || unshared >= busy_total
    }

    /// What is due of [`KeyActivity::take_unshared`]: the networks to share, and the requests
    /// only once the key is busy, so that a network shared by a quiet key writes no count.
    pub fn take_due(&mut self, policy: &AnomalyPolicy) -> ActivityDelta {
        if self.counts_due(policy) {
            return self.take_unshared();
        }
        let quiet = std::mem::take(&mut self.unshared);
        let quiet_served = std::mem::take(&mut self.unshared_served);
        let delta = self.take_unshared();
        self.unshared = quiet;
        self.unshared_served = quiet_served;
        delta
    }

    /// What this instance saw since it last shared, for the store to add to the totals; it is
    /// forgotten here (give it back with [`KeyActivity::unshare`] if the store could not take it).
    pub fn take_unshared(&mut self) -> ActivityDelta {
        let networks = std::mem::take(&mut self.unshared_networks);
        for (network, seen) in &networks {
            note_seen(&mut self.shared_seen, *network, *seen);
        }
        self.busy = false;
        ActivityDelta {
            counts: std::mem::take(&mut self.unshared),
            served: std::mem::take(&mut self.unshared_served),
            networks,
        }
    }

    /// Gives back a delta the store could not take, to be shared next time.
    pub fn unshare(&mut self, delta: ActivityDelta) {
        // Requests are taken only when due, so they are due again.
        self.busy |= !delta.counts.is_empty();
        for (w, n) in delta.counts {
            add_count(&mut self.unshared, w, n);
        }
        for (w, n) in delta.served {
            add_count(&mut self.unshared_served, w, n);
        }
        for (network, seen) in delta.networks {
            self.shared_seen.retain(|(n, _)| *n != network);
            note_seen(&mut self.unshared_networks, network, seen);
        }
    }

    /// Takes in what every instance saw (the totals after this instance's last delta was added):
    /// networks are united; each window's count becomes its total plus what was counted here
    /// since; requests the other instances served since the last taking-in (within
    /// [`CHARGE_WITHIN_MS`]) take their tokens from this bucket, down to a debt of one burst.
    /// Returns the reason to revoke the key when the united activity crosses a line.
    pub fn absorb(
        &mut self,
        policy: &AnomalyPolicy,
        shared: &SharedActivity,
        now: Timestamp,
    ) -> Option<RevocationReason> {
        let now = now.as_millis();
        let window = duration_ms(policy.flood_window).max(1);
        if let Some(newest) = shared.counts.iter().map(|(w, _)| *w).max() {
            self.advance_flood_window(window, newest);
        }
        for (w, total) in &shared.counts {
            let since = self.unshared.iter().find(|(u, _)| u == w).map_or(0, |(_, n)| *n);
            let known = if *w == self.flood_start {
                &mut self.flood_current
            } else if *w == self.flood_start - window {
                &mut self.flood_previous
            } else {
                continue;
            };
            let merged = total.saturating_add(since);
            *known = (*known).max(merged);
        }
        self.charge_served_elsewhere(policy, window, &shared.served, now);
        let horizon = now.saturating_sub(duration_ms(policy.window));
        for (network, seen) in &shared.networks {
            if *seen <= horizon {
                continue;
            }
            note_seen(&mut self.shared_seen, *network, *seen);
            note_seen(&mut self.networks, *network, *seen);
        }
        self.networks.retain(|(_, seen)| *seen > horizon);
        if self.networks.len() > policy.max_networks {
            self.networks.sort_by_key(|(_, seen)| std::cmp::Reverse(*seen));
            self.networks.truncate(policy.max_networks + 1);
            return Some(RevocationReason::IpChanges);
        }
        (self.flood_estimate(window, now) > policy.flood_max_requests)
            .then_some(RevocationReason::RequestFlood)
    }

    /// The rate-limit half of [`KeyActivity::absorb`].
    fn charge_served_elsewhere(
        &mut self,
        policy: &AnomalyPolicy,
        window: i64,
        totals: &[(i64, u64)],
        now: i64,
    ) {
        let (mut known, last) = self.served_known.take().unwrap_or_default();
        let charge = last != 0 && now.saturating_sub(last) <= CHARGE_WITHIN_MS;
        let mut others = 0u64;
        for (w, total) in totals {
            let since = self
                .unshared_served
                .iter()
                .find(|(u, _)| u == w)
                .map_or(0, |(_, n)| *n);
            let merged = total.saturating_add(since);
            match known.iter_mut().find(|(k, _)| k == w) {
                Some((_, k)) => {
                    others = others.saturating_add(merged.saturating_sub(*k));
                    *k = (*k).max(merged);
                }
                None => {
                    // A window new to this instance: all of it is news.
                    others = others.saturating_add(merged);
                    known.push((*w, merged));
                }
            }
        }
        known.retain(|(w, _)| *w >= self.flood_start.saturating_sub(window));
        self.served_known = Some((known, now));
        if !charge || others == 0 {
            return;
        }
        if let Some((tokens, _)) = &mut self.bucket {
            let debt_floor = -((policy.burst * 1000.0) as i64);
            let taken = i64::try_from(others.saturating_mul(1000)).unwrap_or(i64::MAX);
            *tokens = tokens.saturating_sub(taken).max(debt_floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{net, policy, t, Shared};
    use super::*;
    use crate::domain::anomaly::Verdict;

    /// A quiet key costs no write per request: its requests wait until they reach 1 % of the
    /// flood limit, or its rate passes a tenth of the rate limit; a new network is shared at
    /// once, a known one again only after a 24th of the window.
    #[test]
    fn activity_is_shared_when_it_is_news_or_the_key_is_busy() {
        let p = AnomalyPolicy {
            flood_max_requests: 1_000,
            per_second: 50.0,
            ..policy()
        };
        let home = net(&p, "198.51.100.7");
        let mut a = KeyActivity::default();
        let start = 1_800_000_000_000;
        a.observe(&p, home, t(start));
        assert!(a.share_due(&p), "a new network");
        let first = a.take_due(&p);
        assert_eq!(first.networks.len(), 1);
        assert!(
            first.counts.is_empty(),
            "a quiet key's network is shared without its count"
        );
        // One request every 10 s: never busy, nothing due until 10 of them (1 % of 1,000).
        for i in 1..9 {
            let at = start + i * 10_000;
            assert_eq!(a.observe(&p, home, t(at)), Verdict::Allow);
            assert!(!a.share_due(&p), "request {i} of a quiet key");
        }
        let at = start + 90_000;
        a.observe(&p, home, t(at));
        assert!(a.share_due(&p), "1 % of the flood limit");
        a.take_unshared();
        // Six requests within one second: more than a tenth of 50 per second.
        let busy = start + 200_000;
        for i in 0..6 {
            a.observe(&p, home, t(busy + i));
        }
        assert!(a.share_due(&p), "busy");
        a.take_unshared();
        // The same network an hour later (a 24th of the day's window): shared again.
        let later = start + 3_600_000 + 1;
        a.observe(&p, home, t(later));
        assert!(a.share_due(&p), "a known network, refreshed");
    }

    /// A key busy in one second is still busy for the sharing tick that falls early in the next,
    /// before that second's requests have shown it: otherwise a tick with that phase took the key
    /// off the queue unshared every second, and the instances' counts never met.
    #[test]
    fn a_key_queued_as_busy_is_shared_whenever_the_tick_comes() {
        let p = AnomalyPolicy {
            flood_max_requests: 100_000,
            per_second: 50.0,
            ..policy()
        };
        let home = net(&p, "198.51.100.7");
        let mut a = KeyActivity::default();
        let start = 1_800_000_000_000;
        a.observe(&p, home, t(start));
        a.take_due(&p);
        for second in 1..4 {
            // 40 requests a second, the tick 10 ms into each next second.
            let base = start + second * 1_000;
            for i in 0..40 {
                a.observe(&p, home, t(base + 10 + i * 24));
            }
            assert!(a.share_due(&p), "second {second}: busy");
            a.observe(&p, home, t(base + 1_005));
            let delta = a.take_due(&p);
            let counted: u64 = delta.counts.iter().map(|(_, n)| *n).sum();
            // The 40, and the one request of the next second, which alone did not make it busy
            // (the first time, also the first request, which was quiet).
            assert_eq!(counted, 41 + u64::from(second == 1), "second {second}");
            assert!(!a.share_due(&p), "second {second}: nothing left to share");
        }
        // Given back after the store failed, the counts are due again at once.
        for i in 0..6 {
            a.observe(&p, home, t(start + 10_000 + i));
        }
        let delta = a.take_due(&p);
        assert!(!delta.counts.is_empty());
        a.unshare(delta);
        assert!(a.share_due(&p), "due again after a failed write");
    }

    #[test]
    fn networks_seen_by_different_instances_add_up() {
        let mut p = policy();
        p.max_networks = 2;
        let home = net(&p, "10.0.0.1");
        let mut a = KeyActivity::issued(Some(home), t(0));
        let mut b = a.clone();
        let mut store = Shared::default();
        assert_eq!(a.observe(&p, net(&p, "10.0.1.1"), t(10)), Verdict::Allow);
        assert_eq!(b.observe(&p, net(&p, "10.0.2.1"), t(20)), Verdict::Allow);
        assert_eq!(store.share(&mut a, &p, t(30)), None, "A alone has seen two");
        assert_eq!(
            store.share(&mut b, &p, t(40)),
            Some(RevocationReason::IpChanges),
            "together they have seen three"
        );
    }

    #[test]
    fn requests_served_by_different_instances_add_up_and_share_the_rate_limit() {
        let mut p = policy();
        p.flood_max_requests = 10;
        let n = net(&p, "10.0.0.1");
        let mut a = KeyActivity::issued(Some(n), t(0));
        let mut b = a.clone();
        let mut store = Shared::default();
        for i in 0..6 {
            assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow);
            assert_eq!(b.observe(&p, n, t(i)), Verdict::Allow);
        }
        assert_eq!(store.share(&mut a, &p, t(10)), None);
        assert_eq!(
            store.share(&mut b, &p, t(11)),
            Some(RevocationReason::RequestFlood)
        );
        assert_eq!(
            store.counts.values().sum::<u64>(),
            12,
            "each request counted once"
        );

        // The bucket: burst 3, next to nothing refilled; B's requests take A's tokens.
        p.flood_max_requests = 1_000;
        p.burst = 3.0;
        p.per_second = 0.001;
        let mut a = KeyActivity::issued(Some(n), t(0));
        let mut b = a.clone();
        let mut store = Shared::default();
        assert_eq!(a.observe(&p, n, t(1)), Verdict::Allow);
        assert_eq!(store.share(&mut a, &p, t(2)), None);
        assert_eq!(b.observe(&p, n, t(3)), Verdict::Allow);
        assert_eq!(b.observe(&p, n, t(4)), Verdict::Allow);
        assert_eq!(store.share(&mut b, &p, t(5)), None);
        assert_eq!(store.share(&mut a, &p, t(6)), None);
        assert!(
            matches!(a.observe(&p, n, t(7)), Verdict::Slow { .. }),
            "three served in all"
        );
    }

    /// Two instances hammered at once for ten seconds, sharing every second: together they
    /// allow about what one would (a burst, then the rate), plus a second's lag; the other's
    /// requests put a bucket into debt rather than being forgiven at zero.
    #[test]
    fn instances_hammered_at_once_share_one_rate() {
        let p = AnomalyPolicy {
            per_second: 10.0,
            burst: 10.0,
            ..policy()
        };
        let n = net(&p, "10.0.0.1");
        let mut a = KeyActivity::issued(Some(n), t(0));
        let mut b = a.clone();
        let mut store = Shared::default();
        let mut allowed = 0;
        for ms in 1..=10_000 {
            for x in [&mut a, &mut b] {
                if x.observe(&p, n, t(ms)) == Verdict::Allow {
                    allowed += 1;
                }
            }
            if ms % 1000 == 0 {
                store.share(&mut a, &p, t(ms));
                store.share(&mut b, &p, t(ms));
            }
        }
        let one_instance = 10 + 10 * 10;
        assert!(allowed >= one_instance, "{allowed}");
        assert!(
            allowed <= one_instance + 2 * 10,
            "{allowed}: each instance kept its own rate"
        );
    }

    #[test]
    fn a_delta_the_store_could_not_take_is_shared_next_time() {
        let p = policy();
        let n = net(&p, "10.0.0.1");
        let mut a = KeyActivity::issued(Some(n), t(0));
        a.observe(&p, n, t(1));
        a.observe(&p, net(&p, "10.0.5.1"), t(2));
        let lost = a.take_unshared();
        assert_eq!(lost.counts, vec![(0, 2)]);
        assert_eq!(lost.networks.len(), 2);
        a.unshare(lost.clone());
        a.observe(&p, n, t(3));
        let again = a.take_unshared();
        assert_eq!(again.counts, vec![(0, 3)]);
        assert_eq!(again.networks.len(), 2);
        assert!(a.take_unshared().is_empty());
    }
}
