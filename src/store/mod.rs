//! Storage boundary: everything the service keeps, behind one trait.
//!
//! The handlers and the rules see only [`Store`]; `sqlite` fills it for one machine, and
//! `postgres` for several instances sharing one database, without touching them.

mod error;
mod health;
mod import;
pub mod postgres;
pub mod reset_codes;
mod rows;
pub mod sqlite;
mod stream;
mod tickets;

#[cfg(test)]
mod conformance;

pub use error::{BoxError, StoreError, StoreResult};
pub use import::{ImportKey, KeyOutcome, UserOutcome};
pub use reset_codes::{Redeemed, ResetCodeStore};
pub use tickets::{NewTicket, TakenTicket};

use std::net::IpAddr;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::import::{ImportUser, Run};
use crate::domain::{
    ActivityDelta, Counter, Event, KeyDigest, KeyPolicy, NewEvent, RevocationReason, Role, Scope,
    SharedActivity, StoredHash, Suspension, ThrottlePolicy, Timestamp, User,
};
use crate::domain::{FeedBounds, FeedEntry};

/// The reason of the revocation stream for the keys of a deleted account (not a key's own reason:
/// the key is gone with the account).
pub const ACCOUNT_DELETED: &str = "account_deleted";

/// A key about to be stored.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub digest: KeyDigest,
    pub created: Timestamp,
    /// The address the key was issued to (its first network).
    pub created_ip: Option<IpAddr>,
}

/// The password hash a sign-in verified, and the upgrade it computed (the configured Argon2id,
/// when the verified hash was imported or made with other parameters). A key is issued only
/// while `verified` is still the account's hash, and the upgrade replaces exactly that hash, so a
/// sign-in that overlaps a password change can neither outlive it nor undo it.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedHash<'a> {
    pub verified: &'a str,
    pub upgrade: Option<&'a str>,
}

/// A key as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub digest: KeyDigest,
    pub created: Timestamp,
    pub last_used: Option<Timestamp>,
    pub last_ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked: Option<(Timestamp, RevocationReason)>,
    /// The client network of the request that revoked it, when there was one.
    pub revoked_network: Option<String>,
    /// The address the key was issued to.
    pub created_ip: Option<String>,
    /// The anomaly state as last written ([`crate::domain::KeyActivity`] as JSON).
    pub activity: Option<String>,
    /// The key's own deadline (an imported key's original expiry); `None` for keys issued here.
    pub deadline: Option<Timestamp>,
}

/// When, from where and by whom a revocation was asked, recorded with its events.
#[derive(Clone, Copy, Debug)]
pub struct Cause<'a> {
    pub at: Timestamp,
    /// The client network of the request, when there was one.
    pub network: Option<&'a str>,
    /// Who asked, when not the key's owner (an administrator).
    pub actor: Option<Uuid>,
}

impl<'a> Cause<'a> {
    pub fn new(at: Timestamp, network: Option<&'a str>) -> Self {
        Self {
            at,
            network,
            actor: None,
        }
    }

    pub fn by(self, actor: Option<Uuid>) -> Self {
        Self { actor, ..self }
    }
}

/// Rows older than these are deleted by [`Store::prune`].
#[derive(Clone, Copy, Debug)]
pub struct PruneCutoffs {
    /// Revocation feed entries: the prefix of the feed up to the first entry at or after this
    /// is deleted, but never the newest entry (see [`Store::feed_bounds`]).
    pub feed: Timestamp,
    /// Counted throttle attempts.
    pub throttles: Timestamp,
    /// Known networks (by their last successful sign-in).
    pub known_networks: Timestamp,
    /// Revoked keys (by their revocation); and imported keys remembered by digest, by their
    /// original expiry (as long after it as a revoked key is listed).
    pub revoked_keys: Timestamp,
    /// Shared anomaly state: request counts of windows that started before, networks last seen
    /// before.
    pub shared_activity: Timestamp,
    /// Join tickets that expired before (redeemed or not), and reset codes that expired before.
    pub tickets: Timestamp,
    /// Security events (`events.retention`).
    pub events: Timestamp,
}

