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

mod sharing;

pub use sharing::{ActivityDelta, SharedActivity};

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

/// A network in steady use goes without its last-seen time being shared again for this part of
/// the window (API.md: refreshed at most once per `anomaly.window / 24`, an hour by default):
/// the networks rule needs when a network was last seen to within the window, not to the minute.
fn reshare_seen_after_ms(policy: &AnomalyPolicy) -> i64 {
    (duration_ms(policy.window) / 24).max(1)
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
mod tests;
