//! Account recovery as storage keeps it: at most one reset code per user, by digest, replaced by
//! a newer one and deleted when spent (API.md, "Accounts and passwords"). A store contract of its
//! own, implemented for both databases in `sql/reset_codes.rs`.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewKey, RevokedKey, StoreResult};
use crate::domain::reset_code::{ResetCodeDigest, StoredCode};
use crate::domain::{NewEvent, Suspension};

/// What redeeming a code did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redeemed {
    /// Every key the user held, revoked (`password_changed`).
    pub revoked: Vec<RevokedKey>,
    /// The suspension in force, if any: the password is reset but no key is issued.
    pub suspension: Option<Suspension>,
}

#[async_trait]
pub trait ResetCodes: Send + Sync {
    /// Stores `code` as the user's reset code, replacing the one they had (which can no longer be
    /// redeemed), and records `event`, atomically. [`super::StoreError::Gone`] when the user does
    /// not exist or has no password (a service account).
    async fn put_reset_code(&self, user_id: Uuid, code: &StoredCode, event: &NewEvent) -> StoreResult<()>;

    /// The user's reset code, if one is stored (a spent code is not).
    async fn reset_code(&self, user_id: Uuid) -> StoreResult<Option<StoredCode>>;

    /// Redeems the code with digest `code` at `new_key.created`, in one transaction serialised with
    /// every other write of the user's password: if it is still the user's unexpired code, the
    /// password hash becomes `phc`, every live key is revoked (`password_changed`), the code is
    /// deleted, `event` recorded, and `new_key` stored unless the user is suspended.
    /// [`super::StoreError::Gone`] when the code is no longer there (spent by a concurrent
    /// redemption, replaced, expired) or the user is gone: nothing written.
    async fn redeem_reset_code(
        &self,
        user_id: Uuid,
        code: &ResetCodeDigest,
        phc: &str,
        new_key: &NewKey,
        event: &NewEvent,
    ) -> StoreResult<Redeemed>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// Stores the user's code, replacing theirs, only for an account with a password (a service
/// account has none).
pub(super) const PUT: &str = "INSERT INTO reset_codes (user_id, digest, created_ms, expires_ms) \
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM password_hashes WHERE user_id = $1) \
     ON CONFLICT (user_id) DO UPDATE SET digest = excluded.digest, \
     created_ms = excluded.created_ms, expires_ms = excluded.expires_ms";

pub(super) const OF_USER: &str = "SELECT digest, expires_ms FROM reset_codes WHERE user_id = $1";

/// Spends the user's ($1) code if it is $2 and unexpired at $3.
pub(super) const SPEND: &str =
    "DELETE FROM reset_codes WHERE user_id = $1 AND digest = $2 AND expires_ms > $3";

/// Codes past their expiry ($1 the cutoff).
pub(super) const PRUNE: &str = "DELETE FROM reset_codes WHERE expires_ms < $1";

/// A stored code's row.
#[derive(sqlx::FromRow)]
pub(super) struct CodeRow {
    pub digest: Vec<u8>,
    pub expires_ms: i64,
}

impl CodeRow {
    pub(super) fn into_code(self) -> StoreResult<StoredCode> {
        let digest: [u8; 32] = self
            .digest
            .try_into()
            .map_err(|_| super::StoreError::Corrupt("a reset code digest is not 32 bytes".into()))?;
        Ok(StoredCode {
            digest: ResetCodeDigest(digest),
            expires: super::rows::ts(self.expires_ms),
        })
    }
}
