//! Sign-in and sign-up throttles: which counters an attempt is charged to, and what to do with
//! the charge once the attempt's outcome is known.
//!
//! An attempt is counted *before* its password is hashed, in the database, in the same
//! transaction that checks the limits ([`Throttles::count_attempt`](crate::store::Throttles::count_attempt)): 60 concurrent guesses against
//! a limit of 5 get 5 password checks and 55 × 429, on one instance or on several sharing one
//! database. A counted attempt is a failure until it proves otherwise: a correct password takes
//! it back (and forgives the account's failures from that network), and so does an attempt that
//! could not be decided (the hashing queue was full). A refused attempt is not counted, so a
//! counter never holds more than its limit within its window.
//!
//! Counters on accounts are keyed by a keyed digest of the canonical name ([`NameKey`]), so a
//! password typed into the username field never reaches the table in clear.

use std::net::IpAddr;
use std::sync::Arc;

use crate::domain::{wide_network, Counter, NameKey, Scope, ThrottlePolicy, Timestamp};
use crate::store::{Admission, CountedAttempt, Store, StoreResult};

/// The verdict on a sign-in attempt before its password is checked.
#[derive(Debug)]
pub enum SignInGate {
    /// Counted as a failure until [`Throttle::succeeded`] or [`Throttle::undecided`].
    Counted(Attempt),
    /// Throttled by the account-and-network, network or wide-network counter.
    Throttled { retry_after_secs: u64 },
    /// Throttled only by failures against the account from many networks: the caller may retry
    /// without the account counter (see [`Throttle::count_sign_in`]) if the network is one the
    /// owner signed in from recently, so that an attacker cannot lock the owner out.
    AccountThrottled { retry_after_secs: u64 },
}

/// A counted attempt and the counters it was charged to.
#[derive(Debug)]
pub struct Attempt {
    counted: CountedAttempt,
    /// The account-and-network counter, forgiven by a correct password.
    pair: Option<Counter>,
}

/// Who an attempt is about: an account name (canonical, known or not) from a client address.
pub struct Subject<'a> {
    pub account: Option<&'a str>,
    pub ip: IpAddr,
    /// The client network (`anomaly.ipv4_prefix` / `ipv6_prefix`).
    pub network: &'a str,
}

pub struct Throttle {
    policy: ThrottlePolicy,
    store: Arc<dyn Store>,
    names: Arc<NameKey>,
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy, store: Arc<dyn Store>, names: Arc<NameKey>) -> Self {
        Self { policy, store, names }
    }

    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// The keyed digest of a name: how names that match no account appear in logs and tables.
    pub fn name_digest(&self, name: &str) -> String {
        self.names.digest(name)
    }

    fn counter(scope: Scope, subject: String) -> Counter {
        Counter { scope, subject }
    }

    /// Charges a sign-in attempt (or a password check for a sensitive change) to its counters.
    /// With `exempt_account`, the account-wide counter is neither checked nor charged (the
    /// caller's network is one the owner signed in from recently).
    pub async fn count_sign_in(
        &self,
        who: &Subject<'_>,
        exempt_account: bool,
        now: Timestamp,
    ) -> StoreResult<SignInGate> {
        let mut counters = Vec::with_capacity(4);
        let mut pair = None;
        if let Some(account) = who.account {
            let digest = self.names.digest(account);
            let p = Self::counter(Scope::AccountNetwork, format!("{digest}|{}", who.network));
            counters.push(p.clone());
            pair = Some(p);
            if !exempt_account {
                counters.push(Self::counter(Scope::Account, digest));
            }
        }
        counters.push(Self::counter(Scope::Network, who.network.to_owned()));
        counters.push(Self::counter(
            Scope::WideNetwork,
            wide_network(who.ip).to_string(),
        ));
        match self.store.count_attempt(&counters, &self.policy, now).await? {
            Admission::Counted(counted) => Ok(SignInGate::Counted(Attempt { counted, pair })),
            Admission::Refused { blocked } => {
                let wait = blocked.iter().map(|(_, w)| *w).max().unwrap_or(1);
                if blocked.iter().all(|(scope, _)| *scope == Scope::Account) {
                    Ok(SignInGate::AccountThrottled {
                        retry_after_secs: wait,
                    })
                } else {
                    Ok(SignInGate::Throttled {
                        retry_after_secs: wait,
                    })
                }
            }
        }
    }

    /// The password was right: the attempt was no failure, and the account's failures from this
    /// network are forgiven.
    pub async fn succeeded(&self, attempt: Attempt) -> StoreResult<()> {
        self.store
            .uncount_attempt(&attempt.counted, attempt.pair.as_ref())
            .await
    }

    /// The attempt could not be decided (the hashing queue was full) or was refused for another
    /// reason than its password: it does not count.
    pub async fn undecided(&self, attempt: Attempt) -> StoreResult<()> {
        self.store.uncount_attempt(&attempt.counted, None).await
    }

    /// Charges a sign-up attempt to its network; `Err(wait)` when the network is at its limit.
    pub async fn count_sign_up(
        &self,
        ip: IpAddr,
        network: &str,
        now: Timestamp,
    ) -> StoreResult<Result<Attempt, u64>> {
        let counters = [
            Self::counter(Scope::Signup, network.to_owned()),
            Self::counter(Scope::WideSignup, wide_network(ip).to_string()),
        ];
        Ok(
            match self.store.count_attempt(&counters, &self.policy, now).await? {
                Admission::Counted(counted) => Ok(Attempt { counted, pair: None }),
                Admission::Refused { blocked } => Err(blocked.iter().map(|(_, w)| *w).max().unwrap_or(1)),
            },
        )
    }
}
