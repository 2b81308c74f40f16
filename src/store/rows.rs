//! Rows as both SQL stores read them (`sqlx::FromRow`, over any backend whose types decode
//! these columns: SQLite's blobs and integers, PostgreSQL's uuid, bytea and bigint), and their
//! conversion to the domain's types, written once.

use uuid::Uuid;

use super::{KeyRecord, RevokedKey, StoreError, StoreResult};
use crate::domain::{
    ActivityDelta, Event, KeyDigest, KeyPolicy, KeyStatus, RevocationReason, Role, SharedActivity,
    StoredHash, Suspension, Timestamp, User, Username,
};

/// The columns of [`KeyRow`], on the table aliased `k`.
pub(super) const KEY_COLUMNS: &str =
    "k.id, k.user_id, k.digest, k.created_ms, k.last_used_ms, k.last_ip, k.user_agent, \
     k.revoked_ms, k.revoke_reason, k.revoked_network, k.created_ip, k.activity, k.expires_ms";

/// A user and their password hash; `find_login` and `find_user` add the condition.
pub(super) const LOGIN_SELECT: &str =
    "SELECT u.id AS user_id, u.username, u.role, u.created_ms AS user_created_ms, p.phc, p.legacy \
     FROM users u JOIN password_hashes p ON p.user_id = u.id";

/// The columns of [`UserRow`] from the `users` table itself.
pub(super) const USER_COLUMNS: &str = "id AS user_id, username, role, created_ms AS user_created_ms";

