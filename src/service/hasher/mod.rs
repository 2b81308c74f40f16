//! Password hashing off the async executor: a fixed pool of worker threads (one per core) fed
//! by a bounded queue ([`Hasher`], in `pool.rs`), each thread owning a [`HashWorker`] that makes
//! Argon2id hashes with reusable memory (`worker.rs`) and verifies stored ones, made here or
//! imported (`verify.rs`), within [`StoredLimits`] (`limits.rs`); a failed verification is held
//! as long as the costliest class of hash in use ([`Timing`], `timing.rs`).

mod limits;
mod pool;
#[cfg(test)]
mod testing;
mod timing;
mod verify;
mod worker;

pub use limits::StoredLimits;
pub use pool::{Hasher, JobError, Overloaded, ADMISSION_WAIT, QUEUE_PER_WORKER, WAITING_PER_WORKER};
pub use timing::{native_class, Timing};
pub use verify::Verification;
pub use worker::{HashWorker, RELEASE_AFTER};
