//! The account use cases: sign-up and what they share (here); sign-in (`sign_in`); password
//! change, deletion and sign-out (`own_account`); administration (`admin`); account recovery
//! (`recovery`).

mod admin;
mod own_account;
mod recovery;
mod sign_in;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::error::ServiceError;
use super::hasher::{Hasher, Overloaded, Verification};
use super::keys::{Client, KeyEntry, KeyService};
use super::throttle::{Attempt, SignInGate, Subject, Throttle};
use crate::clock::Clock;
use crate::domain::password::PasswordError;
use crate::domain::{
    AccessKey, Event, EventKind, HashClass, NewEvent, Password, PasswordPolicy, RevocationReason, Role,
    StoredHash, Suspension, SuspensionRequest, Timestamp, User, Username,
};
use crate::store::{NewKey, Store, StoreError, VerifiedHash};
use crate::telemetry::Sampled;

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
}

/// Who did it, for the log: an administrator's id, or the command line.
fn by_text(by: Option<Uuid>) -> String {
    by.map_or_else(|| "command line".to_owned(), |id| id.to_string())
}