pub(super) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(super) fn digest_from(bytes: Vec<u8>) -> StoreResult<KeyDigest> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("digest length".into()))?;
    Ok(KeyDigest(arr))
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    user_id: Uuid,
    username: String,
    role: String,
    user_created_ms: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<User> {
        Ok(User {
            id: row.user_id,
            name: Username::from_trusted(row.username),
            role: Role::parse(&row.role)
                .ok_or_else(|| StoreError::Corrupt(format!("role {:?}", row.role)))?,
            created: ts(row.user_created_ms),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct LoginRow {
    #[sqlx(flatten)]
    user: UserRow,
    phc: String,
    legacy: bool,
}

impl LoginRow {
    pub(super) fn into_login(self) -> StoreResult<(User, StoredHash)> {
        Ok((
            self.user.try_into()?,
            StoredHash {
                phc: self.phc,
                legacy: self.legacy,
            },
        ))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    id: Uuid,
    user_id: Uuid,
    digest: Vec<u8>,
    created_ms: i64,
    last_used_ms: Option<i64>,
    last_ip: Option<String>,
    user_agent: Option<String>,
    revoked_ms: Option<i64>,
    revoke_reason: Option<String>,
    revoked_network: Option<String>,
    created_ip: Option<String>,
    activity: Option<String>,
    expires_ms: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> StoreResult<KeyRecord> {
        let revoked = match (row.revoked_ms, row.revoke_reason) {
            (Some(at), Some(r)) => Some((
                ts(at),
                RevocationReason::parse(&r).ok_or_else(|| StoreError::Corrupt(format!("reason {r:?}")))?,
            )),
            _ => None,
        };
        Ok(KeyRecord {
            id: row.id,
            user_id: row.user_id,
            digest: digest_from(row.digest)?,
            created: ts(row.created_ms),
            last_used: row.last_used_ms.map(ts),
            last_ip: row.last_ip,
            user_agent: row.user_agent,
            revoked,
            created_ip: row.created_ip,
            revoked_network: row.revoked_network,
            activity: row.activity,
            deadline: row.expires_ms.map(ts),
        })
    }
}

/// A key found by its digest, with its owner (`find_key`).
#[derive(sqlx::FromRow)]
pub(super) struct KeyWithUserRow {
    #[sqlx(flatten)]
    key: KeyRow,
    username: String,
    role: String,
    user_created_ms: i64,
}

impl KeyWithUserRow {
    pub(super) fn into_pair(self) -> StoreResult<(KeyRecord, User)> {
        let user = User::try_from(UserRow {
            user_id: self.key.user_id,
            username: self.username,
            role: self.role,
            user_created_ms: self.user_created_ms,
        })?;
        Ok((self.key.try_into()?, user))
    }
}

/// A key just revoked (`… RETURNING id, digest`).
#[derive(sqlx::FromRow)]
pub(super) struct RevokedRow {
    pub(super) id: Uuid,
    pub(super) digest: Vec<u8>,
}

impl RevokedRow {
    pub(super) fn revoked(self, reason: RevocationReason) -> StoreResult<RevokedKey> {
        Ok(RevokedKey {
            id: self.id,
            digest: digest_from(self.digest)?,
            reason,
        })
    }
}

/// A live key as expiry and eviction see it.
#[derive(sqlx::FromRow)]
pub(super) struct LiveKeyRow {
    pub(super) id: Uuid,
    pub(super) created_ms: i64,
    pub(super) last_used_ms: Option<i64>,
    pub(super) expires_ms: Option<i64>,
}

/// The columns of [`LiveKeyRow`].
pub(super) const LIVE_KEY_COLUMNS: &str = "id, created_ms, last_used_ms, expires_ms";

/// One position of the revocation feed.
#[derive(sqlx::FromRow)]
pub(super) struct FeedRow {
    seq: i64,
    digest: Vec<u8>,
}

impl FeedRow {
    pub(super) fn into_entry(self) -> StoreResult<(i64, KeyDigest)> {
        Ok((self.seq, digest_from(self.digest)?))
    }
}

/// Expiry, decided in one place ([`KeyPolicy::status`]): of the candidates that the stores
/// select by index (created at or before `now - lifetime`, or last used, else created, at or
/// before `now - idle_timeout`), those past their deadline at `now`, each with the moment it
/// expired. The stores only mark them.
pub(super) fn expired_keys(
    policy: &KeyPolicy,
    now: Timestamp,
    candidates: impl IntoIterator<Item = LiveKeyRow>,
) -> Vec<(Uuid, Timestamp)> {
    let mut expired: Vec<(Uuid, Timestamp)> = candidates
        .into_iter()
        .filter_map(|k| {
            match policy.status(
                ts(k.created_ms),
                k.last_used_ms.map(ts),
                k.expires_ms.map(ts),
                now,
            ) {
                KeyStatus::Expired { at } => Some((k.id, at)),
                KeyStatus::Live => None,
            }
        })
        .collect();
    // A key may be a candidate by both bounds.
    expired.sort_unstable_by_key(|(id, _)| *id);
    expired.dedup_by_key(|(id, _)| *id);
    expired
}

/// The bounds by which expiry candidates are selected: `created_ms <= by_lifetime` (keys without
/// a deadline of their own), and, when an idle timeout is set, `coalesce(last_used_ms,
/// created_ms) <= by_idleness`; and, for keys with a deadline of their own (imported ones),
/// `expires_ms <= now`. Each is implied by its deadline having passed, so no expired key
/// escapes them.
pub(super) fn expiry_bounds(policy: &KeyPolicy, now: Timestamp) -> (Timestamp, Option<Timestamp>) {
    (
        now.minus(policy.lifetime),
        policy.idle_timeout.map(|idle| now.minus(idle)),
    )
}

/// Shared anomaly state from rows: counts per window, networks with their latest sighting (a
/// network that does not parse is skipped: it could only come from a corrupt row).
/// [`SharedActivity`] from rows of (window, requests, served) and (network, last seen).
pub(crate) fn shared_activity(counts: Vec<(i64, i64, i64)>, networks: Vec<(String, i64)>) -> SharedActivity {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    SharedActivity {
        counts: counts.iter().map(|(w, n, _)| (*w, count(*n))).collect(),
        served: counts.iter().map(|(w, _, s)| (*w, count(*s))).collect(),
        networks: networks
            .into_iter()
            .filter_map(|(n, seen)| Some((n.parse().ok()?, seen)))
            .collect(),
    }
}

/// A delta's requests and served requests by window, as rows of (window, requests, served).
pub(crate) fn merge_counts(delta: &ActivityDelta) -> Vec<(i64, i64, i64)> {
    let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    let mut rows: Vec<(i64, i64, i64)> = delta.counts.iter().map(|(w, c)| (*w, n(*c), 0)).collect();
    for (w, served) in &delta.served {
        match rows.iter_mut().find(|(x, _, _)| x == w) {
            Some(row) => row.2 = row.2.saturating_add(n(*served)),
            None => rows.push((*w, 0, n(*served))),
        }
    }
    rows
}

/// Three vectors from triples.
pub(crate) fn unzip3<A, B, C>(items: impl Iterator<Item = (A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (x, y, z) in items {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

/// The columns of [`SuspensionRow`].
pub(super) const SUSPENSION_COLUMNS: &str = "id, user_id, reason, created_ms, until_ms, by_id, lifted_ms";

#[derive(sqlx::FromRow)]
pub(super) struct SuspensionRow {
    id: Uuid,
    user_id: Uuid,
    reason: String,
    created_ms: i64,
    until_ms: Option<i64>,
    by_id: Option<Uuid>,
    lifted_ms: Option<i64>,
}

impl From<SuspensionRow> for Suspension {
    fn from(row: SuspensionRow) -> Self {
        Suspension {
            id: row.id,
            user_id: row.user_id,
            reason: row.reason,
            created: ts(row.created_ms),
            until: row.until_ms.map(ts),
            by: row.by_id,
            lifted: row.lifted_ms.map(ts),
        }
    }
}

/// The columns of [`EventRow`].
pub(super) const EVENT_COLUMNS: &str = "seq, id, at_ms, kind, user_id, actor_id, network, detail";

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    seq: i64,
    id: Uuid,
    at_ms: i64,
    kind: String,
    user_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    network: Option<String>,
    detail: String,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(row: EventRow) -> StoreResult<Event> {
        Ok(Event {
            seq: row.seq,
            id: row.id,
            at: ts(row.at_ms),
            kind: row.kind,
            user_id: row.user_id,
            actor_id: row.actor_id,
            network: row.network,
            detail: serde_json::from_str(&row.detail)
                .map_err(|e| StoreError::Corrupt(format!("event detail: {e}")))?,
        })
    }
}

/// Live keys as the key limit sees them ([`KeyPolicy::plan_issue`]).
pub(super) fn key_uses(rows: &[LiveKeyRow]) -> Vec<crate::domain::key_lifecycle::KeyUse<Uuid>> {
    rows.iter()
        .map(|row| crate::domain::key_lifecycle::KeyUse {
            id: row.id,
            created: ts(row.created_ms),
            last_used: row.last_used_ms.map(ts),
            deadline: row.expires_ms.map(ts),
        })
        .collect()
}
