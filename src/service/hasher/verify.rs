//! Checking a password against a stored hash: one made here (Argon2id of the NFKC form with the
//! pepper) or an imported one (Argon2 in its own variant, or bcrypt, of the password as typed),
//! and whether a match asks for the upgrade to the configured parameters.
//!
//! A stored hash is verified with the parameters it was made with, which come from the database:
//! a tampered or absurd row must not make one sign-in allocate gigabytes or run for minutes.
//! Hashes costlier than [`StoredLimits`](super::StoredLimits) (four times the configured cost,
//! with floors) are refused without computing anything: logged at error level, counted
//! (`killbill_auth_password_hashes_refused_total`) and answered as a wrong password.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Params, Version};
use subtle::ConstantTimeEq;

use super::worker::OUTPUT_BYTES;
use super::HashWorker;
use crate::domain::legacy::{Argon2Variant, MAX_BCRYPT_COST};
use crate::domain::{HashClass, Password, StoredHash};

/// Why a stored hash could not be verified.
enum Unusable {
    /// Beyond [`StoredLimits`](super::StoredLimits): refused without computing.
    TooCostly(HashClass),
    Malformed(anyhow::Error),
}

impl From<anyhow::Error> for Unusable {
    fn from(e: anyhow::Error) -> Self {
        Self::Malformed(e)
    }
}

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Match { needs_rehash: bool },
    Mismatch,
}

impl HashWorker {
    /// Checks a password against a stored hash in constant time. A hash made here is Argon2id
    /// of the NFKC form with the pepper; a legacy (imported) one is verified as its source made
    /// it: Argon2 in its own variant and version, or bcrypt, of the password as typed, without
    /// the pepper; a match always asks for a rehash (the upgrade to the configured Argon2id).
    /// A malformed or unsupported hash is a mismatch (and logged), never a panic.
    /// A hash costlier than [`StoredLimits`](super::StoredLimits) is a mismatch too, refused
    /// without computing, logged at error level (its class, never the hash) and counted.
    pub fn verify(&mut self, password: &Password, stored: &StoredHash) -> Verification {
        match self.try_verify(password, stored) {
            Ok(v) => v,
            Err(Unusable::TooCostly(class)) => {
                self.refused.increment(1);
                tracing::error!(
                    class = %class,
                    max_m_kib = self.limits.m_kib,
                    max_t = self.limits.t,
                    max_p = self.limits.p,
                    max_bcrypt_cost = MAX_BCRYPT_COST,
                    "stored password hash is far costlier than the configured parameters (a tampered row?): refused without verifying, answered as a wrong password"
                );
                Verification::Mismatch
            }
            Err(Unusable::Malformed(e)) => {
                tracing::error!(error = %e, legacy = stored.legacy, "stored password hash is unusable");
                Verification::Mismatch
            }
        }
    }

