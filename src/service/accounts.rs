//! Sign-up, sign-in, sign-out, password change and account deletion.

use std::sync::Arc;

use uuid::Uuid;

use super::hasher::{Hasher, Overloaded, Verification};
use super::keys::{Client, KeyEntry, KeyError, KeyService};
use crate::clock::Clock;
use crate::domain::password::PasswordError;
use crate::domain::username::UsernameError;
use crate::domain::{AccessKey, Password, PasswordPolicy, RevocationReason, Role, User, Username};
use crate::store::{NewKey, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    InvalidUsername(#[from] UsernameError),
    #[error(transparent)]
    WeakPassword(#[from] PasswordError),
    #[error("username already taken")]
    UsernameTaken,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid password")]
    InvalidPassword,
    #[error("invalid access key")]
    InvalidKey,
    #[error("not found")]
    NotFound,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<KeyError> for ServiceError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid => ServiceError::InvalidKey,
            KeyError::RateLimited { retry_after_secs } => ServiceError::TooManyRequests { retry_after_secs },
            KeyError::Store(s) => ServiceError::Store(s),
        }
    }
}

pub struct AccountService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: Arc<Hasher>,
    keys: Arc<KeyService>,
    policy: PasswordPolicy,
}

/// The outcome of checking a password on the hashing pool.
enum Checked {
    Ok { upgraded: Option<String> },
    Wrong,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<Hasher>,
        keys: Arc<KeyService>,
        policy: PasswordPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            hasher,
            keys,
            policy,
        }
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

    /// Verifies a password and, when the stored hash uses old parameters, computes its upgrade
    /// in the same job.
    async fn check_password(&self, password: Password, phc: Arc<str>) -> Result<Checked, ServiceError> {
        self.hasher
            .run(move |w| match w.verify(&password, &phc) {
                Verification::Mismatch => Ok(Checked::Wrong),
                Verification::Match { needs_rehash: false } => Ok(Checked::Ok { upgraded: None }),
                Verification::Match { needs_rehash: true } => Ok(Checked::Ok {
                    upgraded: Some(w.hash(&password)?),
                }),
            })
            .await?
    }

    /// `POST /users`: creates an account and signs it in.
    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        client: &Client,
    ) -> Result<(User, AccessKey), ServiceError> {
        let name = Username::parse(username)?;
        let password = Password::normalise(password)?;
        let phc = self.hash_new_password(password, name.as_str()).await?;
        let user = User {
            id: Uuid::new_v4(),
            name,
            role: Role::User,
            created: self.clock.now(),
        };
        let (key, record) = self.new_key(user.id, client);
        match self.store.create_user(&user, &phc, &record).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(ServiceError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "security", event = "signed_up", user_id = %user.id, ip = %client.ip, "account created");
        Ok((user, key))
    }

    /// `POST /auth`: the same work and the same answer whether or not the name exists.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: &Client,
    ) -> Result<AccessKey, ServiceError> {
        let found = match Username::parse(username) {
            Ok(name) => self.store.find_login(&name.canonical()).await?,
            Err(_) => None,
        };
        // An oversized or control-character password cannot match any stored hash; it is
        // refused like a wrong password, with no hashing (its cost does not depend on the name).
        let Ok(password) = Password::normalise(password) else {
            return Err(self.failed_sign_in(found.as_ref().map(|(u, _)| u.id), client));
        };
        let (user, phc) = match found {
            Some((user, phc)) => (Some(user), Arc::<str>::from(phc)),
            None => (None, self.hasher.dummy_phc()),
        };
        let checked = self.check_password(password, phc).await?;
        let (user, upgraded) = match (user, checked) {
            (Some(user), Checked::Ok { upgraded }) => (user, upgraded),
            (user, _) => return Err(self.failed_sign_in(user.map(|u| u.id), client)),
        };
        if let Some(phc) = upgraded {
            self.store
                .set_password_hash(user.id, &phc, self.clock.now())
                .await?;
            tracing::info!(target: "security", event = "password_rehashed", user_id = %user.id, "password hash upgraded");
        }
        let (key, record) = self.new_key(user.id, client);
        self.keys.issue(&record).await?;
        tracing::info!(target: "security", event = "signed_in", user_id = %user.id, key_id = %record.id, ip = %client.ip, "key issued");
        Ok(key)
    }

    fn failed_sign_in(&self, user_id: Option<Uuid>, client: &Client) -> ServiceError {
        match user_id {
            Some(id) => {
                tracing::info!(target: "security", event = "sign_in_failed", user_id = %id, ip = %client.ip, "wrong password")
            }
            None => {
                tracing::info!(target: "security", event = "sign_in_failed", ip = %client.ip, "unknown username")
            }
        }
        ServiceError::InvalidCredentials
    }

    /// Verifies the caller's password for a sensitive change (`Invalid password` on mismatch).
    async fn reauthenticate(
        &self,
        entry: &KeyEntry,
        password: &str,
        client: &Client,
    ) -> Result<(), ServiceError> {
        let Some((_, phc)) = self.store.find_user(entry.user.id).await? else {
            return Err(ServiceError::InvalidKey);
        };
        let ok = match Password::normalise(password) {
            Ok(p) => matches!(self.check_password(p, phc.into()).await?, Checked::Ok { .. }),
            Err(_) => false,
        };
        if ok {
            Ok(())
        } else {
            tracing::info!(target: "security", event = "reauthentication_failed", user_id = %entry.user.id, ip = %client.ip, "wrong password");
            Err(ServiceError::InvalidPassword)
        }
    }

    /// `PUT /users/me/password`: every earlier key is revoked, a new one returned.
    pub async fn change_password(
        &self,
        entry: &KeyEntry,
        current: &str,
        new: &str,
        client: &Client,
    ) -> Result<AccessKey, ServiceError> {
        let new = Password::normalise(new)?;
        self.reauthenticate(entry, current, client).await?;
        let phc = self.hash_new_password(new, entry.user.name.as_str()).await?;
        let (key, record) = self.new_key(entry.user.id, client);
        let revoked = self.store.change_password(entry.user.id, &phc, &record).await?;
        self.keys.forget(&revoked);
        for r in &revoked {
            super::keys::log_revocation(entry.user.id, r, None);
        }
        tracing::info!(target: "security", event = "password_changed", user_id = %entry.user.id, ip = %client.ip, "password changed");
        Ok(key)
    }

    /// `DELETE /users/me`: the account, its keys and its history are gone.
    pub async fn delete_account(
        &self,
        entry: &KeyEntry,
        password: &str,
        client: &Client,
    ) -> Result<(), ServiceError> {
        self.reauthenticate(entry, password, client).await?;
        let gone = self.store.delete_user(entry.user.id).await?;
        self.keys.forget(&gone);
        tracing::info!(target: "security", event = "account_deleted", user_id = %entry.user.id, ip = %client.ip, "account deleted");
        Ok(())
    }

    /// `DELETE /auth`: this key, or every key of the user.
    pub async fn sign_out(&self, entry: &KeyEntry, all: bool, client: &Client) -> Result<(), ServiceError> {
        let network = self.keys.network_of(client.ip);
        if all {
            self.keys
                .revoke_all(entry.user.id, RevocationReason::SignedOut, Some(&network))
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
}
