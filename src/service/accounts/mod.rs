//! Sign-up, sign-in, sign-out, password change and account deletion; account recovery in
//! `recovery`.

mod recovery;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::hasher::{Hasher, Overloaded, Verification};
use super::keys::{Client, KeyEntry, KeyError, KeyService};
use super::throttle::{Attempt, SignInGate, Subject, Throttle};
use crate::clock::Clock;
use crate::domain::password::PasswordError;
use crate::domain::username::UsernameError;
use crate::domain::{
    AccessKey, Event, EventKind, HashClass, NewEvent, Password, PasswordPolicy, RevocationReason, Role,
    StoredHash, Suspension, SuspensionError, SuspensionRequest, Timestamp, User, Username,
};
use crate::store::{NewKey, Store, StoreError, VerifiedHash};
use crate::telemetry::Sampled;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    InvalidUsername(#[from] UsernameError),
    #[error(transparent)]
    WeakPassword(#[from] PasswordError),
    /// The new password of a change (`new_password`) is refused.
    #[error(transparent)]
    WeakNewPassword(PasswordError),
    #[error("username already taken")]
    UsernameTaken,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid password")]
    InvalidPassword,
    /// `POST /users/reset`: a wrong, spent or expired code, or a name that matches no account.
    #[error("invalid username or code")]
    InvalidResetCode,
    /// A reset code for an account without a password (a service account).
    #[error("the account has no password")]
    NoPassword,
    #[error("invalid access key")]
    InvalidKey,
    #[error("not found")]
    NotFound,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// The right password for a suspended account.
    #[error("account suspended")]
    Suspended(Suspension),
    /// Suspending, demoting or deleting the last administrator in force.
    #[error("the last administrator")]
    LastAdmin,
    #[error(transparent)]
    InvalidSuspension(#[from] SuspensionError),
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// Every other store error (see the `From` below for the two that have a meaning here).
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ServiceError {
    /// The refusals a store decides inside its transactions become the service's own errors.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LastAdmin => ServiceError::LastAdmin,
            StoreError::Suspended(suspension) => ServiceError::Suspended(suspension),
            other => ServiceError::Store(other),
        }
    }
}

impl From<KeyError> for ServiceError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid => ServiceError::InvalidKey,
            KeyError::RateLimited { retry_after_secs } => ServiceError::TooManyRequests { retry_after_secs },
            KeyError::Store(s) => s.into(),
        }
    }
}

/// How long a successful sign-in keeps a network open for its account when the account is
/// throttled by failures from many networks.
pub const KNOWN_NETWORK_FOR: Duration = Duration::from_secs(30 * 86_400);

/// Names that match no account are digested from at most this many characters (a bound on the
/// work an attacker can ask for; the digest stays distinct for anything a person types).
const DIGESTED_NAME_CHARS: usize = 256;

/// How many times a sign-in or a password change checks the password again when the hash it
/// checked was replaced before its write (a concurrent change or upgrade); beyond, 503.
const HASH_RACE_RETRIES: usize = 3;

/// Throttled requests are logged at most once a second (an attacker decides how many there are).
static SIGN_IN_THROTTLED: Sampled = Sampled::new(Duration::from_secs(1));
static SIGN_UP_THROTTLED: Sampled = Sampled::new(Duration::from_secs(1));

/// A throttled account (or, for names that match none, network) gets at most one
/// `sign_in_throttled` event per this period and instance: an attacker decides how many refused
/// attempts there are, and each would be a row.
const THROTTLED_EVENT_EVERY: Duration = Duration::from_secs(60);

/// What is known about a request for its events: where from, and with what.
fn client_detail(client: &Client) -> serde_json::Value {
    serde_json::json!({ "user_agent": client.user_agent })
}

pub struct AccountService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: Arc<Hasher>,
    keys: Arc<KeyService>,
    throttle: Arc<Throttle>,
    policy: PasswordPolicy,
    /// Subjects that got a `sign_in_throttled` event within [`THROTTLED_EVENT_EVERY`].
    throttled_recorded: moka::sync::Cache<String, ()>,
}

/// The outcome of checking a password on the hashing pool.
enum Checked {
    Ok {
        upgraded: Option<String>,
    },
    /// A wrong password (or none that could be checked). `hold` is when the answer may go
    /// (see `hasher::Timing`): a failure against any kind of hash takes as long.
    Wrong {
        hold: Option<std::time::Instant>,
    },
}

