//! Throttles for password guessing and sign-up floods: the recent failures of a subject (an
//! account, a client network, or both), and whether it must wait.
//!
//! A [`FailureLog`] keeps the times of the subject's last `limit` failures and no more, so its
//! size is bounded by the limit however long an attack lasts, and the answer is exact: the
//! subject is throttled while `limit` failures lie within the window, until the oldest of them
//! leaves it (which is also the `Retry-After`).
//!
//! The store keeps one row per counted attempt and hands each counter's latest attempts to
//! [`FailureLog`] inside the transaction that counts a new one, so that the decision is made
//! here, in plain Rust, and the count is exact however many requests (or instances) race.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// The `[throttle]` settings as rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub per_account_network: usize,
    pub per_account: usize,
    pub per_network: usize,
    /// One wide network (IPv4 /16, IPv6 /48), any accounts: an attacker holding a /48 of IPv6
    /// space has 65,536 /64 networks, but one wide network.
    pub per_wide_network: usize,
    pub failure_window: Duration,
    pub signups_per_network: usize,
    /// Sign-up attempts from one wide network (IPv4 /16, IPv6 /48).
    pub signups_per_wide_network: usize,
    pub signup_window: Duration,
}

/// What a throttle counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Sign-in failures of one account from one client network.
    AccountNetwork,
    /// Sign-in failures of one account from all networks.
    Account,
    /// Sign-in failures from one client network, any accounts (credential stuffing).
    Network,
    /// Sign-in failures from one wide network, any accounts.
    WideNetwork,
    /// Sign-up attempts from one client network.
    Signup,
    /// Sign-up attempts from one wide network.
    WideSignup,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::AccountNetwork,
        Scope::Account,
        Scope::Network,
        Scope::WideNetwork,
        Scope::Signup,
        Scope::WideSignup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AccountNetwork => "account_network",
            Scope::Account => "account",
            Scope::Network => "network",
            Scope::WideNetwork => "wide_network",
            Scope::Signup => "signup",
            Scope::WideSignup => "wide_signup",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl ThrottlePolicy {
    /// The limit and window of a scope.
    pub fn limit(&self, scope: Scope) -> (usize, Duration) {
        match scope {
            Scope::AccountNetwork => (self.per_account_network, self.failure_window),
            Scope::Account => (self.per_account, self.failure_window),
            Scope::Network => (self.per_network, self.failure_window),
            Scope::WideNetwork => (self.per_wide_network, self.failure_window),
            Scope::Signup => (self.signups_per_network, self.signup_window),
            Scope::WideSignup => (self.signups_per_wide_network, self.signup_window),
        }
    }

    /// How long attempts must be kept to decide any scope.
    pub fn longest_window(&self) -> Duration {
        self.failure_window.max(self.signup_window)
    }
}

/// The wide network of an address (IPv4 /16, IPv6 /48): what one organisation or one attacker
/// with a routed IPv6 prefix typically holds.
pub fn wide_network(ip: IpAddr) -> IpNet {
    let ip = super::anomaly::canonical_ip(ip);
    let prefix = match ip {
        IpAddr::V4(_) => 16,
        IpAddr::V6(_) => 48,
    };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// One counter an attempt is charged to: a scope and its subject (a network, or the keyed
/// digest of an account name; never a name in clear).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Counter {
    pub scope: Scope,
    pub subject: String,
}

/// The times (ms) of the latest failures of one subject, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FailureLog(VecDeque<i64>);

impl FailureLog {
    /// A log of these attempt times (ms, any order).
    pub fn from_millis(times: impl IntoIterator<Item = i64>) -> Self {
        let mut v: Vec<i64> = times.into_iter().collect();
        v.sort_unstable();
        Self(v.into())
    }

    /// Records a failure, keeping only the latest `limit` (older ones cannot change a verdict).
    pub fn record(&mut self, now: Timestamp, limit: usize) {
        let at = now.as_millis();
        // Keep the log sorted even if the clock stepped back.
        let pos = self.0.iter().rposition(|t| *t <= at).map_or(0, |p| p + 1);
        self.0.insert(pos, at);
        while self.0.len() > limit.max(1) {
            self.0.pop_front();
        }
    }