    fn try_verify(&mut self, password: &Password, stored: &StoredHash) -> Result<Verification, Unusable> {
        let class = HashClass::of(&stored.phc).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !self.limits.allows(&class) {
            return Err(Unusable::TooCostly(class));
        }
        match class {
            HashClass::Bcrypt { .. } => {
                if !stored.legacy {
                    return Err(anyhow::anyhow!("a bcrypt hash not marked as imported").into());
                }
                // bcrypt reads at most 72 bytes, as every implementation does.
                let right = bcrypt::verify(password.expose_typed().as_bytes(), &stored.phc)
                    .map_err(|e| anyhow::anyhow!("bcrypt: {e}"))?;
                Ok(if right {
                    Verification::Match { needs_rehash: true }
                } else {
                    Verification::Mismatch
                })
            }
            HashClass::Argon2 { variant, version, .. } => {
                if !stored.legacy && (variant != Argon2Variant::Id || version != 0x13) {
                    return Err(anyhow::anyhow!("a hash made here must be argon2id v=19").into());
                }
                let parsed = PasswordHash::new(&stored.phc).map_err(|e| anyhow::anyhow!("PHC: {e}"))?;
                let stored_params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("params: {e}"))?;
                if !self.limits.allow(&stored_params) {
                    return Err(Unusable::TooCostly(class));
                }
                let salt = parsed.salt.ok_or_else(|| anyhow::anyhow!("no salt"))?;
                let mut salt_buf = [0u8; 64];
                let salt = salt
                    .decode_b64(&mut salt_buf)
                    .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
                let expected = parsed.hash.ok_or_else(|| anyhow::anyhow!("no hash"))?;
                let expected = expected.as_bytes();
                let mut out = vec![0u8; expected.len()];
                let params = Params::new(
                    stored_params.m_cost(),
                    stored_params.t_cost(),
                    stored_params.p_cost(),
                    Some(expected.len()),
                )
                .map_err(|e| anyhow::anyhow!("params: {e}"))?;
                let bytes = if stored.legacy {
                    password.expose_typed().as_bytes()
                } else {
                    password.expose().as_bytes()
                };
                let kind = argon2_kind(variant, version)?;
                self.compute(kind, !stored.legacy, params, bytes, salt, &mut out)
                    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
                if bool::from(out.as_slice().ct_eq(expected)) {
                    let needs_rehash = stored.legacy
                        || stored_params.m_cost() != self.params.m_cost()
                        || stored_params.t_cost() != self.params.t_cost()
                        || stored_params.p_cost() != self.params.p_cost()
                        || expected.len() != OUTPUT_BYTES;
                    Ok(Verification::Match { needs_rehash })
                } else {
                    Ok(Verification::Mismatch)
                }
            }
        }
    }
}

