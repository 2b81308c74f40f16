//! Throttles as storage keeps them: the attempts counted against each counter, and the networks
//! an account signed in from (a known network is throttled by its own counter).

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{Counter, Scope, ThrottlePolicy, Timestamp};

/// The rows of one counted attempt (one per counter), so that it can be taken back when it
/// turns out not to be a failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountedAttempt(pub Vec<i64>);

/// What [`Throttles::count_attempt`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Counted against every counter.
    Counted(CountedAttempt),
    /// Nothing counted: these counters are at their limit, each with the seconds until it
    /// frees (at least 1).
    Refused { blocked: Vec<(Scope, u64)> },
}

#[async_trait]
pub trait Throttles: Send + Sync {
    /// Counts one attempt against each counter at `now`, atomically: when any counter already
    /// holds its limit of attempts within its window (`policy`, decided by
    /// [`crate::domain::FailureLog`]), nothing is counted and the blocked counters are returned.
    /// Exact under any concurrency: attempts are serialised per database (SQLite's write lock) or
    /// per counter (PostgreSQL's advisory locks, across instances).
    async fn count_attempt(
        &self,
        counters: &[Counter],
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> StoreResult<Admission>;

    /// Takes back a counted attempt (it was not a failure), and forgets every attempt counted
    /// against `forgive` (a correct password forgives its account-and-network failures).
    async fn uncount_attempt(&self, attempt: &CountedAttempt, forgive: Option<&Counter>) -> StoreResult<()>;

    /// Notes a successful sign-in from `network`.
    async fn remember_network(&self, user_id: Uuid, network: &str, at: Timestamp) -> StoreResult<()>;

    /// Whether the account with this canonical name signed in successfully from `network` at or
    /// after `since`. By name, so that a throttled sign-in makes the same one read whether or not
    /// the name is an account's.
    async fn is_known_network(
        &self,
        canonical_name: &str,
        network: &str,
        since: Timestamp,
    ) -> StoreResult<bool>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// Forgets every attempt of one counter.
pub(super) const FORGIVE: &str = "DELETE FROM throttle_attempts WHERE scope = $1 AND subject = $2";

/// Whether an account ($1, by canonical name) signed in from network $2 at or after $3.
pub(super) const KNOWN_NETWORK: &str = "SELECT 1 FROM users u JOIN known_networks k ON k.user_id = u.id \
     WHERE u.username_canonical = $1 AND k.network = $2 AND k.last_success_ms >= $3";
