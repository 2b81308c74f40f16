//! Unusual access, the seed's distinctive promise: a key used from too many networks, or far too
//! often, is revoked at once; a key used a little too fast is only slowed down (429).
//!
//! All the state is per key, small and of bounded size whatever a client sends:
//! - the networks seen within `window`, at most `max_networks + 1` of them (the one past the
//!   limit revokes the key), each with its last-seen time;
//! - a request counter over `flood_window` as two fixed windows (the previous one weighted by how
//!   much of it still overlaps the sliding window, the estimate rate limiters commonly use);
//! - a token bucket for the rate limit.
//!
//! Several instances serving one key count together (API.md: what all instances saw, with a
//! lag of at most a second): the fixed flood windows are aligned to the epoch, so that every
//! instance cuts the same ones; what this instance counted and saw since it last shared is kept
//! apart ([`KeyActivity::take_unshared`]), added to the shared totals by the store as deltas
//! (never read-modify-write), and the totals come back ([`KeyActivity::absorb`]): networks are
//! united, counts become the totals plus what was counted since, and the requests other
//! instances served take their tokens from this instance's bucket.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{RevocationReason, Role, Timestamp};

/// The `[anomaly]` and `[rate_limit]` settings as rules.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyPolicy {
    pub window: Duration,
    pub max_networks: usize,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub flood_window: Duration,
    pub flood_max_requests: u64,
    pub per_second: f64,
    pub burst: f64,
    /// Several instances share the database: keep apart what this one counted and saw until it
    /// is shared ([`KeyActivity::take_unshared`]). Off on one machine, where nothing would take it.
    pub shared: bool,
}

impl AnomalyPolicy {
    /// The network of an address: truncated to the configured prefix; an IPv4-mapped IPv6
    /// address counts as the IPv4 address it carries.
    pub fn network_of(&self, ip: IpAddr) -> IpNet {
        let ip = canonical_ip(ip);
        let prefix = match ip {
            IpAddr::V4(_) => self.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.ipv6_prefix.min(128),
        };
        // The prefix is within range for the family, so `new` cannot fail; fall back to the host.
        IpNet::new(ip, prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(ip))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 address it carries.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What one request of a key leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the rate limit: 429, retry after this many whole seconds (at least 1).
    Slow {
        retry_after_secs: u64,
    },
    /// Unusual access: the key is revoked for this reason and the request refused.
    Revoke(RevocationReason),
}

/// The anomaly state of one key. Serialisable so that it survives a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyActivity {
    /// Networks seen within the window, with their last-seen times (at most `max_networks + 1`).
    #[serde(rename = "n", default)]
    networks: Vec<(IpNet, i64)>,
    /// Start of the current fixed flood window.
    #[serde(rename = "fs", default)]
    flood_start: i64,
    /// Requests in the previous and the current fixed window.
    #[serde(rename = "fp", default)]
    flood_previous: u64,
    #[serde(rename = "fc", default)]
    flood_current: u64,
    /// Token bucket: tokens left (in thousandths) and when it was last refilled. Negative when
    /// the other instances served more than this one had left: the debt is paid by the refill
    /// before this instance serves again, so that instances hammered at once allow together what
    /// one would, not each its own rate (at most one burst of debt, see [`KeyActivity::absorb`]).
    /// Not persisted: a restart refills the bucket, which costs at most one burst.
    #[serde(skip)]
    bucket: Option<(i64, i64)>,
    /// Requests counted here and not shared yet, by flood window start (at most two windows).
    #[serde(skip)]
    unshared: Vec<(i64, u64)>,
    /// Networks seen here and not shared yet (new, or seen again a while after they were last
    /// shared), with when.
    #[serde(skip)]
    unshared_networks: Vec<(IpNet, i64)>,
    /// When each network was last shared (or heard of from the others).
    #[serde(skip)]
    shared_seen: Vec<(IpNet, i64)>,
    /// The second (ms, aligned) this instance's latest requests fall in, and how many: whether
    /// the key is busy now (see [`KeyActivity::share_due`]).
    #[serde(skip)]
    this_second: (i64, u64),
    /// Whether a second's requests passed a tenth of the rate limit since the requests were last
    /// shared. Kept until they are: the sharing tick may fall early in the next second, before
    /// that second's requests say the key is busy, and a key queued as busy must be shared then.
    #[serde(skip)]
    busy: bool,
    /// Requests served here and not shared yet, by flood window start.
    #[serde(skip)]
    unshared_served: Vec<(i64, u64)>,
    /// The served requests of every instance as this one last knew them, by flood window start,
    /// and when it last took in the totals: what the others served since takes tokens from this
    /// bucket ([`KeyActivity::absorb`]).
    #[serde(skip)]
    served_known: Option<(Vec<(i64, u64)>, i64)>,
}

