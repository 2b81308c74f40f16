//! Whether writes work, as `GET /health` reports it (`writes_failing`), for every store.
//!
//! A write that fails as unavailable (full disk, I/O error, read-only database, lock timeout,
//! lost connection) marks writes as failing; while they do, a probe write (a small committed
//! transaction needing about the room of a sign-up) decides when they work again, run by
//! `GET /health` and once a second by the server's background loop, so that the state clears
//! even when nobody writes. Only the probe clears it (see [`WriteHealth::note`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::{StoreError, StoreResult};

#[async_trait]
pub trait Health: Send + Sync {
    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether writes work. At once `Ok` while no write has failed as unavailable since the last
    /// successful probe; otherwise a probe write (a small committed transaction that needs
    /// about as much free space as a sign-up) decides, and its success clears the failure.
    async fn check_writes(&self) -> StoreResult<()>;

    /// A write failed as unavailable (full disk, I/O error, read-only file, lock timeout) and
    /// no probe write has succeeded since ([`Health::check_writes`]).
    fn writes_failing(&self) -> bool;

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);
}

#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    /// A write failed as unavailable and no probe write has committed since.
    failing: AtomicBool,
}

impl WriteHealth {
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Notes the outcome of a write: an unavailable database marks writes as failing. Only a
    /// probe write clears that ([`WriteHealth::recovered`]): other writes that succeed may have
    /// needed no new space (an update in place, as the throttle flush makes every second) and
    /// say nothing about whether a sign-up would fit.
    pub(crate) fn note<T>(&self, outcome: &StoreResult<T>) {
        if let Err(StoreError::Unavailable(e)) = outcome {
            self.failed(e);
        }
    }

    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %error, "database writes fail; answering 503 until a probe write succeeds");
        }
    }

    /// A probe write committed.
    pub(crate) fn recovered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::warn!("database writes work again");
        }
    }

    /// Runs a write and notes its outcome.
    pub(crate) async fn writing<T>(&self, write: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let outcome = write.await;
        self.note(&outcome);
        outcome
    }
}
