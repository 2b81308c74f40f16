//! Keys as storage keeps them: by digest, with their owner, their last use and their revocation.
//! A revocation is recorded three times in one transaction: on the key's row, as a `key_revoked`
//! event, and in the revocation feed (other instances and `GET /revocations`).

use std::net::IpAddr;
use std::sync::LazyLock;

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{KEY_COLUMNS, LIVE_KEY_COLUMNS};
use super::StoreResult;
use crate::domain::{KeyDigest, KeyPolicy, NewEvent, RevocationReason, Timestamp, User};

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
    /// A routine write on one of several instances: skipped (with the state it carries) when
    /// the stored `last_used` is this recent already, another instance having written it; so a
    /// key in steady use is written about once per interval whatever the number of instances.
    /// `None`: always written (a new network, a flush at shutdown, one instance).
    pub unless_stored_since: Option<Timestamp>,
}

/// A routine write that was skipped ([`LastUse::unless_stored_since`]), and the use stored
/// already that made it unneeded: the writer comes back when that use is an interval old.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredUse {
    pub key_id: Uuid,
    pub last_used: Timestamp,
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
pub trait Keys: Send + Sync {
    /// Stores a new key for a sign-in that verified `password` and, in the same transaction,
    /// replaces that hash with its upgrade (if any), marks the user's expired keys, evicts the
    /// least recently used ones so that at most `policy.max_per_user` stay live, and records
    /// `event` (with a `key_revoked` event per key revoked).
    ///
    /// The transaction is serialised with every password change of the user, so a sign-in is
    /// either wholly before a change (its key is then revoked by it) or checked against the new
    /// hash: [`super::StoreError::PasswordChanged`] when the verified hash is no longer the
    /// account's, [`super::StoreError::Gone`] when the account is, [`super::StoreError::Suspended`]
    /// when the user is suspended at the key's creation, [`super::StoreError::KeyLimit`] when the
    /// policy refuses.
    async fn issue_key(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        policy: &KeyPolicy,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>>;

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

    /// Writes a batch of usage updates in one transaction; returns the routine writes that were
    /// skipped, each with the use stored already (read in the same transaction).
    async fn record_usage(&self, batch: &[KeyUsage]) -> StoreResult<Vec<StoredUse>>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// A key issued here.
pub(super) const INSERT_KEY: &str =
    "INSERT INTO keys (id, user_id, digest, created_ms, created_ip) VALUES ($1, $2, $3, $4, $5)";

/// Revokes every live key of a user ($4) at $1, for reason $2 from network $3.
pub(super) const REVOKE_ALL: &str =
    "UPDATE keys SET revoked_ms = $1, revoke_reason = $2, revoked_network = $3 \
     WHERE user_id = $4 AND revoked_ms IS NULL RETURNING id, digest";

/// Revokes one key ($4) of a user ($5), if it is live.
pub(super) const REVOKE_ONE: &str =
    "UPDATE keys SET revoked_ms = $1, revoke_reason = $2, revoked_network = $3 \
     WHERE id = $4 AND user_id = $5 AND revoked_ms IS NULL RETURNING id, digest";

/// A user's live keys as eviction and expiry see them.
pub(super) static LIVE_KEYS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {LIVE_KEY_COLUMNS} FROM keys WHERE user_id = $1 AND revoked_ms IS NULL")
});

/// A user's live keys, as revoked when the account goes.
pub(super) const LIVE_KEY_DIGESTS: &str =
    "SELECT id, digest FROM keys WHERE user_id = $1 AND revoked_ms IS NULL";

/// The user's live keys and those revoked at or after $2.
pub(super) static LIST_KEYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {KEY_COLUMNS} FROM keys k \
         WHERE k.user_id = $1 AND (k.revoked_ms IS NULL OR k.revoked_ms >= $2) ORDER BY k.created_ms, k.id"
    )
});

/// A key with its owner's columns (as `KeyWithUserRow` reads them); the caller adds the join's
/// condition.
pub(super) static KEY_WITH_OWNER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {KEY_COLUMNS}, u.username, u.role, u.created_ms AS user_created_ms \
         FROM keys k JOIN users u ON u.id = k.user_id"
    )
});