/// The longest gap between two takings-in of the totals over which what the other instances
/// served is charged to this bucket. A busy key is shared every second; after a longer gap the
/// others' requests are mostly older than a bucket remembers (a burst at the rate), and charging
/// them would throttle a key that is quiet now.
const CHARGE_WITHIN_MS: i64 = 3_000;

/// A network in steady use goes without its last-seen time being shared again for this part of
/// the window (API.md: refreshed at most once per `anomaly.window / 24`, an hour by default):
/// the networks rule needs when a network was last seen to within the window, not to the minute.
fn reshare_seen_after_ms(policy: &AnomalyPolicy) -> i64 {
    (duration_ms(policy.window) / 24).max(1)
}

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
    /// A key's activity at issuance: the network it was issued from counts as its first.
    pub fn issued(network: Option<IpNet>, at: Timestamp) -> Self {
        Self {
            networks: network.map(|n| vec![(n, at.as_millis())]).unwrap_or_default(),
            flood_start: at.as_millis(),
            ..Self::default()
        }
    }

    /// Distinct networks seen within the window ending at `now`.
    pub fn networks_in_window(&self, policy: &AnomalyPolicy, now: Timestamp) -> usize {
        let horizon = now.minus(policy.window).as_millis();
        self.networks.iter().filter(|(_, seen)| *seen > horizon).count()
    }

    /// Whether `network` already counts for this key at `now` (seen within the window). A request
    /// from a network that does not is what makes the state worth writing at once.
    pub fn knows_network(&self, policy: &AnomalyPolicy, network: IpNet, now: Timestamp) -> bool {
        let horizon = now.minus(policy.window).as_millis();
        self.networks
            .iter()
            .any(|(n, seen)| *n == network && *seen > horizon)
    }

    /// Accounts for one request from `network` at `now` and says what to do with it.
    pub fn observe(&mut self, policy: &AnomalyPolicy, network: IpNet, now: Timestamp) -> Verdict {
        let ms = now.as_millis();
        if self.note_network(policy, network, ms) {
            return Verdict::Revoke(RevocationReason::IpChanges);
        }
        if self.count_request(policy, ms) {
            return Verdict::Revoke(RevocationReason::RequestFlood);
        }
        self.take_token(policy, ms)
    }

    /// [`KeyActivity::observe`] for a key whose owner has `role`. A service key is exempt from
    /// the anomaly rules and the rate limit ([`Role::keys_last_until_revoked`]): always allowed,
    /// and nothing is counted (its state stays as issued).
    pub fn observe_for(
        &mut self,
        policy: &AnomalyPolicy,
        role: Role,
        network: IpNet,
        now: Timestamp,
    ) -> Verdict {
        if role.keys_last_until_revoked() {
            return Verdict::Allow;
        }
        self.observe(policy, network, now)
    }

    /// Returns true when the key has now been used from more than `max_networks` networks
    /// within the window.
    fn note_network(&mut self, policy: &AnomalyPolicy, network: IpNet, now: i64) -> bool {
        let horizon = now.saturating_sub(duration_ms(policy.window));
        // Networks last seen a whole window ago stop counting.
        self.networks.retain(|(_, seen)| *seen > horizon);
        match self.networks.iter_mut().find(|(n, _)| *n == network) {
            Some((_, seen)) => *seen = (*seen).max(now),
            None => self.networks.push((network, now)),
        }
        let shared = self
            .shared_seen
            .iter()
            .find(|(n, _)| *n == network)
            .map(|(_, s)| *s);
        if shared.is_none_or(|s| now - s >= reshare_seen_after_ms(policy)) {
            note_seen(&mut self.unshared_networks, network, now);
        }
        if self.networks.len() > policy.max_networks {
            // Keep the state bounded: the newest max_networks + 1 are enough to know the verdict.
            self.networks.sort_by_key(|(_, seen)| std::cmp::Reverse(*seen));
            self.networks.truncate(policy.max_networks + 1);
            return true;
        }
        false
    }

    /// Returns true when the (estimated) requests within the flood window exceed the limit.
    fn count_request(&mut self, policy: &AnomalyPolicy, now: i64) -> bool {
        let window = duration_ms(policy.flood_window).max(1);
        self.advance_flood_window(window, now - now.rem_euclid(window));
        self.flood_current = self.flood_current.saturating_add(1);
        if policy.shared {
            add_count(&mut self.unshared, self.flood_start, 1);
            let second = now - now.rem_euclid(1000);
            if self.this_second.0 == second {
                self.this_second.1 = self.this_second.1.saturating_add(1);
            } else {
                self.this_second = (second, 1);
            }
            if self.this_second.1 as f64 > policy.per_second / 10.0 {
                self.busy = true;
            }
        }
        self.flood_estimate(window, now) > policy.flood_max_requests
    }

    /// Moves the fixed windows on to the one starting at `start` (aligned to the epoch: every
    /// instance cuts the same windows). A start before the current one (a clock stepped back)
    /// keeps the current window.
    fn advance_flood_window(&mut self, window: i64, start: i64) {
        if start <= self.flood_start {
            return;
        }
        if start - self.flood_start <= window {
            // The next window (or, from a state written before windows were aligned, the
            // aligned window that follows it).
            self.flood_previous = self.flood_current;
        } else {
            self.flood_previous = 0;
        }
        self.flood_current = 0;
        self.flood_start = start;
        let oldest = start - window;
        self.unshared.retain(|(w, _)| *w >= oldest);
    }

    /// Requests within the sliding window ending at `now`: the current fixed window, and the
    /// part of the previous one that still overlaps it.
    fn flood_estimate(&self, window: i64, now: i64) -> u64 {
        let into_current = now.saturating_sub(self.flood_start).clamp(0, window);
        let overlap = (window - into_current) as u128;
        let from_previous = (self.flood_previous as u128 * overlap / window as u128) as u64;
        self.flood_current.saturating_add(from_previous)
    }

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

    fn take_token(&mut self, policy: &AnomalyPolicy, now: i64) -> Verdict {
        const MILLI: f64 = 1000.0;
        let capacity = (policy.burst * MILLI) as i64;
        let (tokens, last) = self.bucket.unwrap_or((capacity, now));
        let elapsed_ms = now.saturating_sub(last).max(0) as f64;
        let refill = (elapsed_ms * policy.per_second) as i64; // thousandths of a token per ms = per second
        let tokens = tokens.saturating_add(refill).min(capacity);
        if tokens >= 1000 {
            self.bucket = Some((tokens - 1000, now));
            if policy.shared {
                add_count(&mut self.unshared_served, self.flood_start, 1);
                if let Some((known, _)) = &mut self.served_known {
                    add_count(known, self.flood_start, 1);
                }
            }
            Verdict::Allow
        } else {
            self.bucket = Some((tokens, now));
            let missing = (1000 - tokens) as f64 / MILLI;
            let secs = (missing / policy.per_second).ceil().max(1.0) as u64;
            Verdict::Slow {
                retry_after_secs: secs,
            }
        }
    }
}

