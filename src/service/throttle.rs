//! Sign-in and sign-up throttles: failure logs per subject in memory (bounded caches), written
//! to storage in batches so that a restart does not reset them, and read back at start-up.
//!
//! No database write happens per attempt; the only read is for an account throttled by
//! failures from many networks, to see whether the caller's network is one its owner signed in
//! from recently (then it stays open: an attacker cannot lock the owner out).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::domain::{FailureLog, ThrottlePolicy, Timestamp};
use crate::store::{Store, StoreError, ThrottleRow};

/// Subjects remembered at most (per process); the least recently used are forgotten first.
const CAPACITY: u64 = 500_000;

/// What a throttle counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One account from one client network.
    AccountNetwork,
    /// One account from all networks.
    Account,
    /// One client network, any accounts (credential stuffing).
    Network,
    /// Sign-up attempts from one client network.
    Signup,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::AccountNetwork => "account_network",
            Scope::Account => "account",
            Scope::Network => "network",
            Scope::Signup => "signup",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Scope::AccountNetwork,
            Scope::Account,
            Scope::Network,
            Scope::Signup,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

type Subject = (Scope, String);

/// The verdict of the sign-in throttles before a password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInCheck {
    Open,
    /// Throttled by the account-and-network or the network counter: wait this long.
    Throttled {
        retry_after_secs: u64,
    },
    /// Throttled only by failures against the account from many networks: open if the caller's
    /// network is one the owner signed in from recently.
    AccountThrottled {
        retry_after_secs: u64,
    },
}