/// The rows of one counted attempt (one per counter), so that it can be taken back when it
/// turns out not to be a failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountedAttempt(pub Vec<i64>);

/// What [`Store::count_attempt`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Counted against every counter.
    Counted(CountedAttempt),
    /// Nothing counted: these counters are at their limit, each with the seconds until it
    /// frees (at least 1).
    Refused { blocked: Vec<(Scope, u64)> },
}

/// A key that a write just revoked, so that caches can forget it at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedKey {
    pub id: Uuid,
    pub digest: KeyDigest,
    pub reason: RevocationReason,
}

/// When, from where and by what a key was last used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastUse {
    pub at: Timestamp,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// The latest use of a key and its anomaly state, batched from memory to storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: Uuid,
    /// The latest allowed use, if any since the key was loaded.
    pub used: Option<LastUse>,
    /// The anomaly state ([`crate::domain::KeyActivity`] as JSON).
    pub activity: String,
}

#[async_trait]
/// Everything the service keeps. Concerns with a contract of their own are supertraits
/// ([`ResetCodeStore`]); the rest is still here.
pub trait Store: ResetCodeStore + Send + Sync + 'static {
    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether writes work. At once `Ok` while no write has failed as unavailable since the last
    /// successful probe; otherwise a probe write (a small committed transaction that needs
    /// about as much free space as a sign-up) decides, and its success clears the failure.
    async fn check_writes(&self) -> StoreResult<()>;

    /// A write failed as unavailable (full disk, I/O error, read-only file, lock timeout) and
    /// no probe write has succeeded since ([`Store::check_writes`]).
    fn writes_failing(&self) -> bool;

    /// Fault drill, for tests: caps the database at `pages` pages (`None` lifts the cap), so
    /// that writes needing more space fail as on a full disk. Kept across reconnections; not
    /// persistent. A cap below the current size acts as the current size.
    async fn set_size_limit(&self, pages: Option<u64>) -> StoreResult<()>;

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);

    /// Creates a user with its password hash and (for a sign-up) its first key, and records
    /// `event`, atomically. A taken name is [`StoreError::Conflict`], decided by the unique
    /// constraint.
    async fn create_user(
        &self,
        user: &User,
        phc: &str,
        key: Option<&NewKey>,
        event: &NewEvent,
    ) -> StoreResult<()>;

    /// Users in creation order, after the cursor `(created, id)` if given.
    async fn list_users(&self, after: Option<(Timestamp, Uuid)>, limit: u32) -> StoreResult<Vec<User>>;

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

    /// Adds what this instance saw of some keys to what every instance saw, as deltas (request
    /// counts per flood window are added, never read-modify-write; a network keeps its latest
    /// sighting), and returns the totals of those keys: the counts of windows starting at or
    /// after `counts_since`, and the networks seen after `networks_since`. Keys with an empty
    /// delta are only read.
    async fn share_activity(
        &self,
        deltas: &[(Uuid, ActivityDelta)],
        counts_since: Timestamp,
        networks_since: Timestamp,
    ) -> StoreResult<Vec<(Uuid, SharedActivity)>>;

    /// The secret called `name`, kept in the database for every instance: stored as `candidate`
    /// if there is none yet (the first instance to ask decides), else the stored one.
    async fn service_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;

    /// Takes back a counted attempt (it was not a failure), and forgets every attempt counted
    /// against `forgive` (a correct password forgives its account-and-network failures).
    async fn uncount_attempt(&self, attempt: &CountedAttempt, forgive: Option<&Counter>) -> StoreResult<()>;

    /// The last position in the revocation feed.
    async fn revocation_feed_head(&self) -> StoreResult<i64>;

    /// Keys revoked or deleted after position `seq` (by any process), with their positions.
    async fn revocations_since(&self, seq: i64) -> StoreResult<Vec<(i64, KeyDigest)>>;

    /// Marks the live keys that are past their deadline at `now` as revoked (`expired`, at the
    /// moment they expired); returns how many.
    async fn expire_keys(&self, policy: &KeyPolicy, now: Timestamp) -> StoreResult<u64>;

    /// Deletes what is no longer needed, each kind of row before its own cut-off.
    async fn prune(&self, cutoffs: &PruneCutoffs) -> StoreResult<()>;

    /// The user and password hash for a sign-in name (case-insensitive).
    async fn find_login(&self, canonical_name: &str) -> StoreResult<Option<(User, StoredHash)>>;

    /// The user and password hash by id.
    async fn find_user(&self, id: Uuid) -> StoreResult<Option<(User, StoredHash)>>;

    /// Stores a new key for a sign-in that verified `password` and, in the same transaction,
    /// replaces that hash with its upgrade (if any), marks the user's expired keys, evicts the
    /// least recently used ones so that at most `policy.max_per_user` stay live, and records
    /// `event` (with a `key_revoked` event per key revoked).
    ///
    /// The transaction is serialised with every password change of the user, so a sign-in is
    /// either wholly before a change (its key is then revoked by it) or checked against the new
    /// hash: [`StoreError::PasswordChanged`] when the verified hash is no longer the account's,
    /// [`StoreError::Gone`] when the account is, [`StoreError::Suspended`] when the user is
    /// suspended at the key's creation, [`StoreError::KeyLimit`] when the policy refuses.
    async fn issue_key(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        policy: &KeyPolicy,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>>;

    /// Replaces the password hash `replaced` (the one the caller verified) with `phc`, revokes
    /// every key (`password_changed`), stores `new_key` and records `event`.
    /// [`StoreError::PasswordChanged`] when `replaced` is no longer the account's hash (nothing
    /// written), [`StoreError::Gone`] when the account is.
    async fn change_password(
        &self,
        user_id: Uuid,
        replaced: &str,
        phc: &str,
        new_key: &NewKey,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>>;

    /// Deletes the account with its keys, and records `event`; returns the keys that were live.
    /// [`StoreError::LastAdmin`] for the last administrator in force.
    async fn delete_user(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Vec<RevokedKey>>;

    /// The key with this digest (revoked or not) and its owner.
    async fn find_key(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>>;

    /// Revokes one live key of `user_id` (recording `key_revoked` with `cause`); `None` if it
    /// is not theirs or not live.
    async fn revoke_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Option<RevokedKey>>;

    /// Revokes every live key of a user (recording `key_revoked` with `cause` for each).
    async fn revoke_user_keys(
        &self,
        user_id: Uuid,
        reason: RevocationReason,
        cause: &Cause<'_>,
    ) -> StoreResult<Vec<RevokedKey>>;

    /// The user's live keys and the keys revoked at or after `revoked_since`.
    async fn list_keys(&self, user_id: Uuid, revoked_since: Timestamp) -> StoreResult<Vec<KeyRecord>>;

    /// Writes a batch of usage updates in one transaction.
    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<()>;

    // Suspensions and security events

    /// Suspends a user, in one transaction: a suspension in force is ended (`lifted` at the new
    /// one's creation), `suspension` stored, every live key revoked (`suspended`, with `cause`),
    /// `event` recorded. [`StoreError::LastAdmin`] when the user is an administrator and no
    /// other one is in force.
    async fn suspend(&self, suspension: &Suspension, event: &NewEvent) -> StoreResult<Vec<RevokedKey>>;

    /// Lifts the user's suspension in force at `event.at` and records `event`; the lifted
    /// suspension, or `None` when none was in force (nothing recorded).
    async fn lift_suspension(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Option<Suspension>>;

    /// The user's suspensions, newest first.
    async fn suspensions(&self, user_id: Uuid) -> StoreResult<Vec<Suspension>>;

    /// Changes a user's role between `USER` and `ADMIN`, revokes every key of the user
    /// (`admin`: keys are cached with their owner's role) and records `event`. Nothing happens to
    /// a user that does not exist or is a service account. [`StoreError::LastAdmin`] when
    /// demoting the last administrator in force.
    async fn set_role(&self, user_id: Uuid, role: Role, event: &NewEvent) -> StoreResult<Vec<RevokedKey>>;

    /// Records events that stand alone (failed and throttled sign-ins).
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()>;

    /// Events newest first: of one user (`user_id`) or all, before position `before`.
    async fn events(&self, user_id: Option<Uuid>, before: Option<i64>, limit: u32)
        -> StoreResult<Vec<Event>>;

    // Service accounts

    /// Creates a service account (role `SERVICE`) with its key, atomically, and no password hash:
    /// it cannot sign in ([`Store::find_login`] does not find it). A taken name is
    /// [`StoreError::Conflict`].
    async fn create_service(&self, user: &User, key: &NewKey, event: &NewEvent) -> StoreResult<()>;

    /// The account with this canonical name, whatever its role and whether or not it has a
    /// password (for administration: `find_login` does not find service accounts).
    async fn find_account(&self, canonical_name: &str) -> StoreResult<Option<User>>;

    /// The account with this id, whatever its role.
    async fn find_account_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;

    // Join tickets

    /// Stores a ticket (its digest only), if the key that asked for it is still live (not
    /// revoked, not deleted); `false` when it is not.
    async fn create_ticket(&self, ticket: &NewTicket) -> StoreResult<bool>;

    /// Takes a ticket for redemption at `now`, atomically and once: if it is unredeemed and
    /// expires after `now`, it is marked redeemed and the key that asked for it (as stored,
    /// revoked or not) is returned with its owner; `None` for an unknown, expired or already
    /// redeemed ticket (a ticket goes with its key). Of concurrent calls for one ticket, on any
    /// number of instances, exactly one takes it. Whether the key still makes it honoured is the
    /// caller's to decide (`domain::ticket::honoured`): a taken ticket is spent either way.
    async fn take_ticket(
        &self,
        digest: &crate::domain::TicketDigest,
        now: Timestamp,
    ) -> StoreResult<Option<TakenTicket>>;

    // Revocation stream

    /// The revocation feed's entries after `after`, in `seq` (commit) order, at most `limit`;
    /// rows written before the feed named keys are skipped.
    async fn feed_after(&self, after: i64, limit: u32) -> StoreResult<Vec<FeedEntry>>;

    /// The lowest and highest `seq` the feed keeps ([`Store::prune`] deletes only a prefix of
    /// it and keeps the newest row, so the highest is the highest ever given).
    async fn feed_bounds(&self) -> StoreResult<FeedBounds>;

    // Imports

    /// Imports a batch of accounts in one transaction, as [`crate::domain::import::plan_batch`]
    /// decides from what is stored: new accounts with their (legacy) hash, an `imported` record
    /// and event each; accounts imported by an earlier run get the source's hash when theirs
    /// was never used here and differs. The classes of the hashes are recorded
    /// (`password_hash_classes`). A dry run rolls back. One outcome per row, in order.
    async fn import_users(&self, run: &Run, batch: &[ImportUser]) -> StoreResult<Vec<UserOutcome>>;

    /// Imports a batch of the original back end's live keys of imported accounts, in one
    /// transaction (rolled back in a dry run): stored by digest with their own deadline, and
    /// remembered by digest for good (a key signed out here is never brought back). A key seen
    /// again is marked as seen by this run. One outcome per key, in order.
    ///
    /// `dry_owners`: in a dry run, the accounts (by source id) that the run would have imported
    /// and did not store, so that their keys are planned as the real run would plan them.
    async fn import_keys(
        &self,
        run: &Run,
        batch: &[ImportKey],
        dry_owners: &std::collections::HashMap<String, Uuid>,
    ) -> StoreResult<Vec<KeyOutcome>>;

    /// Revokes (`signed_out`, at `now`) at most `limit` live imported keys that this run of a
    /// complete import no longer found at the source (signed out there, or their password
    /// changed) and whose original expiry is still ahead; returns them with their owners.
    async fn revoke_keys_gone_from_source(
        &self,
        run: &Run,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, RevokedKey)>>;

    /// The classes of imported hashes (`password_hash_classes`), as written.
    async fn hash_classes(&self) -> StoreResult<Vec<String>>;
}