/// Adds `n` requests to window `w`.
fn add_count(counts: &mut Vec<(i64, u64)>, w: i64, n: u64) {
    match counts.iter_mut().find(|(x, _)| *x == w) {
        Some((_, c)) => *c = c.saturating_add(n),
        None => counts.push((w, n)),
    }
}

/// Notes that `network` was seen at `at` (keeping the latest sighting).
fn note_seen(seen: &mut Vec<(IpNet, i64)>, network: IpNet, at: i64) {
    match seen.iter_mut().find(|(n, _)| *n == network) {
        Some((_, s)) => *s = (*s).max(at),
        None => seen.push((network, at)),
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> AnomalyPolicy {
        AnomalyPolicy {
            window: Duration::from_secs(86_400),
            max_networks: 3,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            flood_window: Duration::from_secs(3600),
            flood_max_requests: 1_000_000,
            per_second: 1_000_000.0,
            burst: 1_000_000.0,
            shared: true,
        }
    }

    fn net(p: &AnomalyPolicy, s: &str) -> IpNet {
        p.network_of(s.parse().unwrap())
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

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
    fn networks_are_prefixes() {
        let p = policy();
        assert_eq!(net(&p, "203.0.113.77").to_string(), "203.0.113.0/24");
        assert_eq!(net(&p, "::ffff:203.0.113.77").to_string(), "203.0.113.0/24");
        assert_eq!(net(&p, "2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_network_is_known_while_it_counts() {
        let p = policy();
        let day = 86_400_000;
        let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        assert!(a.knows_network(&p, net(&p, "10.0.0.200"), t(1)));
        assert!(!a.knows_network(&p, net(&p, "10.0.1.1"), t(1)));
        a.observe(&p, net(&p, "10.0.1.1"), t(2));
        assert!(a.knows_network(&p, net(&p, "10.0.1.1"), t(3)));
        // A whole window later it no longer counts, so it is news again.
        assert!(!a.knows_network(&p, net(&p, "10.0.1.1"), t(2 + day)));
    }

    #[test]
    fn service_keys_are_exempt_from_networks_floods_and_the_rate_limit() {
        let p = AnomalyPolicy {
            max_networks: 2,
            flood_max_requests: 10,
            per_second: 1.0,
            burst: 2.0,
            ..policy()
        };
        let mut service = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        let mut player = service.clone();
        let mut refused = None;
        for i in 0..200u8 {
            let n = net(&p, &format!("10.{i}.0.1"));
            assert_eq!(
                service.observe_for(&p, Role::Service, n, t(i64::from(i))),
                Verdict::Allow,
                "request {i}"
            );
            if refused.is_none() {
                let verdict = player.observe_for(&p, Role::User, n, t(i64::from(i)));
                if verdict != Verdict::Allow {
                    refused = Some(verdict);
                }
            }
        }
        assert_eq!(refused, Some(Verdict::Revoke(RevocationReason::IpChanges)));
        assert!(!service.has_unshared(), "nothing counted for a service key");
        assert_eq!(service, KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0)));
    }

    #[test]
    fn the_fourth_network_revokes_with_three_allowed() {
        let p = policy();
        let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        assert_eq!(a.observe(&p, net(&p, "10.0.1.1"), t(1)), Verdict::Allow);
        assert_eq!(a.observe(&p, net(&p, "10.0.2.1"), t(2)), Verdict::Allow);
        assert_eq!(a.observe(&p, net(&p, "10.0.0.9"), t(3)), Verdict::Allow);
        assert_eq!(
            a.observe(&p, net(&p, "10.0.3.1"), t(4)),
            Verdict::Revoke(RevocationReason::IpChanges)
        );
    }

    #[test]
    fn many_addresses_in_one_network_are_one_network() {
        let p = policy();
        let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        for i in 0..=255 {
            assert_eq!(
                a.observe(&p, net(&p, &format!("10.0.7.{i}")), t(i)),
                Verdict::Allow
            );
        }
        assert_eq!(a.networks_in_window(&p, t(300)), 2);
    }

    #[test]
    fn networks_age_out_of_the_window() {
        let p = policy();
        let day = 86_400_000;
        let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        a.observe(&p, net(&p, "10.0.1.1"), t(1));
        a.observe(&p, net(&p, "10.0.2.1"), t(2));
        // A day later the first three no longer count.
        for (i, ip) in ["10.0.3.1", "10.0.4.1", "10.0.5.1"].iter().enumerate() {
            assert_eq!(a.observe(&p, net(&p, ip), t(day + 10 + i as i64)), Verdict::Allow);
        }
        assert_eq!(
            a.observe(&p, net(&p, "10.0.6.1"), t(day + 20)),
            Verdict::Revoke(RevocationReason::IpChanges)
        );
    }

    /// A store shared by instances, as the real ones behave: deltas added, totals returned.
    #[derive(Default)]
    struct Shared {
        counts: std::collections::BTreeMap<i64, u64>,
        served: std::collections::BTreeMap<i64, u64>,
        networks: std::collections::BTreeMap<IpNet, i64>,
    }

    impl Shared {
        fn share(
            &mut self,
            a: &mut KeyActivity,
            p: &AnomalyPolicy,
            now: Timestamp,
        ) -> Option<RevocationReason> {
            let delta = a.take_unshared();
            for (w, n) in delta.counts {
                *self.counts.entry(w).or_default() += n;
            }
            for (net, seen) in delta.networks {
                let s = self.networks.entry(net).or_default();
                *s = (*s).max(seen);
            }
            for (w, n) in delta.served {
                *self.served.entry(w).or_default() += n;
            }
            let totals = SharedActivity {
                counts: self.counts.iter().map(|(w, n)| (*w, *n)).collect(),
                served: self.served.iter().map(|(w, n)| (*w, *n)).collect(),
                networks: self.networks.iter().map(|(n, s)| (*n, *s)).collect(),
            };
            a.absorb(p, &totals, now)
        }
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

    #[test]
    fn a_flood_revokes_past_its_threshold() {
        let mut p = policy();
        p.flood_max_requests = 10;
        let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        let n = net(&p, "10.0.0.1");
        for i in 0..10 {
            assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow, "request {i}");
        }
        assert_eq!(
            a.observe(&p, n, t(11)),
            Verdict::Revoke(RevocationReason::RequestFlood)
        );
    }

    #[test]
    fn the_flood_window_slides() {
        let mut p = policy();
        p.flood_max_requests = 10;
        let hour = 3_600_000;
        let n = net(&p, "10.0.0.1");
        let mut a = KeyActivity::issued(Some(n), t(0));
        for i in 0..10 {
            assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow);
        }
        // Half-way through the next window half of the old requests still count (estimate).
        for i in 0..5 {
            assert_eq!(a.observe(&p, n, t(hour + hour / 2 + i)), Verdict::Allow, "{i}");
        }
        // The estimate rounds the old requests down: the 6th or 7th new one crosses the line.
        let sixth = a.observe(&p, n, t(hour + hour / 2 + 10));
        let seventh = a.observe(&p, n, t(hour + hour / 2 + 11));
        assert!(matches!(
            (sixth, seventh),
            (Verdict::Revoke(_), _) | (Verdict::Allow, Verdict::Revoke(_))
        ));
        // Two windows later everything is forgotten.
        let mut b = KeyActivity::issued(Some(n), t(0));
        for i in 0..10 {
            b.observe(&p, n, t(i));
        }
        for i in 0..10 {
            assert_eq!(b.observe(&p, n, t(2 * hour + i)), Verdict::Allow);
        }
    }

    #[test]
    fn the_rate_limit_slows_without_revoking_and_recovers() {
        let mut p = policy();
        p.per_second = 2.0;
        p.burst = 3.0;
        let n = net(&p, "10.0.0.1");
        let mut a = KeyActivity::issued(Some(n), t(0));
        for i in 0..3 {
            assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow);
        }
        assert_eq!(a.observe(&p, n, t(3)), Verdict::Slow { retry_after_secs: 1 });
        assert_eq!(a.observe(&p, n, t(4)), Verdict::Slow { retry_after_secs: 1 });
        // Half a second refills one token at 2/s.
        assert_eq!(a.observe(&p, n, t(504)), Verdict::Allow);
        p.per_second = 0.1;
        let mut slow = KeyActivity::issued(Some(n), t(0));
        for i in 0..3 {
            slow.observe(&p, n, t(i));
        }
        assert_eq!(slow.observe(&p, n, t(3)), Verdict::Slow { retry_after_secs: 10 });
    }

    #[test]
    fn state_survives_serialisation_and_stays_small() {
        let p = policy();
        let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
        a.observe(&p, net(&p, "2001:db8::1"), t(5));
        let json = serde_json::to_string(&a).unwrap();
        let back: KeyActivity = serde_json::from_str(&json).unwrap();
        assert_eq!(back.networks, a.networks);
        assert_eq!(
            (back.flood_current, back.flood_start),
            (a.flood_current, a.flood_start)
        );
        assert!(json.len() < 200, "{json}");
        // Whatever arrives, no more than max_networks + 1 networks are kept.
        for i in 0..1000 {
            a.observe(&p, net(&p, &format!("10.{}.{}.1", i / 256, i % 256)), t(10 + i));
        }
        assert!(a.networks.len() <= p.max_networks + 1);
    }

    proptest! {
        /// However requests and sharing interleave on two instances, the shared totals count
        /// every request exactly once, and each instance ends up knowing them all.
        #[test]
        fn shared_counts_are_exact(steps in proptest::collection::vec(0u8..4, 1..200)) {
            let mut p = policy();
            p.flood_max_requests = u64::MAX;
            p.burst = 1e9;
            let n = net(&p, "10.0.0.1");
            let mut nodes = [KeyActivity::issued(Some(n), t(0)), KeyActivity::issued(Some(n), t(0))];
            let mut store = Shared::default();
            let mut served = 0u64;
            for (i, step) in steps.iter().enumerate() {
                let now = t(i as i64);
                match step {
                    0 | 1 => {
                        nodes[*step as usize].observe(&p, n, now);
                        served += 1;
                    }
                    2 | 3 => {
                        store.share(&mut nodes[*step as usize - 2], &p, now);
                    }
                    _ => unreachable!(),
                }
            }
            let end = t(steps.len() as i64);
            store.share(&mut nodes[0], &p, end);
            store.share(&mut nodes[1], &p, end);
            store.share(&mut nodes[0], &p, end);
            prop_assert_eq!(store.counts.values().sum::<u64>(), served);
            for node in &nodes {
                prop_assert_eq!(node.flood_current + node.flood_previous, served);
            }
        }

        /// For any sequence of (time, network) events, the key is revoked exactly at the first
        /// event where some window of length `window` holds more than `max_networks` networks.
        #[test]
        fn revoked_exactly_when_a_window_holds_too_many_networks(
            steps in proptest::collection::vec((0i64..40, 0u8..6), 1..60),
            max in 1usize..5,
            window in 1u64..100,
        ) {
            let mut p = policy();
            p.max_networks = max;
            p.window = Duration::from_millis(window);
            let nets: Vec<IpNet> = (0..6).map(|i| net(&p, &format!("10.0.{i}.1"))).collect();
            let mut a = KeyActivity::issued(Some(nets[0]), t(0));
            let mut events = vec![(0i64, 0u8)];
            let mut now = 0;
            let mut revoked_at = None;
            for (i, (dt, n)) in steps.iter().enumerate() {
                now += dt;
                events.push((now, *n));
                if a.observe(&p, nets[*n as usize], t(now)) == Verdict::Revoke(RevocationReason::IpChanges) {
                    revoked_at = Some(i);
                    break;
                }
            }
            // Brute force: distinct networks among events in (now - window, now].
            let mut expected = None;
            for i in 1..events.len() {
                let (ti, _) = events[i];
                let mut distinct: Vec<u8> = events[..=i].iter()
                    .filter(|(tj, _)| ti - tj < window as i64)
                    .map(|(_, n)| *n).collect();
                distinct.sort();
                distinct.dedup();
                if distinct.len() > max {
                    expected = Some(i - 1);
                    break;
                }
            }
            prop_assert_eq!(revoked_at, expected);
        }
    }
}
