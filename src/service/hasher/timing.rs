//! A wrong password takes as long whatever kind of hash the account has: the cost of each class
//! of hash in use, measured on this machine (against a dummy hash of the class), and how long a
//! failed verification is held.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use argon2::Params;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;

use super::verify::argon2_kind;
use super::worker::{OUTPUT_BYTES, SALT_BYTES};
use super::HashWorker;
use crate::domain::legacy::Argon2Variant;
use crate::domain::{HashClass, Password, StoredHash};

/// Verifications timed per class when it is measured; the fastest counts.
const CALIBRATION_RUNS: usize = 2;

/// Timing: a wrong password must take as long whatever kind of hash the account has (API.md:
/// `POST /auth` takes the same time whether or not the name exists). Hashes made here all cost
/// the same, and a name that matches no account is checked against a dummy of the same cost;
/// imported hashes (bcrypt, Spring's Argon2 parameters) and hashes made before the parameters
/// changed cost something else. So each class of hash in use is measured on this machine (at
/// start, when a sign-in meets a class not measured yet, and again at every housekeeping, which
/// also picks up the classes an import recorded), and after a failed verification the answer
/// waits the difference between the costliest class's cost and its own class's, stretched by how
/// much the machine is stretching hashes now: every failure then takes what the costliest one
/// takes at that moment. That stretch is the median, over the latest verifications of any class,
/// of each one's time over its class's cost: load stretches every hash alike, and an unstretched
/// difference left the slower kinds measurably slower under load (bcrypt at 1.3–1.4 of a round's
/// mean against 0.9 for Argon2id, with other processes loading both cores). This verification's
/// own time is not what is scaled: a stall (a preempted worker) is kept as it is, not multiplied.
/// Successful sign-ins do not wait: their owner knows the password already.
pub struct Timing {
    measured: RwLock<Measured>,
}

/// What [`Timing`] keeps, under one lock.
struct Measured {
    /// Each class's latest verification times: their minimum is its cost, what a verification
    /// takes when nothing else interferes (a measurement taken while the machine was busy, at
    /// start-up say, says more about the moment than about the class), and it follows the
    /// machine as older times are replaced.
    classes: HashMap<HashClass, Recent<Duration>>,
    /// The latest verifications' times over their class's cost (see [`Timing::stretch`]).
    stretches: Recent<f64>,
}

/// How many recent verification times of a class, and recent stretches, are kept.
const SAMPLES: usize = 16;

/// The last [`SAMPLES`] values pushed.
#[derive(Clone, Copy)]
struct Recent<T> {
    values: [T; SAMPLES],
    len: usize,
    next: usize,
}

impl<T: Copy + Default> Recent<T> {
    fn new() -> Self {
        Self {
            values: [T::default(); SAMPLES],
            len: 0,
            next: 0,
        }
    }

    fn push(&mut self, value: T) {
        self.values[self.next] = value;
        self.next = (self.next + 1) % SAMPLES;
        self.len = (self.len + 1).min(SAMPLES);
    }

    fn values(&self) -> &[T] {
        &self.values[..self.len]
    }
}

/// A class's cost: the least of its latest times.
fn cost(times: &Recent<Duration>) -> Option<Duration> {
    times.values().iter().copied().min()
}

