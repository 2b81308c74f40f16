//! What the hasher's tests share: cheap parameters, a worker without a pool, passwords.

use std::sync::Arc;

use argon2::Params;
use secrecy::SecretBox;

use super::HashWorker;
use crate::domain::{Password, StoredHash};

pub(super) fn cheap(m: u32) -> Params {
    Params::new(m, 1, 1, None).unwrap()
}

pub(super) fn worker(params: Params, pepper: Option<&str>) -> HashWorker {
    HashWorker::new(
        params,
        pepper.map(|p| Arc::new(SecretBox::new(p.as_bytes().to_vec().into_boxed_slice()))),
        metrics::Counter::noop(),
    )
}

pub(super) fn pw(s: &str) -> Password {
    Password::normalise(s).unwrap()
}

/// A hash made here.
pub(super) fn n(phc: &str) -> StoredHash {
    StoredHash::native(phc)
}
