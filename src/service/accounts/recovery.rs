//! Account recovery without e-mail (API.md, "Accounts and passwords"): an administrator issues a
//! one-time reset code (`admin reset-code`, `POST /admin/users/{id}/reset-code`), the player
//! redeems it with a new password (`POST /users/reset`).
//!
//! Redeeming is guarded like a sign-in: counted by the sign-in throttles before anything is
//! checked, a wrong, spent or expired code and an unknown name answer alike and in the same time
//! (the same reads and comparison either way; the new password is hashed only once the code is
//! right), and the redemption is one transaction with the new password, the revocation of every
//! key and the spending of the code, serialised with sign-ins and password changes.

use std::time::Duration;

use uuid::Uuid;

use super::{by_text, AccountService, ServiceError};
use crate::domain::reset_code::{self, ResetCode, StoredCode};
use crate::domain::{AccessKey, EventKind, NewEvent, Password, Role, Timestamp};
use crate::service::hasher::Overloaded;
use crate::service::keys::Client;
use crate::store::StoreError;

impl AccountService {
    /// Issues a reset code for a user with a password, replacing the one they had; the code
    /// (shown once, stored only as a digest) and when it expires. `by` is the administrator,
    /// `None` on the command line.
    pub async fn issue_reset_code(
        &self,
        user_id: Uuid,
        lifetime: Duration,
        by: Option<Uuid>,
    ) -> Result<(ResetCode, Timestamp), ServiceError> {
        let user = self.existing(user_id).await?;
        if user.role == Role::Service {
            return Err(ServiceError::NoPassword);
        }
        let now = self.clock.now();
        let code = ResetCode::generate();
        let expires = now.plus(lifetime);
        let event = NewEvent::new(EventKind::ResetCodeIssued, now, Some(user_id))
            .by(by)
            .with_detail(serde_json::json!({ "expires": expires }));
        let stored = StoredCode {
            digest: code.digest(),
            expires,
        };
        match self.store.put_reset_code(user_id, &stored, &event).await {
            Ok(()) => {}
            Err(StoreError::Gone) => return Err(ServiceError::NotFound),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "security", event = "reset_code_issued", user_id = %user_id, by = %by_text(by), expires = %expires.to_rfc3339(), "reset code issued");
        Ok((code, expires))
    }

    /// `POST /users/reset`: the new password for the account named `username`, with its reset
    /// code; a key, as a sign-in gives. Every earlier key is revoked (`password_changed`). A
    /// suspended account gets its new password and stays suspended
    /// ([`ServiceError::Suspended`]: no key).
    pub async fn reset_password(
        &self,
        username: &str,
        code: &str,
        new_password: &str,
        client: &Client,
    ) -> Result<AccessKey, ServiceError> {
        if self.hasher.is_full() {
            return Err(Overloaded.into());
        }
        let now = self.clock.now();
        let network = self.keys.network_of(client.ip);
        let (attempt, found) = self.admit_login(username, client, &network, now).await?;
        let user_id = found.as_ref().map(|(u, _)| u.id);
        // The same read whether or not the name is an account's (the nil id has no code).
        let stored = match self.store.reset_code(user_id.unwrap_or(Uuid::nil())).await {
            Ok(stored) => stored.filter(|_| user_id.is_some()),
            Err(e) => {
                self.take_back(attempt).await;
                return Err(e.into());
            }
        };
        let (Some((user, _)), true) = (found, reset_code::redeems(stored.as_ref(), code, now)) else {
            return Err(self.reset_failed(username, user_id, client, &network, now).await);
        };
        let Some(digest) = reset_code::digest_of(code) else {
            return Err(self.reset_failed(username, user_id, client, &network, now).await);
        };
        // The code is right: the new password must pass the policy (the code is not spent when
        // it does not, so the player can try another).
        let phc = match Password::normalise(new_password) {
            Ok(password) => self.hash_new_password(password, user.name.as_str()).await,
            Err(e) => Err(ServiceError::WeakPassword(e)),
        };
        let phc = match phc {
            Ok(phc) => phc,
            Err(ServiceError::WeakPassword(e)) => {
                self.throttle.succeeded(attempt).await?;
                return Err(ServiceError::WeakNewPassword(e));
            }
            Err(e) => {
                self.take_back(attempt).await;
                return Err(e);
            }
        };
        let (key, record) = self.new_key(user.id, client);
        let event = NewEvent::new(EventKind::PasswordReset, record.created, Some(user.id))
            .from_network(Some(&network))
            .with_detail(serde_json::json!({ "key_id": record.id, "user_agent": client.user_agent }));
        let redeemed = match self
            .store
            .redeem_reset_code(user.id, &digest, &phc, &record, &event)
            .await
        {
            Ok(redeemed) => redeemed,
            // Spent by a concurrent redemption (or replaced, or the account deleted) since it
            // was read: a wrong code now, and it counts as one.
            Err(StoreError::Gone) => {
                return Err(self.reset_failed(username, user_id, client, &network, now).await)
            }
            Err(e) => {
                self.take_back(attempt).await;
                return Err(e.into());
            }
        };
        self.throttle.succeeded(attempt).await?;
        self.keys.forget(&redeemed.revoked);
        for r in &redeemed.revoked {
            self.keys.record_revocation(user.id, r, Some(&network));
        }
        tracing::info!(target: "security", event = "password_reset", user_id = %user.id, network = %network, keys = redeemed.revoked.len(), "password reset with a code");
        match redeemed.suspension {
            Some(suspension) => Err(ServiceError::Suspended(suspension)),
            None => Ok(key),
        }
    }

    /// A wrong, spent or expired code, or a name that matches no account: recorded as a failed
    /// sign-in (without the name when it matches none), logged; the counted attempt stays.
    async fn reset_failed(
        &self,
        username: &str,
        user_id: Option<Uuid>,
        client: &Client,
        network: &str,
        now: Timestamp,
    ) -> ServiceError {
        let event = NewEvent::new(EventKind::SignInFailed, now, user_id)
            .from_network(Some(network))
            .with_detail(serde_json::json!({ "via": "reset_code", "user_agent": client.user_agent }));
        self.record(event).await;
        let (user_id, name_digest) = self.loggable_name(username, user_id);
        tracing::info!(
            target: "security",
            event = "password_reset_failed",
            user_id = %user_id,
            name_digest = %name_digest,
            network = %network,
            "wrong username or reset code"
        );
        ServiceError::InvalidResetCode
    }
}
