//! The hot path: validating an access key on every request of every game client.
//!
//! A validation is a SHA-256, a lookup in an in-memory cache and, on a miss only, one database
//! read. Nothing is written per request: `last_used`, `last_ip` and `user_agent` are kept on the
//! cached entry and written in batches when due ([`KeyService::flush_due`], every 10 s: a new
//! network at once, anything else once a minute per key) and in full at shutdown
//! ([`KeyService::flush`]).
//! A revocation made by this instance removes the key from the cache before it returns, so it
//! is honoured at once.

mod outage;
mod sharing;
mod usage;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::{
    AccessKey, ActivityDelta, AnomalyPolicy, KeyActivity, KeyDigest, KeyPolicy, KeyStatus, NewEvent,
    RevocationReason, SharedActivity, Timestamp, User, Verdict,
};
use crate::metrics::Metrics;
use crate::store::{
    Cause, KeyRecord, KeyUsage, LastUse, NewKey, RevokedKey, Store, StoreError, VerifiedHash,
};

/// How long revoked keys stay listed by `GET /auth/keys`.
pub const REVOKED_LISTED_FOR: Duration = Duration::from_secs(30 * 86_400);
/// Keys kept in memory at most; a miss costs one indexed read.
const CACHE_CAPACITY: usize = 1_000_000;
/// Keys unused this long leave the cache (at the next [`KeyService::sweep_idle`]).
pub const CACHE_IDLE: Duration = Duration::from_secs(600);
/// How stale a key's stored usage may get: a key in use is written once this much time has
/// passed since its last write, at the next periodic flush (API.md: `last_used` and `last_ip`
/// are exact to five minutes; shorter with an idle timeout, see
/// [`KeyService::usage_write_every`]). A new network is written at the next flush (API.md's
/// anomaly rules must survive a restart); a graceful stop writes everything.
pub const USAGE_WRITE_EVERY: Duration = Duration::from_secs(300);
/// User agents are kept up to this many bytes.
pub const USER_AGENT_MAX: usize = 256;

/// Where a request comes from.
#[derive(Clone, Debug)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// A live key in memory, with its owner.
#[derive(Debug)]
pub struct KeyEntry {
    pub id: Uuid,
    pub digest: KeyDigest,
    pub user: User,
    pub created: Timestamp,
    /// The key's own deadline, if it has one (a key imported from the original back end).
    pub deadline: Option<Timestamp>,
    /// The part of the validation answer that never changes for this key (the owner, the key's
    /// id and creation, as JSON), written by the HTTP layer at the key's first validation and
    /// reused by every later one (`http::render::head`): about 250 bytes per cached key for
    /// about 700 fewer instructions per validation.
    pub answer_head: OnceLock<Box<[u8]>>,
    usage: Mutex<Usage>,
}

/// What an answer shows of a key's use, read under one lock and without allocating.
#[derive(Debug, Clone)]
pub struct UsageSnapshot {
    pub expires: Timestamp,
    pub last_used: Option<Timestamp>,
    pub last_ip: Option<IpAddr>,
    pub user_agent: Option<Arc<str>>,
}

#[derive(Debug)]
struct Usage {
    last_used: Option<Timestamp>,
    last_ip: Option<IpAddr>,
    user_agent: Option<Arc<str>>,
    /// Used (allowed) since it was loaded: only then are the three fields above written back.
    used: bool,
    /// Networks, request counters and rate-limit bucket.
    activity: KeyActivity,
    /// Changed since the last flush (and queued in `KeyService::dirty`).
    dirty: bool,
    /// Last request that presented the key, allowed or not: for the idle sweep of the cache.
    touched: Timestamp,
    /// When this state was last written (or read): see [`USAGE_WRITE_EVERY`].
    written: Timestamp,
    /// Changed in a way the next periodic flush must write (a new network).
    urgent: bool,
}

impl KeyEntry {
    fn usage(&self) -> MutexGuard<'_, Usage> {
        // A panic while holding this lock cannot leave `Usage` inconsistent (plain field writes).
        self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn from_record(record: KeyRecord, user: User, anomaly: &AnomalyPolicy, now: Timestamp) -> Self {
        let last_ip = record.last_ip.as_deref().and_then(|s| s.parse().ok());
        let activity = record
            .activity
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| {
                // Never used (or written by an older version): the issuing network is the first.
                let network = record
                    .created_ip
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .map(|ip| anomaly.network_of(ip));
                KeyActivity::issued(network, record.created)
            });
        Self {
            id: record.id,
            digest: record.digest,
            user,
            created: record.created,
            deadline: record.deadline,
            answer_head: OnceLock::new(),
            usage: Mutex::new(Usage {
                last_used: record.last_used,
                last_ip,
                user_agent: record.user_agent.map(Arc::from),
                used: false,
                activity,
                dirty: false,
                touched: now,
                written: now,
                urgent: false,
            }),
        }
    }
}