    /// Failures within the window ending at `now`.
    pub fn count(&self, window: Duration, now: Timestamp) -> usize {
        let horizon = now.minus(window).as_millis();
        self.0.iter().filter(|t| **t > horizon).count()
    }

    /// `Some(wait)` while `limit` or more failures lie within the window: how long until the
    /// oldest of them leaves it, in whole seconds, at least 1.
    pub fn blocked_for(&self, limit: usize, window: Duration, now: Timestamp) -> Option<u64> {
        if limit == 0 || self.count(window, now) < limit {
            return None;
        }
        // The log is sorted; the failure that must expire is the limit-th most recent one.
        let pivot = self.0[self.0.len() - limit];
        let free_at = Timestamp::from_millis(pivot).plus(window).as_millis();
        let wait_ms = free_at.saturating_sub(now.as_millis()).max(0) as u64;
        Some(wait_ms.div_ceil(1000).max(1))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The most recent failure, if any.
    pub fn latest(&self) -> Option<Timestamp> {
        self.0.back().map(|t| Timestamp::from_millis(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WINDOW: Duration = Duration::from_secs(900);

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn throttles_at_the_limit_until_the_oldest_failure_leaves_the_window() {
        let mut log = FailureLog::default();
        for i in 0..4 {
            log.record(t(i * 1000), 5);
            assert_eq!(log.blocked_for(5, WINDOW, t(i * 1000)), None);
        }
        log.record(t(4000), 5);
        assert_eq!(log.blocked_for(5, WINDOW, t(4000)), Some(900 - 4));
        assert_eq!(log.blocked_for(5, WINDOW, t(899_999)), Some(1));
        assert_eq!(log.blocked_for(5, WINDOW, t(900_000)), None);
    }

    #[test]
    fn keeps_no_more_than_the_limit() {
        let mut log = FailureLog::default();
        for i in 0..1000 {
            log.record(t(i), 5);
        }
        assert_eq!(log.0.len(), 5);
        assert_eq!(log.latest(), Some(t(999)));
    }

    #[test]
    fn survives_serialisation() {
        let mut log = FailureLog::default();
        log.record(t(5), 3);
        log.record(t(7), 3);
        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(json, "[5,7]");
        assert_eq!(serde_json::from_str::<FailureLog>(&json).unwrap(), log);
    }

    #[test]
    fn wide_networks_are_v4_16_and_v6_48() {
        let w = |s: &str| wide_network(s.parse().unwrap()).to_string();
        assert_eq!(w("203.0.113.7"), "203.0.0.0/16");
        assert_eq!(w("::ffff:203.0.113.7"), "203.0.0.0/16");
        assert_eq!(w("2001:db8:aaaa:bbbb::1"), "2001:db8:aaaa::/48");
        assert_eq!(w("2001:db8:aaaa:ffff::1"), "2001:db8:aaaa::/48");
    }

    #[test]
    fn a_log_from_stored_times_decides_like_a_recorded_one() {
        let mut recorded = FailureLog::default();
        for at in [30, 10, 20] {
            recorded.record(t(at), 5);
        }
        assert_eq!(FailureLog::from_millis([20, 30, 10]), recorded);
    }

    proptest! {
        /// Blocked exactly when at least `limit` of all failures so far lie within the window.
        #[test]
        fn blocked_exactly_when_limit_failures_are_recent(
            gaps in proptest::collection::vec(0i64..400_000, 1..40),
            limit in 1usize..8,
            probe in 0i64..2_000_000,
        ) {
            let mut log = FailureLog::default();
            let mut all = Vec::new();
            let mut now = 0;
            for g in gaps {
                now += g;
                log.record(t(now), limit);
                all.push(now);
            }
            let at = now + probe;
            let recent = all.iter().filter(|x| **x > at - WINDOW.as_millis() as i64).count();
            prop_assert_eq!(log.blocked_for(limit, WINDOW, t(at)).is_some(), recent >= limit);
        }
    }
}