impl Timing {
    pub(super) fn new() -> Self {
        Self {
            measured: RwLock::new(Measured {
                classes: HashMap::new(),
                stretches: Recent::new(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Measured> {
        self.measured
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How much the machine stretches hashes now: the median of the latest verifications' times
    /// over their class's cost, at least 1.
    pub fn stretch(&self) -> f64 {
        stretch(&self.read().stretches)
    }

    /// The cost of verifying a hash of `class`, if measured.
    pub fn cost(&self, class: &HashClass) -> Option<Duration> {
        self.read().classes.get(class).and_then(cost)
    }

    /// Records how long a verification of a hash of `class` took (a calibration, or a real one).
    pub fn observe(&self, class: HashClass, time: Duration) {
        let mut measured = self
            .measured
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let times = measured.classes.entry(class).or_insert_with(Recent::new);
        times.push(time);
        if let Some(cost) = cost(times).filter(|c| !c.is_zero()) {
            measured.stretches.push(time.as_secs_f64() / cost.as_secs_f64());
        }
    }

    /// The classes measured so far.
    pub fn classes(&self) -> Vec<HashClass> {
        self.read().classes.keys().copied().collect()
    }

    /// The costliest class's cost.
    pub fn slowest(&self) -> Duration {
        self.read()
            .classes
            .values()
            .filter_map(cost)
            .max()
            .unwrap_or_default()
    }

    /// How long a failed check whose verification of a hash of `class` took `elapsed` is held
    /// (from the start of that verification): `elapsed`, and the difference between the
    /// costliest class's cost and this class's, stretched as the machine stretches hashes now
    /// ([`Timing::stretch`]). A class not measured is not held.
    pub fn failure_time(&self, class: &HashClass, elapsed: Duration) -> Duration {
        let measured = self.read();
        let own = measured.classes.get(class).and_then(cost);
        let slowest = measured.classes.values().filter_map(cost).max();
        match (own, slowest) {
            (Some(own), Some(slowest)) if slowest > own => {
                elapsed + (slowest - own).mul_f64(stretch(&measured.stretches))
            }
            _ => elapsed,
        }
    }
}

/// The median of the stretches, at least 1 (none yet: 1).
fn stretch(stretches: &Recent<f64>) -> f64 {
    let mut ratios = stretches.values;
    let ratios = &mut ratios[..stretches.len];
    if ratios.is_empty() {
        return 1.0;
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2].max(1.0)
}

/// The class of the hashes this instance makes.
pub fn native_class(params: &Params) -> HashClass {
    HashClass::Argon2 {
        variant: Argon2Variant::Id,
        version: 0x13,
        m_kib: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
        output_len: OUTPUT_BYTES,
    }
}

/// Times [`CALIBRATION_RUNS`] failed verifications against `stored`.
pub(super) fn time_failures(worker: &mut HashWorker, stored: &StoredHash) -> anyhow::Result<Vec<Duration>> {
    let mut random = [0u8; 24];
    OsRng.fill_bytes(&mut random);
    let wrong = Password::normalise(&STANDARD_NO_PAD.encode(random))
        .map_err(|e| anyhow::anyhow!("calibration password: {e}"))?;
    let mut times = Vec::with_capacity(CALIBRATION_RUNS);
    for _ in 0..CALIBRATION_RUNS {
        let started = Instant::now();
        let _ = worker.verify(&wrong, stored);
        times.push(started.elapsed());
    }
    Ok(times)
}

impl HashWorker {
    /// A hash of a random password in `class`, as an import would have stored it: what an
    /// instance measures the cost of each class with (see [`Timing`]).
    pub fn dummy(&mut self, class: &HashClass) -> anyhow::Result<StoredHash> {
        let mut random = [0u8; 24];
        OsRng.fill_bytes(&mut random);
        let password = STANDARD_NO_PAD.encode(random);
        match *class {
            HashClass::Bcrypt { cost } => Ok(StoredHash::legacy(
                bcrypt::hash(&password, cost).map_err(|e| anyhow::anyhow!("bcrypt: {e}"))?,
            )),
            HashClass::Argon2 {
                variant,
                version,
                m_kib,
                t,
                p,
                output_len,
            } => {
                let mut salt = [0u8; SALT_BYTES];
                OsRng.fill_bytes(&mut salt);
                let mut out = vec![0u8; output_len];
                let params =
                    Params::new(m_kib, t, p, Some(output_len)).map_err(|e| anyhow::anyhow!("params: {e}"))?;
                self.compute(
                    argon2_kind(variant, version)?,
                    false,
                    params,
                    password.as_bytes(),
                    &salt,
                    &mut out,
                )
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
                Ok(StoredHash::legacy(format!(
                    "${}$v={version}$m={m_kib},t={t},p={p}${}${}",
                    variant.ident(),
                    STANDARD_NO_PAD.encode(salt),
                    STANDARD_NO_PAD.encode(out)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::hasher::testing::{cheap, pw, worker};
    use crate::service::hasher::Verification;

    #[test]
    fn dummies_are_of_their_class() {
        let mut w = worker(cheap(64), None);
        for class in [
            HashClass::Bcrypt { cost: 4 },
            HashClass::Argon2 {
                variant: Argon2Variant::I,
                version: 0x10,
                m_kib: 128,
                t: 2,
                p: 1,
                output_len: 24,
            },
            native_class(&cheap(64)),
        ] {
            let dummy = w.dummy(&class).unwrap();
            assert!(dummy.legacy);
            assert_eq!(HashClass::of(&dummy.phc), Ok(class));
            assert_eq!(
                w.verify(&pw("not the dummy's password"), &dummy),
                Verification::Mismatch
            );
        }
    }

    #[test]
    fn failures_wait_the_difference_to_the_costliest_class_as_stretched_now() {
        let timing = Timing::new();
        let fast = HashClass::Bcrypt { cost: 4 };
        let slow = HashClass::Bcrypt { cost: 10 };
        let ms = Duration::from_millis;
        // Nothing measured: not held.
        assert_eq!(timing.failure_time(&fast, ms(3)), ms(3));
        timing.observe(fast, ms(12));
        timing.observe(fast, ms(10));
        timing.observe(slow, ms(40));
        timing.observe(slow, ms(90));
        assert_eq!(timing.slowest(), ms(40));
        // Stretches so far: 1 (the first of a class is its cost), 1, 1, 2.25: the median 1.
        assert_eq!(timing.stretch(), 1.0);
        // As fast as measured: held to the slowest class's cost.
        assert_eq!(timing.failure_time(&fast, ms(10)), ms(40));
        // Slower than measured (a preempted thread): the excess is kept, not multiplied.
        assert_eq!(timing.failure_time(&fast, ms(25)), ms(55));
        // The slowest class itself keeps its own time.
        assert_eq!(timing.failure_time(&slow, ms(45)), ms(45));
        // A machine stretching every hash by 2 (most of the latest verifications took twice
        // their cost): the difference is stretched alike, what the slowest takes now.
        for _ in 0..6 {
            timing.observe(fast, ms(20));
            timing.observe(slow, ms(80));
        }
        assert_eq!(timing.stretch(), 2.0);
        assert_eq!(timing.failure_time(&fast, ms(20)), ms(80));
        // An unmeasured class is not held.
        assert_eq!(timing.failure_time(&HashClass::Bcrypt { cost: 5 }, ms(7)), ms(7));
        // The cost is the least of the last 16 times: a busy moment ages out.
        for _ in 0..SAMPLES {
            timing.observe(fast, ms(20));
        }
        assert_eq!(timing.cost(&fast), Some(ms(20)));
    }
}