/// The argon2 crate's names for a variant and version.
pub(super) fn argon2_kind(variant: Argon2Variant, version: u32) -> anyhow::Result<(Algorithm, Version)> {
    let algorithm = match variant {
        Argon2Variant::D => Algorithm::Argon2d,
        Argon2Variant::I => Algorithm::Argon2i,
        Argon2Variant::Id => Algorithm::Argon2id,
    };
    let version = Version::try_from(version).map_err(|e| anyhow::anyhow!("version: {e}"))?;
    Ok((algorithm, version))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use argon2::Argon2;

    use super::*;
    use crate::service::hasher::testing::{cheap, n, pw, worker};

    /// A hash by the argon2 crate's own `PasswordHasher` (not the worker's reused-memory path).
    fn reference_argon2(algorithm: Algorithm, version: Version, m: u32, password: &[u8]) -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte sal").unwrap();
        Argon2::new(algorithm, version, Params::new(m, 2, 1, Some(32)).unwrap())
            .hash_password(password, &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn imported_argon2_hashes_verify_as_their_source_made_them_and_ask_for_the_upgrade() {
        // The configured pepper is not applied to an imported hash: the source had none.
        let mut w = worker(cheap(64), Some("pepper-pepper-pepper"));
        for (algorithm, version) in [
            (Algorithm::Argon2id, Version::V0x13),
            (Algorithm::Argon2i, Version::V0x13),
            (Algorithm::Argon2d, Version::V0x10),
        ] {
            let phc = reference_argon2(algorithm, version, 256, b"an old password");
            let stored = StoredHash::legacy(phc.clone());
            assert_eq!(
                w.verify(&pw("an old password"), &stored),
                Verification::Match { needs_rehash: true },
                "{phc}"
            );
            assert_eq!(w.verify(&pw("an old passwore"), &stored), Verification::Mismatch);
            // The same string as a hash made here is verified with the pepper: no match.
            assert_eq!(w.verify(&pw("an old password"), &n(&phc)), Verification::Mismatch);
        }
        // Spring's own parameters (m=16384, t=2, p=1) are well within the limits.
        let spring = reference_argon2(Algorithm::Argon2id, Version::V0x13, 16384, b"eight ch");
        assert!(spring.starts_with("$argon2id$v=19$m=16384,t=2,p=1$"), "{spring}");
        assert_eq!(
            w.verify(&pw("eight ch"), &StoredHash::legacy(spring)),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(w.memory.len(), cheap(64).block_count(), "memory given back");
    }

    #[test]
    fn imported_bcrypt_hashes_verify_and_only_as_imported() {
        let mut w = worker(cheap(64), Some("pepper-pepper-pepper"));
        let phc = bcrypt::hash("bcrypt password", 4).unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let stored = StoredHash::legacy(phc.replacen("$2b$", prefix, 1));
            assert_eq!(
                w.verify(&pw("bcrypt password"), &stored),
                Verification::Match { needs_rehash: true },
                "{prefix}"
            );
            assert_eq!(w.verify(&pw("bcrypt passworD"), &stored), Verification::Mismatch);
        }
        assert_eq!(w.verify(&pw("bcrypt password"), &n(&phc)), Verification::Mismatch);
        // bcrypt reads 72 bytes, as every implementation does.
        let long = "x".repeat(72);
        let stored = StoredHash::legacy(bcrypt::hash(&long, 4).unwrap());
        assert!(matches!(
            w.verify(&pw(&format!("{long}and more")), &stored),
            Verification::Match { .. }
        ));
        // Beyond the limit: refused without computing.
        let costly = StoredHash::legacy(phc.replacen("$04$", "$15$", 1));
        let started = Instant::now();
        assert_eq!(w.verify(&pw("bcrypt password"), &costly), Verification::Mismatch);
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn an_imported_hash_is_of_the_password_as_typed() {
        // The original hashed the UTF-8 of the raw password; NFKC is not tried on top (it would
        // double the cost of a wrong password for some accounts and so tell them apart).
        let decomposed = "cafe\u{301} cre\u{300}me";
        let precomposed = "caf\u{e9} cr\u{e8}me";
        let mut w = worker(cheap(64), None);
        let stored = StoredHash::legacy(bcrypt::hash(decomposed, 4).unwrap());
        assert!(matches!(
            w.verify(&pw(decomposed), &stored),
            Verification::Match { .. }
        ));
        assert_eq!(w.verify(&pw(precomposed), &stored), Verification::Mismatch);
        // Once upgraded, either spelling signs in (hashes made here are of the NFKC form).
        let upgraded = n(&w.hash(&pw(decomposed)).unwrap());
        assert!(matches!(
            w.verify(&pw(precomposed), &upgraded),
            Verification::Match { .. }
        ));
        assert!(matches!(
            w.verify(&pw(decomposed), &upgraded),
            Verification::Match { .. }
        ));
    }

    #[test]
    fn changed_parameters_ask_for_a_rehash() {
        let phc = worker(cheap(64), None).hash(&pw("some long password")).unwrap();
        let mut stronger = worker(cheap(128), None);
        assert_eq!(
            stronger.verify(&pw("some long password"), &n(&phc)),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn malformed_or_absurd_hashes_are_mismatches() {
        let mut w = worker(cheap(64), None);
        for bad in [
            "",
            "plaintext",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0",
        ] {
            assert_eq!(
                w.verify(&pw("whatever password"), &n(bad)),
                Verification::Mismatch,
                "{bad}"
            );
        }
    }

    #[test]
    fn stored_hashes_far_costlier_than_configured_are_refused_and_counted() {
        let metrics = crate::metrics::Metrics::new();
        let mut w = HashWorker::new(cheap(64), None, metrics.hashes_refused());
        let started = std::time::Instant::now();
        for phc in [
            // 4 GiB, the old cap: one sign-in allocated it.
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=262145,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=64,t=17,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=1024,t=1,p=17$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        ] {
            assert_eq!(w.verify(&pw("whatever password"), &n(phc)), Verification::Mismatch, "{phc}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(100),
            "nothing computed"
        );
        assert!(w.memory.is_empty(), "nothing allocated");
        let text = metrics.render(crate::metrics::Gauges::default());
        assert!(
            text.lines()
                .any(|l| l == "killbill_auth_password_hashes_refused_total 4"),
            "{text}"
        );
        // Within the limits, a costlier hash (made before the parameters were lowered) verifies,
        // and the memory it needed is given back.
        let older = worker(cheap(4096), None).hash(&pw("some long password")).unwrap();
        assert_eq!(
            w.verify(&pw("some long password"), &n(&older)),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(w.memory.len(), cheap(64).block_count());
    }
}