/// API.md's `Key`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = Key, description = "A live access key (API.md `Key`); `id` is a public identifier of the key, not the key.")]
pub struct KeyView {
    pub id: Uuid,
    pub created: Timestamp,
    /// The earlier of the lifetime and idle deadlines.
    pub expires: Timestamp,
    #[schema(required = true)]
    pub last_used: Option<Timestamp>,
    /// The client address of the last use.
    #[schema(required = true)]
    pub last_ip: Option<String>,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Whether this is the key of the request.
    pub current: bool,
}

/// API.md's `RevokedKey`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = RevokedKey, description = "A key that no longer works, revoked or expired within the last 30 days (API.md `RevokedKey`).")]
pub struct RevokedView {
    pub id: Uuid,
    pub created: Timestamp,
    /// When it was revoked; for `expired`, the moment it expired.
    pub revoked: Timestamp,
    pub reason: RevocationReason,
    /// The client network of the request that revoked the key (an extension of API.md's
    /// `RevokedKey`): where a stolen key was replayed from, or where the owner signed out.
    #[schema(required = true)]
    pub network: Option<String>,
}

/// What expiry and the anomaly rules say about one request.
enum Judged {
    Expired {
        at: Timestamp,
    },
    /// Allowed, with the key's use as it stands after this request.
    Allowed(UsageSnapshot),
    Slow {
        retry_after_secs: u64,
    },
    Revoke(RevocationReason),
}

/// A key that passed validation, and its use as this request leaves it (read under the same
/// lock as the rules, for the answer).
pub struct Valid {
    pub entry: Arc<KeyEntry>,
    pub usage: UsageSnapshot,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unknown, expired or revoked: the caller only ever learns "Invalid access key".
    #[error("invalid access key")]
    Invalid,
    /// Over the per-key rate limit; the key stays valid.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct KeyService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    anomaly: AnomalyPolicy,
    /// Live keys by digest. quick_cache (S3-FIFO, sharded, no background work): a hit is a
    /// hash, a shared lock and an atomic; moka's bookkeeping per hit cost several times that.
    cache: quick_cache::sync::Cache<KeyDigest, Arc<KeyEntry>>,
    /// Entries whose usage changed since the last flush.
    dirty: Mutex<Vec<Arc<KeyEntry>>>,
    /// Bumped by every revocation, so that a cache fill racing with one can tell.
    revocations: AtomicU64,
    /// Several instances share one database (`AnomalyPolicy::shared`): keys with activity to
    /// share are queued here (see [`KeyService::share_activity`]).
    unshared: Mutex<Vec<Arc<KeyEntry>>>,
    metrics: Arc<Metrics>,
    /// Told of every key forgotten as revoked (by this instance or another process): wakes the
    /// revocation stream's hub (`service::revocations`).
    revoked: Arc<tokio::sync::Notify>,
    /// `database.outage_grace`, in milliseconds (see [`crate::domain::outage`]).
    outage_grace_ms: AtomicU64,
    /// When the revocation feed was last read successfully (ms), and whether a read has failed
    /// since: while it has, cached keys validate only within the grace.
    feed_heard_ms: AtomicI64,
    feed_failing: AtomicBool,
    /// Notifications of revocations may have been missed: the next read of the feed goes back
    /// over its latest entries.
    feed_suspect: AtomicBool,
}

/// The 503 of a cached key once the grace of a database outage is over.
fn feed_unheard() -> StoreError {
    StoreError::Unavailable(
        "the revocation feed has not been read for longer than database.outage_grace".into(),
    )
}

