//! What a signed-in player does to their own account: a password change or the deletion of the
//! account (each asking for the password again), and signing out.

use super::*;

impl AccountService {
    /// Checks the caller's password for a sensitive change, counted like a sign-in attempt;
    /// and, for a change, the new password in the same hashing job. The answer for a new
    /// password that is refused does not depend on whether `current` was right, and a wrong
    /// `current` counts as a failed sign-in whatever else the request holds.
    pub(super) async fn reauthenticate(
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
}
