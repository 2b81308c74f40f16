//! Sign-in, and the first steps every password check shares: the attempt counted against the
//! throttles before the account is read (`admit`, `admit_login`), a failure recorded.

use super::*;

impl AccountService {
    /// Counts a sign-in attempt (or a password check for a sensitive change) for `account`
    /// (canonical name, `None` when not even valid) from the client, before any password is
    /// hashed and before the account is read: `user_id` is the account's id when the caller
    /// already knows it (a reauthentication). 429 when a counter is at its limit.
    ///
    /// A throttled answer makes the same reads whether or not the name is an account's (the
    /// known-network exemption is looked up by name), so its timing does not tell which names
    /// exist: 429s are not counted, so they can be sampled at will. Only the `sign_in_throttled`
    /// event, at most once a minute per name, reads the account.
    pub(super) async fn admit(
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
    pub(super) async fn admit_login(
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
    pub(super) async fn sign_in_failed(
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
}
