//! Administration, for the `admin` command line and the `/admin` routes: administrators and
//! game-server accounts, users, roles, suspensions, keys and events.

use super::*;

impl AccountService {
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

    pub(super) async fn existing(&self, user_id: Uuid) -> Result<User, ServiceError> {
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