/// What checking the current password (and a new one) found.
enum Reauthentication {
    /// The current password was wrong; the new one, if given, was refused for this reason.
    Wrong { refused_new: Option<PasswordError> },
    /// The current password was right and the new one is refused.
    RefusedNew(PasswordError),
    /// The current password was right (against `verified`); the new one's hash, if one was
    /// given.
    Right {
        verified: String,
        new_phc: Option<String>,
    },
}

/// What a successful reauthentication verified: the account's hash as checked, and the new
/// password's hash for a change.
struct Reauthenticated {
    verified: String,
    new_phc: Option<String>,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<Hasher>,
        keys: Arc<KeyService>,
        throttle: Arc<Throttle>,
        policy: PasswordPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            hasher,
            keys,
            throttle,
            policy,
            throttled_recorded: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(THROTTLED_EVENT_EVERY)
                .build(),
        }
    }

    /// Records an event that stands alone (not part of another write). A failure to record it
    /// is logged, not answered: the request's own outcome does not depend on it.
    async fn record(&self, event: NewEvent) {
        if let Err(e) = self.store.record_events(std::slice::from_ref(&event)).await {
            static SAMPLED: Sampled = Sampled::new(Duration::from_secs(1));
            if let Some(suppressed) = SAMPLED.admit() {
                tracing::warn!(error = %e, kind = event.kind.as_str(), suppressed, "could not record a security event");
            }
        }
    }

    /// Password hashing jobs queued for the workers, and callers waiting for room.
    pub fn hashing_load(&self) -> (usize, usize) {
        self.hasher.load()
    }

    /// The hashing pool (imports ask it which hashes it verifies; start-up and housekeeping
    /// measure the classes of hashes in use on it).
    pub fn hasher(&self) -> Arc<Hasher> {
        self.hasher.clone()
    }

    fn new_key(&self, user_id: Uuid, client: &Client) -> (AccessKey, NewKey) {
        let key = AccessKey::generate();
        let record = NewKey {
            id: Uuid::new_v4(),
            user_id,
            digest: key.digest(),
            created: self.clock.now(),
            created_ip: Some(client.ip),
        };
        (key, record)
    }

    /// Checks a new password against the policy and hashes it, both on the hashing pool
    /// (the strength estimate is CPU work too).
    async fn hash_new_password(&self, password: Password, username: &str) -> Result<String, ServiceError> {
        let policy = self.policy.clone();
        let username = username.to_owned();
        self.hasher
            .run(move |w| -> Result<String, ServiceError> {
                policy.check_new(&password, &username)?;
                Ok(w.hash(&password)?)
            })
            .await?
    }

    /// Verifies a password and, when the stored hash uses old parameters or was imported,
    /// computes its upgrade (the configured Argon2id) in the same job. A class of hash this
    /// instance has not measured yet is measured first, so that even the first failure against
    /// it is held as long as any other (`hasher::Timing`).
    async fn check_password(
        &self,
        password: Password,
        stored: Arc<StoredHash>,
    ) -> Result<Checked, ServiceError> {
        let class = HashClass::of(&stored.phc).ok();
        if let Some(class) = class {
            if self.hasher.timing().cost(&class).is_none() {
                self.hasher.calibrate(&[class], false).await?;
            }
        }
        let hasher = self.hasher.clone();
        self.hasher
            .run(move |w| {
                let started = std::time::Instant::now();
                let verified = w.verify(&password, &stored);
                let elapsed = started.elapsed();
                if let Some(class) = class {
                    hasher.timing().observe(class, elapsed);
                }
                match verified {
                    Verification::Mismatch => {
                        let hold = class.map(|c| started + hasher.timing().failure_time(&c, elapsed));
                        Ok(Checked::Wrong { hold })
                    }
                    Verification::Match { needs_rehash: false } => Ok(Checked::Ok { upgraded: None }),
                    Verification::Match { needs_rehash: true } => Ok(Checked::Ok {
                        upgraded: Some(w.hash(&password)?),
                    }),
                }
            })
            .await?
    }

    /// `POST /users`: creates an account and signs it in. The attempt is counted against its
    /// network before the password is hashed; invalid input is refused before and does not
    /// count, nor does a password refused as weak; a taken name counts (it is how names are
    /// probed).
    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        client: &Client,
    ) -> Result<(User, AccessKey), ServiceError> {
        let now = self.clock.now();
        let network = self.keys.network_of(client.ip);
        let name = Username::parse(username)?;
        let password = Password::normalise(password)?;
        if self.hasher.is_full() {
            return Err(Overloaded.into());
        }
        let attempt = match self.throttle.count_sign_up(client.ip, &network, now).await? {
            Ok(attempt) => attempt,
            Err(wait) => {
                if let Some(suppressed) = SIGN_UP_THROTTLED.admit() {
                    tracing::warn!(target: "security", event = "sign_up_throttled", network = %network, retry_after_secs = wait, suppressed, "too many sign-ups from one network");
                }
                return Err(ServiceError::TooManyRequests {
                    retry_after_secs: wait,
                });
            }
        };
        let phc = match self.hash_new_password(password, name.as_str()).await {
            Ok(phc) => phc,
            Err(e) => {
                self.take_back(attempt).await;
                return Err(e);
            }
        };
        let user = User {
            id: Uuid::new_v4(),
            name,
            role: Role::User,
            created: self.clock.now(),
        };
        let (key, record) = self.new_key(user.id, client);
        let event = NewEvent::new(EventKind::SignedUp, record.created, Some(user.id))
            .from_network(Some(&network))
            .with_detail(serde_json::json!({ "key_id": record.id, "user_agent": client.user_agent }));
        match self.store.create_user(&user, &phc, Some(&record), &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                tracing::info!(target: "security", event = "sign_up_name_taken", username = ?user.name.as_str(), network = %network, "name taken");
                return Err(ServiceError::UsernameTaken);
            }
            Err(e) => return Err(e.into()),
        }
        self.store.remember_network(user.id, &network, now).await?;
        tracing::info!(target: "security", event = "signed_up", user_id = %user.id, username = ?user.name.as_str(), network = %network, "account created");
        Ok((user, key))
    }

    /// Takes back an attempt that was not decided by its password (the hashing queue was full,
    /// the new password was refused): it does not count.
    async fn take_back(&self, attempt: Attempt) {
        if let Err(e) = self.throttle.undecided(attempt).await {
            tracing::warn!(error = %e, "could not take back a counted attempt; it counts as a failure");
        }
    }

    /// How a name that may match no account appears in the log: the account's id when it
    /// exists, else only the keyed digest of what was typed (it may be a password).
    fn loggable_name(&self, typed: &str, user_id: Option<Uuid>) -> (String, String) {
        match user_id {
            Some(id) => (id.to_string(), String::new()),
            None => {
                let typed: String = typed.chars().take(DIGESTED_NAME_CHARS).collect();
                (String::new(), self.throttle.name_digest(&typed))
            }
        }
    }

    /// Counts a sign-in attempt (or a password check for a sensitive change) for `account`
    /// (canonical name, `None` when not even valid) from the client, before any password is
    /// hashed and before the account is read: `user_id` is the account's id when the caller
    /// already knows it (a reauthentication). 429 when a counter is at its limit.
    ///
    /// A throttled answer makes the same reads whether or not the name is an account's (the
    /// known-network exemption is looked up by name), so its timing does not tell which names
    /// exist: 429s are not counted, so they can be sampled at will. Only the `sign_in_throttled`
    /// event, at most once a minute per name, reads the account.
    async fn admit(
        &self,
        typed: &str,
        account: Option<&str>,
        user_id: Option<Uuid>,
        client: &Client,
        network: &str,
        now: Timestamp,
    ) -> Result<Attempt, ServiceError> {
        let who = Subject {
            account,
            ip: client.ip,
            network,
        };
        let wait = match self.throttle.count_sign_in(&who, false, now).await? {
            SignInGate::Counted(attempt) => return Ok(attempt),
            SignInGate::Throttled { retry_after_secs } => retry_after_secs,
            SignInGate::AccountThrottled { retry_after_secs } => {
                let known = match account {
                    Some(name) => {
                        self.store
                            .is_known_network(name, network, now.minus(KNOWN_NETWORK_FOR))
                            .await?
                    }
                    None => false,
                };
                if !known {
                    retry_after_secs
                } else {
                    match self.throttle.count_sign_in(&who, true, now).await? {
                        SignInGate::Counted(attempt) => return Ok(attempt),
                        SignInGate::Throttled { retry_after_secs }
                        | SignInGate::AccountThrottled { retry_after_secs } => retry_after_secs,
                    }
                }
            }
        };
        let subject = account.map_or_else(|| format!("network {network}"), |name| format!("account {name}"));
        let mut user_id = user_id;
        if !self.throttled_recorded.contains_key(&subject) {
            self.throttled_recorded.insert(subject, ());
            if let (None, Some(name)) = (user_id, account) {
                user_id = self.store.find_account(name).await.ok().flatten().map(|u| u.id);
            }
            let event = NewEvent::new(EventKind::SignInThrottled, now, user_id)
                .from_network(Some(network))
                .with_detail(
                    serde_json::json!({ "retry_after_secs": wait, "user_agent": client.user_agent }),
                );
            self.record(event).await;
        }
        if let Some(suppressed) = SIGN_IN_THROTTLED.admit() {
            let (user_id, name_digest) = self.loggable_name(typed, user_id);
            tracing::warn!(
                target: "security",
                event = "sign_in_throttled",
                user_id = %user_id,
                name_digest = %name_digest,
                network = %network,
                retry_after_secs = wait,
                suppressed,
                "sign-in throttled"
            );
        }
        Err(ServiceError::TooManyRequests {
            retry_after_secs: wait,
        })
    }

    /// The first steps of a sign-in or a reset with a code: the attempt counted by the throttles
    /// under the name as typed, before anything is read, then the account with that name (if
    /// any) and its password hash. A failed read takes the attempt back.
    async fn admit_login(
        &self,
        username: &str,
        client: &Client,
        network: &str,
        now: Timestamp,
    ) -> Result<(Attempt, Option<(User, StoredHash)>), ServiceError> {
        let account = Username::parse(username).ok().map(|n| n.canonical());
        let attempt = self
            .admit(username, account.as_deref(), None, client, network, now)
            .await?;
        let found = match &account {
            Some(canonical) => match self.store.find_login(canonical).await {
                Ok(found) => found,
                Err(e) => {
                    self.take_back(attempt).await;
                    return Err(e.into());
                }
            },
            None => None,
        };
        Ok((attempt, found))
    }

    /// `POST /auth`: the same work and the same answer whether or not the name exists.
    ///
    /// Linearizable with password changes: the key is issued only while the hash the password
    /// was checked against is still the account's (`Keys::issue_key`); when a change (or another
    /// sign-in's upgrade) committed in between, the password is checked again against the hash
    /// it left, so a sign-in either completes before a change, and the change revokes its key,
    /// or is judged by the new password.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: &Client,
    ) -> Result<AccessKey, ServiceError> {
        // Under a flood, refuse before reading the database or logging anything.
        if self.hasher.is_full() {
            return Err(Overloaded.into());
        }
        let now = self.clock.now();
        let network = self.keys.network_of(client.ip);
        let (attempt, mut found) = self.admit_login(username, client, &network, now).await?;
        let user_id = found.as_ref().map(|(u, _)| u.id);
        // An oversized or control-character password cannot match any stored hash; it is
        // refused like a wrong password, with no hashing (its cost does not depend on the name).
        let password = Password::normalise(password).ok();
        for _ in 0..HASH_RACE_RETRIES {
            let checked = match &password {
                Some(password) => {
                    let stored = match &found {
                        // Service accounts have no password: `find_login` never finds them.
                        Some((_, stored)) => Arc::new(stored.clone()),
                        None => self.hasher.dummy(),
                    };
                    match self.check_password(password.clone(), stored).await {
                        Ok(checked) => checked,
                        Err(e) => {
                            self.take_back(attempt).await;
                            return Err(e);
                        }
                    }
                }
                None => Checked::Wrong { hold: None },
            };
            let (user, stored, upgraded) = match (found.take(), checked) {
                (Some((user, stored)), Checked::Ok { upgraded }) => (user, stored, upgraded),
                (_, Checked::Wrong { hold }) => {
                    return Err(self
                        .sign_in_failed(username, user_id, client, &network, now, hold)
                        .await)
                }
                (None, Checked::Ok { .. }) => {
                    return Err(self
                        .sign_in_failed(username, user_id, client, &network, now, None)
                        .await)
                }
            };
            let (key, record) = self.new_key(user.id, client);
            let event = NewEvent::new(EventKind::SignedIn, record.created, Some(user.id))
                .from_network(Some(&network))
                .with_detail(serde_json::json!({ "key_id": record.id, "user_agent": client.user_agent }));
            let verified = VerifiedHash {
                verified: &stored.phc,
                upgrade: upgraded.as_deref(),
            };
            match self.keys.issue(&record, &verified, &event).await {
                Ok(()) => {}
                Err(StoreError::PasswordChanged) => {
                    // Checked again, against the hash the change left.
                    found = self.store.find_user(user.id).await?;
                    continue;
                }
                Err(StoreError::Gone) => {
                    // Deleted since it was read: as if it had never been found.
                    return Err(self
                        .sign_in_failed(username, user_id, client, &network, now, None)
                        .await);
                }
                Err(StoreError::Suspended(suspension)) => {
                    self.throttle.succeeded(attempt).await?;
                    tracing::info!(target: "security", event = "sign_in_suspended", user_id = %user.id, network = %network, "right password for a suspended account");
                    return Err(ServiceError::Suspended(suspension));
                }
                Err(e) => {
                    self.take_back(attempt).await;
                    return Err(e.into());
                }
            }
            self.throttle.succeeded(attempt).await?;
            if upgraded.is_some() {
                tracing::info!(target: "security", event = "password_rehashed", user_id = %user.id, "password hash upgraded to the configured Argon2id");
            }
            match self.store.remember_network(user.id, &network, now).await {
                Ok(()) => {}
                // Deleted right after the key was issued: the key went with it.
                Err(StoreError::Gone) => return Err(ServiceError::InvalidCredentials),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(target: "security", event = "signed_in", user_id = %user.id, key_id = %record.id, network = %network, "key issued");
            return Ok(key);
        }
        // The hash changed under every check: the account is being changed right now.
        self.take_back(attempt).await;
        Err(Overloaded.into())
    }

    /// A failed sign-in: recorded (without the name, which may be a password typed in the wrong
    /// field when it matches no account) and logged; the counted attempt stays. The answer waits
    /// until `hold` (see `hasher::Timing`).
    async fn sign_in_failed(
        &self,
        username: &str,
        user_id: Option<Uuid>,
        client: &Client,
        network: &str,
        now: Timestamp,
        hold: Option<std::time::Instant>,
    ) -> ServiceError {
        let event = NewEvent::new(EventKind::SignInFailed, now, user_id)
            .from_network(Some(network))
            .with_detail(client_detail(client));
        self.record(event).await;
        let (user_id, name_digest) = self.loggable_name(username, user_id);
        tracing::info!(
            target: "security",
            event = "sign_in_failed",
            user_id = %user_id,
            name_digest = %name_digest,
            network = %network,
            "wrong username or password"
        );
        if let Some(hold) = hold {
            tokio::time::sleep_until(tokio::time::Instant::from_std(hold)).await;
        }
        ServiceError::InvalidCredentials
    }

    /// Checks the caller's password for a sensitive change, counted like a sign-in attempt;
    /// and, for a change, the new password in the same hashing job. The answer for a new
    /// password that is refused does not depend on whether `current` was right, and a wrong
    /// `current` counts as a failed sign-in whatever else the request holds.
    async fn reauthenticate(
        &self,
        entry: &KeyEntry,
        current: &str,
        new: Option<&str>,
        client: &Client,
    ) -> Result<Reauthenticated, ServiceError> {
        let now = self.clock.now();
        let network = self.keys.network_of(client.ip);
        let account = entry.user.name.canonical();
        let attempt = self
            .admit(
                &account,
                Some(&account),
                Some(entry.user.id),
                client,
                &network,
                now,
            )
            .await?;
        let phc = match self.store.find_user(entry.user.id).await {
            Ok(Some((_, phc))) => phc,
            Ok(None) => {
                self.take_back(attempt).await;
                return Err(ServiceError::InvalidKey);
            }
            Err(e) => {
                self.take_back(attempt).await;
                return Err(e.into());
            }
        };
        let current = Password::normalise(current).ok();
        let new = new.map(Password::normalise);
        let policy = self.policy.clone();
        let username = entry.user.name.as_str().to_owned();
        let checked = self
            .hasher
            .run(move |w| -> Result<Reauthentication, ServiceError> {
                let right = current.is_some_and(|p| matches!(w.verify(&p, &phc), Verification::Match { .. }));
                let verified = phc.phc;
                let new = match new {
                    None => None,
                    Some(Err(e)) => Some(Err(e)),
                    Some(Ok(p)) => Some(policy.check_new(&p, &username).map(|()| p)),
                };
                Ok(match (right, new) {
                    (false, new) => Reauthentication::Wrong {
                        refused_new: new.and_then(Result::err),
                    },
                    (true, Some(Err(e))) => Reauthentication::RefusedNew(e),
                    (true, None) => Reauthentication::Right {
                        verified,
                        new_phc: None,
                    },
                    (true, Some(Ok(p))) => Reauthentication::Right {
                        verified,
                        new_phc: Some(w.hash(&p)?),
                    },
                })
            })
            .await;
        let checked = match checked.map_err(ServiceError::from).and_then(|r| r) {
            Ok(checked) => checked,
            Err(e) => {
                self.take_back(attempt).await;
                return Err(e);
            }
        };
        match checked {
            Reauthentication::Wrong { refused_new } => {
                tracing::info!(target: "security", event = "reauthentication_failed", user_id = %entry.user.id, network = %network, "wrong password");
                Err(match refused_new {
                    Some(e) => ServiceError::WeakNewPassword(e),
                    None => ServiceError::InvalidPassword,
                })
            }
            Reauthentication::RefusedNew(e) => {
                self.throttle.succeeded(attempt).await?;
                Err(ServiceError::WeakNewPassword(e))
            }
            Reauthentication::Right { verified, new_phc } => {
                self.throttle.succeeded(attempt).await?;
                Ok(Reauthenticated { verified, new_phc })
            }
        }
    }

    /// `PUT /users/me/password`: every earlier key is revoked, a new one returned. The new hash
    /// replaces only the hash the current password was checked against: when another change
    /// (or a sign-in's upgrade) committed in between, the current password is checked again.
    pub async fn change_password(
        &self,
        entry: &KeyEntry,
        current: &str,
        new: &str,
        client: &Client,
    ) -> Result<AccessKey, ServiceError> {
        let network = self.keys.network_of(client.ip);
        for _ in 0..HASH_RACE_RETRIES {
            let checked = self.reauthenticate(entry, current, Some(new), client).await?;
            let phc = checked
                .new_phc
                .ok_or_else(|| anyhow::anyhow!("no hash for the new password"))?;
            let (key, record) = self.new_key(entry.user.id, client);
            let event = NewEvent::new(EventKind::PasswordChanged, record.created, Some(entry.user.id))
                .from_network(Some(&network))
                .with_detail(serde_json::json!({ "key_id": record.id, "user_agent": client.user_agent }));
            let revoked = match self
                .store
                .change_password(entry.user.id, &checked.verified, &phc, &record, &event)
                .await
            {
                Ok(revoked) => revoked,
                Err(StoreError::PasswordChanged) => continue,
                Err(StoreError::Gone) => return Err(ServiceError::InvalidKey),
                Err(e) => return Err(e.into()),
            };
            self.keys.forget(&revoked);
            for r in &revoked {
                self.keys.record_revocation(entry.user.id, r, Some(&network));
            }
            tracing::info!(target: "security", event = "password_changed", user_id = %entry.user.id, network = %network, "password changed");
            return Ok(key);
        }
        Err(Overloaded.into())
    }

    /// `DELETE /users/me`: the account, its keys and its history are gone.
    pub async fn delete_account(
        &self,
        entry: &KeyEntry,
        password: &str,
        client: &Client,
    ) -> Result<(), ServiceError> {
        self.reauthenticate(entry, password, None, client).await?;
        let network = self.keys.network_of(client.ip);
        let event = NewEvent::new(EventKind::AccountDeleted, self.clock.now(), Some(entry.user.id))
            .from_network(Some(&network))
            .with_detail(client_detail(client));
        let gone = self.store.delete_user(entry.user.id, &event).await?;
        self.keys.forget(&gone);
        tracing::info!(target: "security", event = "account_deleted", user_id = %entry.user.id, network = %self.keys.network_of(client.ip), "account deleted");
        Ok(())
    }

    /// `DELETE /auth`: this key, or every key of the user.
    pub async fn sign_out(&self, entry: &KeyEntry, all: bool, client: &Client) -> Result<(), ServiceError> {
        let network = self.keys.network_of(client.ip);
        if all {
            self.keys
                .revoke_all(entry.user.id, RevocationReason::SignedOut, Some(&network), None)
                .await?;
        } else {
            self.keys
                .revoke(
                    entry,
                    RevocationReason::SignedOut,
                    self.clock.now(),
                    Some(&network),
                )
                .await?;
        }
        Ok(())
    }

    // Administration (the `admin` command line and the `/admin` routes).

    /// Creates an administrator; the password must pass the same policy as anyone's.
    pub async fn create_admin(&self, username: &str, password: &str) -> Result<User, ServiceError> {
        let name = Username::parse(username)?;
        let password = Password::normalise(password)?;
        let phc = self.hash_new_password(password, name.as_str()).await?;
        let user = User {
            id: Uuid::new_v4(),
            name,
            role: Role::Admin,
            created: self.clock.now(),
        };
        let event = NewEvent::new(EventKind::SignedUp, user.created, Some(user.id))
            .with_detail(serde_json::json!({ "role": user.role.as_str(), "via": "command line" }));
        match self.store.create_user(&user, &phc, None, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(ServiceError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "security", event = "admin_created", user_id = %user.id, username = ?user.name.as_str(), "administrator created");
        Ok(user)
    }

    /// Creates a service account (role `SERVICE`, for a game server): no password, one key,
    /// returned here and never again. The name follows the username rules.
    pub async fn create_service(&self, name: &str) -> Result<(User, AccessKey), ServiceError> {
        let name = Username::parse(name)?;
        let user = User {
            id: Uuid::new_v4(),
            name,
            role: Role::Service,
            created: self.clock.now(),
        };
        let key = AccessKey::generate();
        let record = NewKey {
            id: Uuid::new_v4(),
            user_id: user.id,
            digest: key.digest(),
            created: user.created,
            // Made on the command line: no network to count (service keys are not judged by
            // networks anyway).
            created_ip: None,
        };
        let event = NewEvent::new(EventKind::SignedUp, user.created, Some(user.id)).with_detail(
            serde_json::json!({ "role": "SERVICE", "key_id": record.id, "via": "command line" }),
        );
        match self.store.create_service(&user, &record, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(ServiceError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "security", event = "service_created", user_id = %user.id, key_id = %record.id, username = ?user.name.as_str(), "service account created");
        Ok((user, key))
    }

    /// Users in creation order, after a cursor.
    pub async fn list_users(
        &self,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<User>, ServiceError> {
        Ok(self.store.list_users(after, limit).await?)
    }

    /// The account with this name, whatever its role (service accounts included).
    pub async fn find_user(&self, username: &str) -> Result<User, ServiceError> {
        let name = Username::parse(username).map_err(|_| ServiceError::NotFound)?;
        self.store
            .find_account(&name.canonical())
            .await?
            .ok_or(ServiceError::NotFound)
    }

    async fn existing(&self, user_id: Uuid) -> Result<User, ServiceError> {
        self.store
            .find_account_by_id(user_id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Revokes every key of a user (reason `admin`); returns how many. `by` is the
    /// administrator, `None` on the command line.
    pub async fn admin_revoke_keys(&self, user_id: Uuid, by: Option<Uuid>) -> Result<usize, ServiceError> {
        self.existing(user_id).await?;
        let n = self
            .keys
            .revoke_all(user_id, RevocationReason::Admin, None, by)
            .await?;
        tracing::info!(target: "security", event = "admin_revoked_keys", user_id = %user_id, by = %by_text(by), keys = n, "keys revoked by an administrator");
        Ok(n)
    }

    /// Deletes a user with its keys and suspensions; the last administrator in force cannot be.
    pub async fn admin_delete_user(&self, user_id: Uuid, by: Option<Uuid>) -> Result<(), ServiceError> {
        self.existing(user_id).await?;
        let event = NewEvent::new(EventKind::AccountDeleted, self.clock.now(), Some(user_id)).by(by);
        let gone = self.store.delete_user(user_id, &event).await?;
        self.keys.forget(&gone);
        tracing::info!(target: "security", event = "admin_deleted_user", user_id = %user_id, by = %by_text(by), "user deleted by an administrator");
        Ok(())
    }

    /// Suspends a user (replacing a suspension in force) and revokes every key of theirs.
    pub async fn suspend(
        &self,
        user_id: Uuid,
        reason: &str,
        until: Option<Timestamp>,
        by: Option<Uuid>,
    ) -> Result<Suspension, ServiceError> {
        let now = self.clock.now();
        let request = SuspensionRequest::new(reason, until, now)?;
        self.existing(user_id).await?;
        let suspension = request.at(user_id, now, by);
        let event = NewEvent::new(EventKind::Suspended, now, Some(user_id))
            .by(by)
            .with_detail(serde_json::json!({
                "suspension_id": suspension.id,
                "reason": suspension.reason,
                "until": suspension.until,
            }));
        let revoked = self.store.suspend(&suspension, &event).await?;
        self.keys.forget(&revoked);
        for r in &revoked {
            self.keys.record_revocation(user_id, r, None);
        }
        tracing::info!(target: "security", event = "suspended", user_id = %user_id, by = %by_text(by), until = ?suspension.until.map(Timestamp::to_rfc3339), keys = revoked.len(), "user suspended");
        Ok(suspension)
    }

    /// Makes a user an administrator or a player again (`role_changed`), revoking every key of
    /// theirs (the new role applies from the next sign-in, on every instance at once); the last
    /// administrator in force cannot be demoted. Service accounts keep their role.
    pub async fn set_role(&self, user_id: Uuid, role: Role, by: Option<Uuid>) -> Result<User, ServiceError> {
        let user = self.existing(user_id).await?;
        if role == Role::Service || user.role == Role::Service {
            return Err(
                anyhow::anyhow!("service accounts are made with create-service and keep their role").into(),
            );
        }
        let event = NewEvent::new(EventKind::RoleChanged, self.clock.now(), Some(user_id))
            .by(by)
            .with_detail(serde_json::json!({ "from": user.role.as_str(), "to": role.as_str() }));
        let revoked = self.store.set_role(user_id, role, &event).await?;
        self.keys.forget(&revoked);
        for r in &revoked {
            self.keys.record_revocation(user_id, r, None);
        }
        tracing::info!(target: "security", event = "role_changed", user_id = %user_id, from = user.role.as_str(), to = role.as_str(), by = %by_text(by), "role changed");
        Ok(User { role, ..user })
    }

    /// Lifts the suspension in force; `NotFound` when there is none.
    pub async fn unsuspend(&self, user_id: Uuid, by: Option<Uuid>) -> Result<Suspension, ServiceError> {
        self.existing(user_id).await?;
        let event = NewEvent::new(EventKind::SuspensionLifted, self.clock.now(), Some(user_id)).by(by);
        let lifted = self
            .store
            .lift_suspension(user_id, &event)
            .await?
            .ok_or(ServiceError::NotFound)?;
        tracing::info!(target: "security", event = "suspension_lifted", user_id = %user_id, by = %by_text(by), "suspension lifted");
        Ok(lifted)
    }

    /// A user with their suspension in force (if any) and every suspension, newest first.
    pub async fn user_details(
        &self,
        user_id: Uuid,
    ) -> Result<(User, Option<Suspension>, Vec<Suspension>), ServiceError> {
        let user = self.existing(user_id).await?;
        let history = self.store.list_suspensions(user_id).await?;
        let now = self.clock.now();
        let current = history.iter().find(|s| s.is_active(now)).cloned();
        Ok((user, current, history))
    }

    /// Security events, newest first: one user's or everyone's, before position `before`.
    pub async fn events(
        &self,
        user_id: Option<Uuid>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>, ServiceError> {
        Ok(self.store.list_events(user_id, before, limit).await?)
    }
}

/// Who did it, for the log: an administrator's id, or the command line.
fn by_text(by: Option<Uuid>) -> String {
    by.map_or_else(|| "command line".to_owned(), |id| id.to_string())
}
