//! The service layer's one error type: what a use case can answer, whichever use case it is
//! (`http::error` maps it to statuses in one place). Its own module so that the use cases and
//! the hashing pool depend on it, not on each other.

use super::hasher::Overloaded;
use super::keys::KeyError;
use crate::domain::password::PasswordError;
use crate::domain::username::UsernameError;
use crate::domain::{Suspension, SuspensionError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    InvalidUsername(#[from] UsernameError),
    #[error(transparent)]
    WeakPassword(#[from] PasswordError),
    /// The new password of a change (`new_password`) is refused.
    #[error(transparent)]
    WeakNewPassword(PasswordError),
    #[error("username already taken")]
    UsernameTaken,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid password")]
    InvalidPassword,
    /// `POST /users/reset`: a wrong, spent or expired code, or a name that matches no account.
    #[error("invalid username or code")]
    InvalidResetCode,
    /// A reset code for an account without a password (a service account).
    #[error("the account has no password")]
    NoPassword,
    #[error("invalid access key")]
    InvalidKey,
    #[error("not found")]
    NotFound,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// The right password for a suspended account.
    #[error("account suspended")]
    Suspended(Suspension),
    /// Suspending, demoting or deleting the last administrator in force.
    #[error("the last administrator")]
    LastAdmin,
    #[error(transparent)]
    InvalidSuspension(#[from] SuspensionError),
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// Every other store error (see the `From` below for the two that have a meaning here).
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ServiceError {
    /// The refusals a store decides inside its transactions become the service's own errors.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LastAdmin => ServiceError::LastAdmin,
            StoreError::Suspended(suspension) => ServiceError::Suspended(suspension),
            other => ServiceError::Store(other),
        }
    }
}

impl From<KeyError> for ServiceError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid => ServiceError::InvalidKey,
            KeyError::RateLimited { retry_after_secs } => ServiceError::TooManyRequests { retry_after_secs },
            KeyError::Store(s) => s.into(),
        }
    }
}
