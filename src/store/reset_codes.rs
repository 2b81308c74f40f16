//! Account recovery as storage keeps it: at most one reset code per user, by digest, replaced by
//! a newer one and deleted when spent (API.md, "Accounts and passwords"). A store contract of its
//! own, implemented in `sqlite/reset_codes.rs` and `postgres/reset_codes.rs`.

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
pub trait ResetCodeStore: Send + Sync {
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