impl KeyService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
        anomaly: AnomalyPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            metrics,
            store,
            policy,
            anomaly,
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            dirty: Mutex::new(Vec::new()),
            revocations: AtomicU64::new(0),
            unshared: Mutex::new(Vec::new()),
            revoked: Arc::new(tokio::sync::Notify::new()),
            outage_grace_ms: AtomicU64::new(30_000),
            feed_heard_ms: AtomicI64::new(clock.now().as_millis()),
            feed_failing: AtomicBool::new(false),
            feed_suspect: AtomicBool::new(false),
            clock,
        }
    }

    /// Notified whenever keys are forgotten as revoked: this instance revoked them (after the
    /// commit), or heard that another process did.
    pub fn revocation_signal(&self) -> Arc<tokio::sync::Notify> {
        self.revoked.clone()
    }

    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    fn dirty(&self) -> MutexGuard<'_, Vec<Arc<KeyEntry>>> {
        self.dirty.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a key and records its use. `Err(KeyError::Invalid)` for unknown, expired and
    /// revoked keys alike; an expired key is revoked (reason `expired`) on the way.
    pub async fn validate(&self, key: &AccessKey, client: &Client) -> Result<Valid, KeyError> {
        self.validate_digest(key.digest(), client).await
    }

    /// [`KeyService::validate`] of the key with this digest: a key issued here, or one of the
    /// original back end's kept by an import (`LegacyKey::digest`), which is judged the same way.
    pub async fn validate_digest(&self, digest: KeyDigest, client: &Client) -> Result<Valid, KeyError> {
        let entry = match self.cache.get(&digest) {
            // One atomic load while the feed is read as usual.
            Some(_) if self.feed_failing.load(Ordering::Acquire) && !self.cache_trusted() => {
                return Err(KeyError::Store(feed_unheard()))
            }
            Some(entry) => entry,
            None => self.load(digest).await?,
        };
        let now = self.clock.now();
        let network = self.anomaly.network_of(client.ip);
        let mut judged = self.judge(&entry, now, network, client);
        if matches!(judged, Judged::Expired { .. }) && self.anomaly.shared {
            // Several instances: the key may be in use on another one, which writes its use
            // every `usage_write_every`; this instance's copy of `last_used` is only its own.
            if !self.take_stored_use(&entry).await? {
                return Err(KeyError::Invalid);
            }
            judged = self.judge(&entry, now, network, client);
        }
        match judged {
            Judged::Expired { at } => {
                self.revoke(&entry, RevocationReason::Expired, at, None).await?;
                Err(KeyError::Invalid)
            }
            Judged::Allowed(usage) => Ok(Valid { entry, usage }),
            Judged::Slow { retry_after_secs } => Err(KeyError::RateLimited { retry_after_secs }),
            Judged::Revoke(reason) => {
                self.revoke(&entry, reason, now, Some(&network.to_string()))
                    .await?;
                Err(KeyError::Invalid)
            }
        }
    }

    /// Applies expiry and the anomaly rules to one request, and records it (in memory).
    fn judge(&self, entry: &Arc<KeyEntry>, now: Timestamp, network: IpNet, client: &Client) -> Judged {
        let role = entry.user.role;
        let mut usage = entry.usage();
        usage.touched = usage.touched.max(now);
        if let KeyStatus::Expired { at } =
            self.policy
                .status_for(role, entry.created, usage.last_used, entry.deadline, now)
        {
            return Judged::Expired { at };
        }
        // A service key is exempt from the rules below (`Role::keys_last_until_revoked`): its
        // networks do not count, so a new one is no news.
        if !role.keys_last_until_revoked() && !usage.activity.knows_network(&self.anomaly, network, now) {
            usage.urgent = true;
        }
        // Sharing is for several instances (PostgreSQL): on one machine nothing takes it, so the
        // hot path skips its bookkeeping.
        let shared = self.anomaly.shared;
        let was_due = shared && usage.activity.share_due(&self.anomaly);
        let judged = match usage.activity.observe_for(&self.anomaly, role, network, now) {
            Verdict::Slow { retry_after_secs } => Judged::Slow { retry_after_secs },
            Verdict::Revoke(reason) => Judged::Revoke(reason),
            Verdict::Allow => {
                usage.used = true;
                usage.last_used = Some(usage.last_used.map_or(now, |t| t.max(now)));
                usage.last_ip = Some(client.ip);
                let ua = client.user_agent.as_deref();
                if usage.user_agent.as_deref() != ua {
                    usage.user_agent = ua.map(Arc::from);
                }
                Judged::Allowed(UsageSnapshot {
                    expires: self
                        .policy
                        .expires_at(entry.created, usage.last_used, entry.deadline),
                    last_used: usage.last_used,
                    last_ip: usage.last_ip,
                    user_agent: usage.user_agent.clone(),
                })
            }
        };
        let newly_dirty = !usage.dirty;
        usage.dirty = true;
        // Queued for sharing once there is something worth a write (`KeyActivity::share_due`),
        // not at its first request: a quiet key is shared when it turns busy or meets a network.
        let newly_unshared = shared && !was_due && usage.activity.share_due(&self.anomaly);
        drop(usage);
        if newly_dirty {
            self.dirty().push(entry.clone());
        }
        if newly_unshared {
            lock(&self.unshared).push(entry.clone());
        }
        judged
    }

    /// Before a cached key is declared idle: takes in its `last_used` as stored, which the other
    /// instances using it keep fresh. `false` when the key is gone or revoked meanwhile (it is
    /// forgotten here then).
    async fn take_stored_use(&self, entry: &KeyEntry) -> Result<bool, KeyError> {
        match self.store.find_key(&entry.digest).await? {
            Some((record, _)) if record.revoked.is_none() => {
                let mut usage = entry.usage();
                usage.last_used = usage.last_used.max(record.last_used);
                Ok(true)
            }
            _ => {
                self.forget_digests(&[entry.digest]);
                Ok(false)
            }
        }
    }

    /// Reads a key that is not in the cache. Concurrent first requests with one key wait for a
    /// single read (quick_cache's placeholder) and share the one entry it inserts: each loading
    /// its own would count their requests on entries the cache then drops, so a burst on a fresh
    /// key could pass the flood and rate limits by the burst's width.
    async fn load(&self, digest: KeyDigest) -> Result<Arc<KeyEntry>, KeyError> {
        let guard = match self.cache.get_value_or_guard_async(&digest).await {
            Ok(entry) => return Ok(entry),
            Err(guard) => guard,
        };
        let seen = self.revocations.load(Ordering::SeqCst);
        let Some((record, user)) = self.store.find_key(&digest).await? else {
            return Err(KeyError::Invalid);
        };
        if record.revoked.is_some() {
            return Err(KeyError::Invalid);
        }
        let entry = Arc::new(KeyEntry::from_record(
            record,
            user,
            &self.anomaly,
            self.clock.now(),
        ));
        // Err: a revocation removed the placeholder meanwhile; the entry is not cached.
        let _ = guard.insert(entry.clone());
        // A revocation that committed while we were reading may have invalidated the cache
        // before our insert: drop what we inserted so the next request reads again.
        if self.revocations.load(Ordering::SeqCst) != seen {
            self.cache.remove(&digest);
        }
        Ok(entry)
    }

    /// The network of a client address, as the anomaly rules count it (e.g. `203.0.113.0/24`).
    pub fn network_of(&self, ip: IpAddr) -> String {
        self.anomaly.network_of(ip).to_string()
    }

    /// Drops keys nobody presented for [`CACHE_IDLE`] from the cache (their next use reads the
    /// database again), so memory follows the players who are playing. Keys with unflushed
    /// usage stay until it is written. Returns how many left.
    pub fn sweep_idle(&self) -> usize {
        let cutoff = self.clock.now().minus(CACHE_IDLE);
        let before = self.cache.len();
        self.cache.retain(|_, entry| {
            let usage = entry.usage();
            usage.dirty || usage.touched >= cutoff
        });
        before.saturating_sub(self.cache.len())
    }

    /// Keys in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Keys whose use is not written yet (see [`KeyService::flush_due`]).
    pub fn pending_usage_writes(&self) -> usize {
        self.dirty().len()
    }

    /// A revocation: a structured security event (never key material) and a count by reason.
    pub fn record_revocation(&self, user_id: Uuid, r: &RevokedKey, network: Option<&str>) {
        tracing::info!(
            target: "security",
            event = "key_revoked",
            user_id = %user_id,
            key_id = %r.id,
            reason = r.reason.as_str(),
            network = network.unwrap_or(""),
            "access key revoked"
        );
        self.metrics.keys_revoked(r.reason, 1);
    }

    /// Forgets keys revoked elsewhere (another process sharing the database).
    pub fn forget_digests(&self, digests: &[KeyDigest]) {
        self.forget_all(digests.iter().copied());
    }

    /// Forgets every cached key (revocations may have been missed: see
    /// `store::postgres::listen`); each is read again from the database at its next use. Usage
    /// not yet written is kept (it is held apart from the cache) and written as usual.
    pub fn forget_everything(&self) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
        self.cache.clear();
    }

    /// Forgets revoked keys in this instance's cache.
    pub fn forget(&self, revoked: &[RevokedKey]) {
        self.forget_all(revoked.iter().map(|r| r.digest));
    }

    fn forget_all(&self, digests: impl ExactSizeIterator<Item = KeyDigest>) {
        if digests.len() == 0 {
            return;
        }
        self.revocations.fetch_add(1, Ordering::SeqCst);
        for d in digests {
            self.cache.remove(&d);
        }
        self.revoked.notify_one();
    }

    /// Revokes one key (of its owner) and forgets it.
    pub async fn revoke(
        &self,
        entry: &KeyEntry,
        reason: RevocationReason,
        at: Timestamp,
        network: Option<&str>,
    ) -> Result<(), StoreError> {
        // As a task of its own: the request may be validation, which is not detached from its
        // client, and a revocation must not be cancelled half-way by a client hanging up.
        let store = self.store.clone();
        let (user_id, key_id) = (entry.user.id, entry.id);
        let owned_network = network.map(str::to_owned);
        let revoked = tokio::spawn(async move {
            store
                .revoke_key(user_id, key_id, reason, &Cause::new(at, owned_network.as_deref()))
                .await
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("revocation task failed: {e}")))??;
        // Forget even if storage says it was already revoked (e.g. by another instance).
        self.forget(&[RevokedKey {
            id: entry.id,
            digest: entry.digest,
            reason,
        }]);
        if let Some(r) = revoked {
            self.record_revocation(entry.user.id, &r, network);
        }
        Ok(())
    }

    /// Revokes a key of `user_id` by its public id; `false` if it is not theirs or not live.
    pub async fn revoke_by_id(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        network: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        match self
            .store
            .revoke_key(user_id, key_id, reason, &Cause::new(now, network))
            .await?
        {
            Some(r) => {
                self.forget(&[r]);
                self.record_revocation(user_id, &r, network);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Revokes every key of a user; `actor` is who asked when not the owner (an administrator).
    pub async fn revoke_all(
        &self,
        user_id: Uuid,
        reason: RevocationReason,
        network: Option<&str>,
        actor: Option<Uuid>,
    ) -> Result<usize, StoreError> {
        let cause = Cause::new(self.clock.now(), network).by(actor);
        let revoked = self.store.revoke_user_keys(user_id, reason, &cause).await?;
        self.forget(&revoked);
        for r in &revoked {
            self.record_revocation(user_id, r, network);
        }
        Ok(revoked.len())
    }

    /// Stores a freshly issued key for a sign-in that verified `password` (see
    /// [`Keys::issue_key`](crate::store::Keys::issue_key)), evicting the user's least recently used keys past the limit, and
    /// records `event` with it.
    pub async fn issue(
        &self,
        key: &NewKey,
        password: &VerifiedHash<'_>,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        // Eviction compares last use, so the user's unflushed usage must reach storage first.
        self.flush_user(key.user_id).await?;
        let revoked = self.store.issue_key(key, password, &self.policy, event).await?;
        self.forget(&revoked);
        for r in &revoked {
            self.record_revocation(key.user_id, r, None);
        }
        Ok(())
    }

    /// How many live keys the user holds now.
    pub async fn live_count(&self, user_id: Uuid) -> Result<usize, StoreError> {
        let (live, _) = self.list(user_id, Uuid::nil()).await?;
        Ok(live.len())
    }

    /// The user's live keys and the keys revoked in the last 30 days.
    pub async fn list(
        &self,
        user_id: Uuid,
        current: Uuid,
    ) -> Result<(Vec<KeyView>, Vec<RevokedView>), StoreError> {
        self.flush_user(user_id).await?;
        let now = self.clock.now();
        let records = self
            .store
            .list_keys(user_id, now.minus(REVOKED_LISTED_FOR))
            .await?;
        let mut live = Vec::new();
        let mut revoked = Vec::new();
        for r in records {
            let (revoked_at, reason) = match (
                r.revoked,
                self.policy.status(r.created, r.last_used, r.deadline, now),
            ) {
                (Some((at, reason)), _) => (at, reason),
                // Past its deadline but not yet noticed by a request or the sweep.
                (None, KeyStatus::Expired { at }) => (at, RevocationReason::Expired),
                (None, KeyStatus::Live) => {
                    live.push(KeyView {
                        id: r.id,
                        created: r.created,
                        expires: self.policy.expires_at(r.created, r.last_used, r.deadline),
                        last_used: r.last_used,
                        last_ip: r.last_ip,
                        user_agent: r.user_agent,
                        current: r.id == current,
                    });
                    continue;
                }
            };
            if now.minus(REVOKED_LISTED_FOR) <= revoked_at {
                revoked.push(RevokedView {
                    id: r.id,
                    created: r.created,
                    revoked: revoked_at,
                    reason,
                    network: r.revoked_network,
                });
            }
        }
        revoked.sort_by_key(|r| std::cmp::Reverse(r.revoked));
        Ok((live, revoked))
    }
}
