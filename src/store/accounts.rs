//! Accounts as storage keeps them: users (by id and by canonical name), their password hash
//! (none for a service account), their role.

use std::sync::LazyLock;

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{LOGIN_SELECT, USER_COLUMNS};
use super::{NewKey, RevokedKey, StoreResult};
use crate::domain::{NewEvent, Role, StoredHash, Timestamp, User};

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Creates a user with its password hash and (for a sign-up) its first key, and records
    /// `event`, atomically. A taken name is [`super::StoreError::Conflict`], decided by the
    /// unique constraint.
    async fn create_user(
        &self,
        user: &User,
        phc: &str,
        key: Option<&NewKey>,
        event: &NewEvent,
    ) -> StoreResult<()>;

    /// Creates a service account (role `SERVICE`) with its key, atomically, and no password hash:
    /// it cannot sign in ([`Accounts::find_login`] does not find it). A taken name is
    /// [`super::StoreError::Conflict`].
    async fn create_service(&self, user: &User, key: &NewKey, event: &NewEvent) -> StoreResult<()>;

    /// Users in creation order, after the cursor `(created, id)` if given.
    async fn list_users(&self, after: Option<(Timestamp, Uuid)>, limit: u32) -> StoreResult<Vec<User>>;

    /// The user and password hash for a sign-in name (case-insensitive).
    async fn find_login(&self, canonical_name: &str) -> StoreResult<Option<(User, StoredHash)>>;

    /// The user and password hash by id.
    async fn find_user(&self, id: Uuid) -> StoreResult<Option<(User, StoredHash)>>;

    /// The account with this canonical name, whatever its role and whether or not it has a
    /// password (for administration: `find_login` does not find service accounts).
    async fn find_account(&self, canonical_name: &str) -> StoreResult<Option<User>>;

    /// The account with this id, whatever its role.
    async fn find_account_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;

    /// Replaces the password hash `replaced` (the one the caller verified) with `phc`, revokes
    /// every key (`password_changed`), stores `new_key` and records `event`.
    /// [`super::StoreError::PasswordChanged`] when `replaced` is no longer the account's hash
    /// (nothing written), [`super::StoreError::Gone`] when the account is.
    async fn change_password(
        &self,
        user_id: Uuid,
        replaced: &str,
        phc: &str,
        new_key: &NewKey,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>>;

    /// Changes a user's role between `USER` and `ADMIN`, revokes every key of the user
    /// (`admin`: keys are cached with their owner's role) and records `event`. Nothing happens to
    /// a user that does not exist or is a service account. [`super::StoreError::LastAdmin`] when
    /// demoting the last administrator in force.
    async fn set_role(&self, user_id: Uuid, role: Role, event: &NewEvent) -> StoreResult<Vec<RevokedKey>>;

    /// Deletes the account with its keys, and records `event`; returns the keys that were live.
    /// [`super::StoreError::LastAdmin`] for the last administrator in force.
    async fn delete_user(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Vec<RevokedKey>>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// A new account's row: a taken name (regardless of case) is refused by the unique constraint.
pub(super) const INSERT_USER: &str =
    "INSERT INTO users (id, username, username_canonical, role, created_ms) VALUES ($1, $2, $3, $4, $5)";

/// A new account's password hash, made here.
pub(super) const INSERT_HASH: &str =
    "INSERT INTO password_hashes (user_id, phc, updated_ms) VALUES ($1, $2, $3)";

/// Replaces the account's password hash with one made here (no longer legacy).
pub(super) const SET_NATIVE_HASH: &str =
    "UPDATE password_hashes SET phc = $1, updated_ms = $2, legacy = false WHERE user_id = $3";

/// A user's password hash, as a write checks it; PostgreSQL locks it as it reads
/// (`postgres/dialect.rs`'s `hash_for_write`).
pub(super) const HASH_OF: &str = "SELECT phc FROM password_hashes WHERE user_id = $1";

/// Users after the cursor ($1, $2), at most $3.
pub(super) static LIST_USERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {USER_COLUMNS} FROM users WHERE (created_ms, id) > ($1, $2) ORDER BY created_ms, id LIMIT $3"
    )
});

pub(super) static LOGIN_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("{LOGIN_SELECT} WHERE u.username_canonical = $1"));

pub(super) static LOGIN_BY_ID: LazyLock<String> = LazyLock::new(|| format!("{LOGIN_SELECT} WHERE u.id = $1"));

pub(super) static ACCOUNT_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users WHERE username_canonical = $1"));

pub(super) static ACCOUNT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"));

/// A role change; never of a service account.
pub(super) const SET_ROLE: &str = "UPDATE users SET role = $1 WHERE id = $2 AND role <> 'SERVICE'";

/// Keys, hashes and suspensions go with the user (ON DELETE CASCADE); events stay until
/// `events.retention`.
pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
