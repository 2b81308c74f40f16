//! Suspensions as storage keeps them: at most one in force per user, ended by a newer one, by
//! being lifted or by their own end; the last administrator in force is never suspended.

use std::sync::LazyLock;

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::SUSPENSION_COLUMNS;
use super::{RevokedKey, StoreResult};
use crate::domain::{NewEvent, Suspension};

#[async_trait]
pub trait Suspensions: Send + Sync {
    /// Suspends a user, in one transaction: a suspension in force is ended (`lifted` at the new
    /// one's creation), `suspension` stored, every live key revoked (`suspended`, with `cause`),
    /// `event` recorded. [`super::StoreError::LastAdmin`] when the user is an administrator and no
    /// other one is in force.
    async fn suspend(&self, suspension: &Suspension, event: &NewEvent) -> StoreResult<Vec<RevokedKey>>;

    /// Lifts the user's suspension in force at `event.at` and records `event`; the lifted
    /// suspension, or `None` when none was in force (nothing recorded).
    async fn lift_suspension(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Option<Suspension>>;

    /// The user's suspensions, newest first.
    async fn list_suspensions(&self, user_id: Uuid) -> StoreResult<Vec<Suspension>>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// The user's ($1) suspension in force at $2: not lifted, not ended.
pub(super) static IN_FORCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SUSPENSION_COLUMNS} FROM suspensions \
         WHERE user_id = $1 AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > $2) \
         ORDER BY created_ms DESC LIMIT 1"
    )
});

pub(super) const ROLE_OF: &str = "SELECT role FROM users WHERE id = $1";

/// The administrators other than $1 in force (not suspended) at $2.
pub(super) const OTHER_ADMINS: &str = "SELECT count(*) FROM users u WHERE u.role = 'ADMIN' AND u.id <> $1 \
     AND NOT EXISTS (SELECT 1 FROM suspensions s WHERE s.user_id = u.id \
                     AND s.lifted_ms IS NULL AND (s.until_ms IS NULL OR s.until_ms > $2))";

/// Ends the user's ($2) suspension in force at $1 (as a newer one replaces it).
pub(super) const END_IN_FORCE: &str = "UPDATE suspensions SET lifted_ms = $1 \
     WHERE user_id = $2 AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > $1)";

pub(super) const INSERT: &str =
    "INSERT INTO suspensions (id, user_id, reason, created_ms, until_ms, by_id, lifted_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL)";

/// Lifts the user's ($2) suspension in force at $1, returning it.
pub(super) static LIFT: LazyLock<String> =
    LazyLock::new(|| format!("{END_IN_FORCE} RETURNING {SUSPENSION_COLUMNS}"));

pub(super) static OF_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SUSPENSION_COLUMNS} FROM suspensions WHERE user_id = $1 \
         ORDER BY created_ms DESC, lifted_ms IS NULL DESC, id"
    )
});
