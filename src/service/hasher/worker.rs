//! One worker thread's state: the parameters, the pepper and a reusable Argon2 buffer, and the
//! hashes it makes (Argon2id with a fresh salt).
//!
//! Each worker keeps one Argon2 memory buffer while it is busy (`hash_password_into_with_memory`),
//! which saves allocating and page-faulting ~19 MiB per hash, and gives it back after
//! [`RELEASE_AFTER`] without a job: memory follows sign-ins, not the last burst of them. The
//! buffer is a single large allocation, which the allocator (mimalloc) returns to the system when
//! it is freed.

use std::sync::Arc;
use std::time::Duration;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

use super::StoredLimits;
use crate::domain::Password;

pub(super) const SALT_BYTES: usize = 16;
pub(super) const OUTPUT_BYTES: usize = 32;

/// How long a worker keeps its Argon2 buffer without a job. Under continuous sign-ins a worker is
/// never idle that long, so the buffer is reused; after a burst it goes back within this.
pub const RELEASE_AFTER: Duration = Duration::from_secs(3);

/// The state one worker thread owns: parameters, pepper and its reusable memory.
pub struct HashWorker {
    pub(super) params: Params,
    pub(super) limits: StoredLimits,
    pepper: Option<Arc<SecretBox<[u8]>>>,
    pub(super) memory: Vec<Block>,
    /// Stored hashes refused as too costly (a metric).
    pub(super) refused: metrics::Counter,
}

impl HashWorker {
    pub(super) fn new(
        params: Params,
        pepper: Option<Arc<SecretBox<[u8]>>>,
        refused: metrics::Counter,
    ) -> Self {
        Self {
            limits: StoredLimits::for_params(&params),
            params,
            pepper,
            memory: Vec::new(),
            refused,
        }
    }

    /// Gives the Argon2 buffer back (the next job allocates it again), to the system at once.
    pub fn release_memory(&mut self) {
        if self.memory.capacity() > 0 {
            self.memory = Vec::new();
            crate::allocator::return_freed_memory();
        }
    }

    /// Bytes of Argon2 buffer this worker holds.
    pub fn memory_held(&self) -> usize {
        self.memory.capacity() * std::mem::size_of::<Block>()
    }

    fn argon2<'a>(
        algorithm: Algorithm,
        version: Version,
        pepper: Option<&'a [u8]>,
        params: Params,
    ) -> Result<Argon2<'a>, argon2::Error> {
        match pepper {
            Some(secret) => Argon2::new_with_secret(secret, algorithm, version, params),
            None => Ok(Argon2::new(algorithm, version, params)),
        }
    }

    /// Argon2 into `out` with the worker's reusable memory; the pepper only for hashes made here.
    pub(super) fn compute(
        &mut self,
        kind: (Algorithm, Version),
        peppered: bool,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let blocks = params.block_count();
        if self.memory.len() < blocks {
            self.memory.resize(blocks, Block::default());
        }
        let pepper = if peppered {
            self.pepper.as_ref().map(|p| p.expose_secret())
        } else {
            None
        };
        let (algorithm, version) = kind;
        let result = Self::argon2(algorithm, version, pepper, params)?.hash_password_into_with_memory(
            password,
            salt,
            out,
            &mut self.memory[..blocks],
        );
        // A costlier (older or imported) hash grew the worker's memory: give the excess back.
        let configured = self.params.block_count();
        if self.memory.len() > configured {
            self.memory.truncate(configured);
            self.memory.shrink_to_fit();
        }
        result
    }

    /// Argon2id with a fresh 16-byte salt, as a PHC string.
    pub fn hash(&mut self, password: &Password) -> anyhow::Result<String> {
        let mut salt = [0u8; SALT_BYTES];
        OsRng.fill_bytes(&mut salt);
        let mut out = [0u8; OUTPUT_BYTES];
        let params = self.params.clone();
        self.compute(
            (Algorithm::Argon2id, Version::V0x13),
            true,
            params.clone(),
            password.expose().as_bytes(),
            &salt,
            &mut out,
        )
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::hasher::testing::{cheap, n, pw, worker};
    use crate::service::hasher::Verification;
    use argon2::password_hash::PasswordHash;

    #[test]
    fn hashes_are_salted_phc_strings_that_verify() {
        let mut w = worker(cheap(64), None);
        let a = w.hash(&pw("correct horse battery")).unwrap();
        let b = w.hash(&pw("correct horse battery")).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "fresh salt per hash");
        assert_eq!(
            w.verify(&pw("correct horse battery"), &n(&a)),
            Verification::Match { needs_rehash: false }
        );
        assert_eq!(
            w.verify(&pw("correct horse batterx"), &n(&a)),
            Verification::Mismatch
        );
    }

    #[test]
    fn matches_the_reference_implementation() {
        // The argon2 crate's own PasswordVerifier must accept what the reused-memory path writes.
        use argon2::PasswordVerifier;
        let mut w = worker(cheap(128), None);
        let phc = w.hash(&pw("interoperable password")).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"interoperable password", &parsed)
            .is_ok());
    }

    #[test]
    fn pepper_is_required_to_verify() {
        let phc = worker(cheap(64), Some("pepper-pepper-pepper"))
            .hash(&pw("some long password"))
            .unwrap();
        assert_eq!(
            worker(cheap(64), None).verify(&pw("some long password"), &n(&phc)),
            Verification::Mismatch
        );
        assert!(matches!(
            worker(cheap(64), Some("pepper-pepper-pepper")).verify(&pw("some long password"), &n(&phc)),
            Verification::Match { .. }
        ));
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;
    use crate::service::hasher::Hasher;

    /// A worker's Argon2 buffer is the configured memory while it works, and nothing after
    /// [`RELEASE_AFTER`] without a job; the next job allocates it again.
    #[tokio::test]
    async fn an_idle_worker_gives_its_buffer_back() {
        let params = Params::new(1024, 1, 1, None).unwrap();
        let hasher = Hasher::start(params, None, 1, metrics::Counter::noop()).unwrap();
        let password = Password::normalise("correct horse battery staple").unwrap();
        let held = hasher
            .run(move |w| {
                w.hash(&password).unwrap();
                w.memory_held()
            })
            .await
            .unwrap();
        assert_eq!(held, 1024 * 1024, "the buffer is kept between jobs");
        let kept = hasher.run(|w| w.memory_held()).await.unwrap();
        assert_eq!(kept, 1024 * 1024, "busy: reused");
        tokio::time::sleep(RELEASE_AFTER + Duration::from_millis(500)).await;
        let idle = hasher.run(|w| w.memory_held()).await.unwrap();
        assert_eq!(idle, 0, "given back after {RELEASE_AFTER:?} idle");
    }
}