pub struct Throttle {
    policy: ThrottlePolicy,
    logs: moka::sync::Cache<Subject, Arc<Mutex<FailureLog>>>,
    dirty: Mutex<HashSet<Subject>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        let keep = policy.failure_window.max(policy.signup_window);
        Self {
            policy,
            logs: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(keep)
                .build(),
            dirty: Mutex::new(HashSet::new()),
        }
    }

    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    fn limit(&self, scope: Scope) -> (usize, Duration) {
        let p = &self.policy;
        match scope {
            Scope::AccountNetwork => (p.per_account_network, p.failure_window),
            Scope::Account => (p.per_account, p.failure_window),
            Scope::Network => (p.per_network, p.failure_window),
            Scope::Signup => (p.signups_per_network, p.signup_window),
        }
    }

    fn blocked(&self, scope: Scope, subject: &str, now: Timestamp) -> Option<u64> {
        let log = self.logs.get(&(scope, subject.to_owned()))?;
        let (limit, window) = self.limit(scope);
        let blocked = lock(&log).blocked_for(limit, window, now);
        blocked
    }

    fn record(&self, scope: Scope, subject: String, now: Timestamp) {
        let (limit, _) = self.limit(scope);
        let key = (scope, subject);
        let log = self
            .logs
            .get_with(key.clone(), || Arc::new(Mutex::new(FailureLog::default())));
        lock(&log).record(now, limit);
        lock(&self.dirty).insert(key);
    }

    fn account_network(account: &str, network: &str) -> String {
        format!("{account}|{network}")
    }

    /// Checks the three sign-in counters. `account` is the canonical name (known or not), or
    /// `None` when the name is not even valid.
    pub fn check_sign_in(&self, account: Option<&str>, network: &str, now: Timestamp) -> SignInCheck {
        let by_pair = account
            .and_then(|a| self.blocked(Scope::AccountNetwork, &Self::account_network(a, network), now));
        let by_network = self.blocked(Scope::Network, network, now);
        if let Some(wait) = by_pair.max(by_network) {
            return SignInCheck::Throttled {
                retry_after_secs: wait,
            };
        }
        match account.and_then(|a| self.blocked(Scope::Account, a, now)) {
            Some(wait) => SignInCheck::AccountThrottled {
                retry_after_secs: wait,
            },
            None => SignInCheck::Open,
        }
    }

    /// Counts a failed sign-in (or a wrong password on a sensitive change).
    pub fn sign_in_failed(&self, account: Option<&str>, network: &str, now: Timestamp) {
        if let Some(a) = account {
            self.record(Scope::AccountNetwork, Self::account_network(a, network), now);
            self.record(Scope::Account, a.to_owned(), now);
        }
        self.record(Scope::Network, network.to_owned(), now);
    }

    /// A correct password from this network: its account-and-network failures are forgiven.
    pub fn sign_in_succeeded(&self, account: &str, network: &str) {
        let key = (Scope::AccountNetwork, Self::account_network(account, network));
        if let Some(log) = self.logs.get(&key) {
            let mut log = lock(&log);
            if !log.is_empty() {
                *log = FailureLog::default();
                lock(&self.dirty).insert(key);
            }
        }
    }

    pub fn check_sign_up(&self, network: &str, now: Timestamp) -> Option<u64> {
        self.blocked(Scope::Signup, network, now)
    }

    pub fn sign_up_attempted(&self, network: &str, now: Timestamp) {
        self.record(Scope::Signup, network.to_owned(), now);
    }

    /// Reads back the logs written by earlier runs (or other instances).
    pub async fn restore(&self, store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
        let since = now.minus(self.policy.failure_window.max(self.policy.signup_window));
        let rows = store.load_throttles(since).await?;
        let mut restored = 0;
        for row in rows {
            let (Some(scope), Ok(log)) = (
                Scope::parse(&row.scope),
                serde_json::from_str::<FailureLog>(&row.failures),
            ) else {
                continue;
            };
            self.logs.insert((scope, row.subject), Arc::new(Mutex::new(log)));
            restored += 1;
        }
        Ok(restored)
    }

    /// Writes the logs that changed since the last flush, in one transaction.
    pub async fn flush(&self, store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
        let subjects: Vec<Subject> = lock(&self.dirty).drain().collect();
        if subjects.is_empty() {
            return Ok(0);
        }
        let rows: Vec<ThrottleRow> = subjects
            .iter()
            .map(|(scope, subject)| {
                let failures = match self.logs.get(&(*scope, subject.clone())) {
                    Some(log) => {
                        let log = lock(&log);
                        if log.is_empty() {
                            String::new()
                        } else {
                            serde_json::to_string(&*log).unwrap_or_default()
                        }
                    }
                    None => String::new(),
                };
                ThrottleRow {
                    scope: scope.as_str().to_owned(),
                    subject: subject.clone(),
                    failures,
                    updated: now,
                }
            })
            .collect();
        match store.save_throttles(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                lock(&self.dirty).extend(subjects);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            per_account_network: 3,
            per_account: 5,
            per_network: 8,
            failure_window: Duration::from_secs(900),
            signups_per_network: 2,
            signup_window: Duration::from_secs(3600),
        }
    }

    #[test]
    fn counters_throttle_in_their_scopes() {
        let t = Throttle::new(policy());
        let now = Timestamp::from_millis(1_000_000);
        for _ in 0..3 {
            assert_eq!(
                t.check_sign_in(Some("bill"), "10.0.0.0/24", now),
                SignInCheck::Open
            );
            t.sign_in_failed(Some("bill"), "10.0.0.0/24", now);
        }
        assert!(matches!(
            t.check_sign_in(Some("bill"), "10.0.0.0/24", now),
            SignInCheck::Throttled { .. }
        ));
        // Another network is still open for bill, until the account counter fills up.
        assert_eq!(
            t.check_sign_in(Some("bill"), "10.0.1.0/24", now),
            SignInCheck::Open
        );
        t.sign_in_failed(Some("bill"), "10.0.1.0/24", now);
        t.sign_in_failed(Some("bill"), "10.0.2.0/24", now);
        assert!(matches!(
            t.check_sign_in(Some("bill"), "10.0.3.0/24", now),
            SignInCheck::AccountThrottled { .. }
        ));
        // Other accounts from an untouched network are open.
        assert_eq!(
            t.check_sign_in(Some("ted"), "10.0.9.0/24", now),
            SignInCheck::Open
        );
    }

    #[test]
    fn success_forgives_the_pair_only() {
        let t = Throttle::new(policy());
        let now = Timestamp::from_millis(1_000_000);
        for _ in 0..3 {
            t.sign_in_failed(Some("bill"), "10.0.0.0/24", now);
        }
        t.sign_in_succeeded("bill", "10.0.0.0/24");
        assert_eq!(
            t.check_sign_in(Some("bill"), "10.0.0.0/24", now),
            SignInCheck::Open
        );
    }

    #[test]
    fn sign_ups_are_counted_per_network() {
        let t = Throttle::new(policy());
        let now = Timestamp::from_millis(0);
        t.sign_up_attempted("10.0.0.0/24", now);
        assert_eq!(t.check_sign_up("10.0.0.0/24", now), None);
        t.sign_up_attempted("10.0.0.0/24", now);
        assert_eq!(t.check_sign_up("10.0.0.0/24", now), Some(3600));
        assert_eq!(t.check_sign_up("10.0.1.0/24", now), None);
    }
}
