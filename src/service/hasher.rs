//! Password hashing off the async executor: a fixed pool of worker threads (one per core) fed
//! by a bounded queue. When the queue is full a caller waits for room, in a bounded waiting room
//! and for at most [`ADMISSION_WAIT`]; when the waiting room is full too, or the wait is over,
//! it is told [`Overloaded`] and answers 503 with `Retry-After`. Neither the queue nor the
//! waiting room grows with a flood, so sign-in floods cannot starve key validation of CPU or the
//! machine of memory (each hash needs `argon2_memory_kib`).
//!
//! Why wait rather than refuse at once: a client that is refused comes back at once (a flood
//! does, and so do eager retries), and each refusal costs a request's worth of CPU on the request
//! threads, the ones validation runs on. A client that waits costs nothing while it waits. With
//! refusals only, a 64-connection sign-in flood made ~90,000 refusals a second on this project's
//! 2-core reference machine, taking about a core from validation.
//!
//! Each worker keeps one Argon2 memory buffer while it is busy (`hash_password_into_with_memory`),
//! which saves allocating and page-faulting ~19 MiB per hash, and gives it back after
//! [`RELEASE_AFTER`] without a job: memory follows sign-ins, not the last burst of them. The
//! buffer is a single large allocation, which the allocator (mimalloc) returns to the system when
//! it is freed.
//!
//! A stored hash is verified with the parameters it was made with, which come from the database:
//! a tampered or absurd row must not make one sign-in allocate gigabytes or run for minutes.
//! Hashes costlier than [`StoredLimits`] (four times the configured cost, with floors) are
//! refused without computing anything: logged at error level, counted
//! (`killbill_auth_password_hashes_refused_total`) and answered as a wrong password.
//!
//! A job that panics (a bug) does not take its worker with it: the panic is caught and logged,
//! the caller gets [`JobError::Panicked`] (500), and the worker takes the next job.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use subtle::ConstantTimeEq;
use tracing::Span;

use super::error::ServiceError;
use crate::domain::legacy::{Argon2Variant, MAX_BCRYPT_COST};
use crate::domain::{HashClass, Password, StoredHash};

const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;
/// Jobs that may wait per worker in the queue.
pub const QUEUE_PER_WORKER: usize = 16;
/// Callers that may wait per worker for room in a full queue; beyond them, callers are refused
/// at once.
pub const WAITING_PER_WORKER: usize = 256;
/// How long a caller waits for room in a full queue before it is refused. The queue itself
/// holds about a quarter of a second of work at the default parameters on two cores.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(1);
/// How much costlier than the configured parameters a stored hash may be and still be
/// verified: a stored hash is refused when any of its parameters is above `LIMIT_FACTOR` times
/// the configured one and above its floor. Room for hashes made before the parameters were
/// lowered, and for imported ones (Spring Security's defaults are far below the floors).
const LIMIT_FACTOR: u32 = 4;
/// Floors of the limits: 256 MiB of memory, 16 passes, 16 lanes.
const LIMIT_FLOOR_M_KIB: u32 = 256 * 1024;
const LIMIT_FLOOR_T: u32 = 16;
const LIMIT_FLOOR_P: u32 = 16;

/// The hashing queue is full; try again shortly.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is overloaded")]
pub struct Overloaded;

/// Why a hashing job gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The queue and its waiting room are full (503 with `Retry-After`).
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// The job panicked, a bug: answered 500 rather than 503, which would invite a retry that
    /// panics again. The worker goes on with the next job.
    #[error("password hashing job panicked")]
    Panicked,
}

impl From<JobError> for ServiceError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Overloaded(o) => ServiceError::Overloaded(o),
            JobError::Panicked => ServiceError::Internal(e.into()),
        }
    }
}

/// The costliest stored hash that is verified (see [`LIMIT_FACTOR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLimits {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl StoredLimits {
    pub fn for_params(params: &Params) -> Self {
        let limit = |configured: u32, floor: u32| configured.saturating_mul(LIMIT_FACTOR).max(floor);
        Self {
            m_kib: limit(params.m_cost(), LIMIT_FLOOR_M_KIB),
            t: limit(params.t_cost(), LIMIT_FLOOR_T),
            p: limit(params.p_cost(), LIMIT_FLOOR_P),
        }
    }

    fn allow(&self, stored: &Params) -> bool {
        stored.m_cost() <= self.m_kib && stored.t_cost() <= self.t && stored.p_cost() <= self.p
    }

    /// Whether a hash of this class is verified at all: Argon2 within these limits, bcrypt up
    /// to [`MAX_BCRYPT_COST`]. An import refuses the others (they could never sign in).
    pub fn allows(&self, class: &HashClass) -> bool {
        match *class {
            HashClass::Argon2 { m_kib, t, p, .. } => m_kib <= self.m_kib && t <= self.t && p <= self.p,
            HashClass::Bcrypt { cost } => cost <= MAX_BCRYPT_COST,
        }
    }
}

/// Why a stored hash could not be verified.
enum Unusable {
    /// Beyond [`StoredLimits`]: refused without computing.
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

/// Verifications timed per class when it is measured; the fastest counts.
const CALIBRATION_RUNS: usize = 2;

/// Timing: a wrong password must take as long whatever kind of hash the account has (API.md:
/// `POST /auth` takes the same time whether or not the name exists). Hashes made here all cost
/// the same, and a name that matches no account is checked against a dummy of the same cost;
/// imported hashes (bcrypt, Spring's Argon2 parameters) and hashes made before the parameters
/// changed cost something else. So each class of hash in use is measured on this machine (at
/// start, when a sign-in meets a class not measured yet, and again at every housekeeping, which
/// also picks up the classes an import recorded), and after a failed verification the answer
/// waits the difference between the costliest class's cost and its own class's: every failure
/// then takes what the costliest one takes, give or take the same noise (whatever slowed this
/// verification down is kept, not scaled). Successful sign-ins do not wait: their owner knows
/// the password already.
pub struct Timing {
    samples: RwLock<HashMap<HashClass, Samples>>,
}

/// How many recent verification times of a class are kept; its cost is the least of them.
const SAMPLES: usize = 16;

/// The last [`SAMPLES`] verification times of a class. Their minimum is its cost: what a
/// verification takes when nothing else interferes (a measurement taken while the machine was
/// busy, at start-up say, says more about the moment than about the class), and it follows the
/// machine as older samples are replaced.
#[derive(Clone, Copy)]
struct Samples {
    times: [Duration; SAMPLES],
    len: usize,
    next: usize,
}

impl Samples {
    fn new() -> Self {
        Self {
            times: [Duration::ZERO; SAMPLES],
            len: 0,
            next: 0,
        }
    }

    fn push(&mut self, time: Duration) {
        self.times[self.next] = time;
        self.next = (self.next + 1) % SAMPLES;
        self.len = (self.len + 1).min(SAMPLES);
    }

    fn cost(&self) -> Option<Duration> {
        self.times[..self.len].iter().copied().min()
    }
}

impl Timing {
    fn new() -> Self {
        Self {
            samples: RwLock::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<HashClass, Samples>> {
        self.samples
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cost of verifying a hash of `class`, if measured.
    pub fn cost(&self, class: &HashClass) -> Option<Duration> {
        self.read().get(class).and_then(Samples::cost)
    }

    /// Records how long a verification of a hash of `class` took (a calibration, or a real one).
    pub fn observe(&self, class: HashClass, time: Duration) {
        self.samples
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(class)
            .or_insert_with(Samples::new)
            .push(time);
    }

    /// The classes measured so far.
    pub fn classes(&self) -> Vec<HashClass> {
        self.read().keys().copied().collect()
    }

    /// The costliest class's cost.
    pub fn slowest(&self) -> Duration {
        self.read()
            .values()
            .filter_map(Samples::cost)
            .max()
            .unwrap_or_default()
    }

    /// How long a failed check whose verification of a hash of `class` took `elapsed` is held
    /// (from the start of that verification): `elapsed` and the difference between the
    /// costliest class's cost and this class's. A class not measured is not held.
    pub fn failure_time(&self, class: &HashClass, elapsed: Duration) -> Duration {
        let samples = self.read();
        let own = samples.get(class).and_then(Samples::cost);
        let slowest = samples.values().filter_map(Samples::cost).max();
        match (own, slowest) {
            (Some(own), Some(slowest)) => elapsed + slowest.saturating_sub(own),
            _ => elapsed,
        }
    }
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
fn time_failures(worker: &mut HashWorker, stored: &StoredHash) -> anyhow::Result<Vec<Duration>> {
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

type Job = Box<dyn FnOnce(&mut HashWorker) + Send>;

/// The pool. Cheap to share behind an `Arc`; dropping it stops the workers.
pub struct Hasher {
    queue: crossbeam_channel::Sender<Job>,
    workers: usize,
    dummy: Arc<StoredHash>,
    native: HashClass,
    timing: Arc<Timing>,
    limits: StoredLimits,
    /// Signalled by a worker each time it takes a job from the queue: there is room.
    room: Arc<tokio::sync::Notify>,
    /// Places for callers waiting for room.
    waiting: tokio::sync::Semaphore,
}

/// How long a worker keeps its Argon2 buffer without a job. Under continuous sign-ins a worker is
/// never idle that long, so the buffer is reused; after a burst it goes back within this.
pub const RELEASE_AFTER: Duration = Duration::from_secs(3);

/// The state one worker thread owns: parameters, pepper and its reusable memory.
pub struct HashWorker {
    params: Params,
    limits: StoredLimits,
    pepper: Option<Arc<SecretBox<[u8]>>>,
    memory: Vec<Block>,
    /// Stored hashes refused as too costly (a metric).
    refused: metrics::Counter,
}

impl Hasher {
    /// Starts `workers` threads (at least one) hashing with `params`; stored hashes refused as
    /// too costly are counted in `refused`.
    pub fn start(
        params: Params,
        pepper: Option<&SecretString>,
        workers: usize,
        refused: metrics::Counter,
    ) -> anyhow::Result<Self> {
        let workers = workers.max(1);
        let pepper: Option<Arc<SecretBox<[u8]>>> = pepper.map(|p| {
            Arc::new(SecretBox::new(
                p.expose_secret().as_bytes().to_vec().into_boxed_slice(),
            ))
        });
        let (tx, rx) = crossbeam_channel::bounded::<Job>(workers * QUEUE_PER_WORKER);
        let room = Arc::new(tokio::sync::Notify::new());
        for i in 0..workers {
            let rx = rx.clone();
            let room = room.clone();
            let mut worker = HashWorker::new(params.clone(), pepper.clone(), refused.clone());
            thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.recv_timeout(RELEASE_AFTER) {
                            Ok(job) => job,
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                                worker.release_memory();
                                match rx.recv() {
                                    Ok(job) => job,
                                    Err(_) => break,
                                }
                            }
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        };
                        room.notify_one();
                        // Unwind safety: a panicking job can leave half-changed only what it
                        // owns (dropped while unwinding; its reply sender among them, so the
                        // caller learns of it) and the worker. The worker's parameters, limits
                        // and pepper are only read by jobs; its memory is scratch that Argon2
                        // fills before it reads it, resized to the job's need before each use;
                        // its counter is atomic. No lock is held across a job. So the next job
                        // finds the worker as good as new.
                        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut worker))) {
                            let message = panic
                                .downcast_ref::<&str>()
                                .map(|s| (*s).to_owned())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            tracing::error!(panic = %message, "password hashing job panicked; the worker goes on");
                        }
                    }
                })?;
        }
        // A hash of a random password, verified against for unknown usernames so that a sign-in
        // costs the same whether or not the account exists; and the cost of that class.
        let native = native_class(&params);
        let limits = StoredLimits::for_params(&params);
        let mut probe = HashWorker::new(params, pepper, refused);
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let dummy = Password::normalise(&STANDARD_NO_PAD.encode(random))
            .map_err(|e| anyhow::anyhow!("dummy password: {e}"))?;
        let dummy = StoredHash::native(probe.hash(&dummy)?);
        let timing = Arc::new(Timing::new());
        for time in time_failures(&mut probe, &dummy)? {
            timing.observe(native, time);
        }
        Ok(Self {
            queue: tx,
            workers,
            dummy: Arc::new(dummy),
            native,
            timing,
            limits,
            room,
            waiting: tokio::sync::Semaphore::new(workers * WAITING_PER_WORKER),
        })
    }

    /// True when a new job would be refused at once (the queue and the waiting room are full):
    /// lets a caller answer 503 before doing any other work for a request that cannot be served.
    pub fn is_full(&self) -> bool {
        self.queue.is_full() && self.waiting.available_permits() == 0
    }

    /// Jobs queued for the workers, and callers waiting for room in the queue.
    pub fn load(&self) -> (usize, usize) {
        let waiting = (self.workers * WAITING_PER_WORKER).saturating_sub(self.waiting.available_permits());
        (self.queue.len(), waiting)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// A stored hash that no password matches, with the current parameters.
    pub fn dummy(&self) -> Arc<StoredHash> {
        self.dummy.clone()
    }

    /// The class of the hashes this instance makes (and of [`Hasher::dummy`]).
    pub fn native_class(&self) -> HashClass {
        self.native
    }

    /// The measured costs of the classes of hashes in use (see [`Timing`]).
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Whether hashes of `class` are verified at all (within [`StoredLimits`]).
    pub fn allows(&self, class: &HashClass) -> bool {
        self.limits.allows(class)
    }

    /// Measures the classes not measured yet among `classes` (all of them again with
    /// `again`), on the pool: a dummy hash of each, timed (see [`Timing`]). Classes beyond
    /// [`StoredLimits`] are skipped: they are never verified.
    pub async fn calibrate(&self, classes: &[HashClass], again: bool) -> Result<(), JobError> {
        for class in classes {
            if !self.limits.allows(class) || (!again && self.timing.cost(class).is_some()) {
                continue;
            }
            let class = *class;
            let native = self.native;
            let dummy = self.dummy.clone();
            let measured = self
                .run(move |w| -> anyhow::Result<Vec<Duration>> {
                    let stored = if class == native {
                        (*dummy).clone()
                    } else {
                        w.dummy(&class)?
                    };
                    time_failures(w, &stored)
                })
                .await?;
            match measured {
                Ok(times) => {
                    for time in times {
                        self.timing.observe(class, time);
                    }
                    let cost = self.timing.cost(&class).unwrap_or_default();
                    tracing::debug!(class = %class, cost_us = cost.as_micros() as u64, "password hash class measured");
                }
                Err(e) => tracing::warn!(class = %class, error = %e, "cannot measure a password hash class"),
            }
        }
        Ok(())
    }

    /// Runs `f` on a hashing thread, carrying the caller's tracing span.
    pub async fn run<T, F>(&self, f: F) -> Result<T, JobError>
    where
        T: Send + 'static,
        F: FnOnce(&mut HashWorker) -> T + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = Span::current();
        let job: Job = Box::new(move |w: &mut HashWorker| {
            let _entered = span.enter();
            let _ = reply.send(f(w));
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(job)) => self.wait_for_room(job).await?,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(Overloaded.into()),
        }
        // Queued: the workers outlive `self`, so an answer that never comes means the job
        // panicked (its reply sender was dropped while unwinding).
        answer.await.map_err(|_| JobError::Panicked)
    }

    /// Queues `job` once there is room, waiting in the waiting room for at most
    /// [`ADMISSION_WAIT`]; refused at once when the waiting room is full.
    async fn wait_for_room(&self, mut job: Job) -> Result<(), Overloaded> {
        let _place = self.waiting.try_acquire().map_err(|_| Overloaded)?;
        let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
        loop {
            // Listen before trying, so that room made in between is not missed.
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.queue.try_send(job) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::TrySendError::Full(back)) => job = back,
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(Overloaded),
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Overloaded);
            }
        }
    }
}

impl HashWorker {
    fn new(params: Params, pepper: Option<Arc<SecretBox<[u8]>>>, refused: metrics::Counter) -> Self {
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
    fn compute(
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

    /// Checks a password against a stored hash in constant time. A hash made here is Argon2id
    /// of the NFKC form with the pepper; a legacy (imported) one is verified as its source made
    /// it: Argon2 in its own variant and version, or bcrypt, of the password as typed, without
    /// the pepper; a match always asks for a rehash (the upgrade to the configured Argon2id).
    /// A malformed or unsupported hash is a mismatch (and logged), never a panic.
    /// A hash costlier than [`StoredLimits`] is a mismatch too, refused without computing,
    /// logged at error level (its class, never the hash) and counted.
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
fn argon2_kind(variant: Argon2Variant, version: u32) -> anyhow::Result<(Algorithm, Version)> {
    let algorithm = match variant {
        Argon2Variant::D => Algorithm::Argon2d,
        Argon2Variant::I => Algorithm::Argon2i,
        Argon2Variant::Id => Algorithm::Argon2id,
    };
    let version = Version::try_from(version).map_err(|e| anyhow::anyhow!("version: {e}"))?;
    Ok((algorithm, version))
}

/// Hashing keeps every core when nothing else runs, and yields at once to key validation when
/// it does. On Linux the thread runs under `SCHED_IDLE`: the scheduler preempts it as soon as a
/// normal thread (a request thread) wakes up, where nice 19 only shrinks its share and lets it
/// finish its slice first (the difference showed in validation's p99 during a sign-in flood).
/// Elsewhere, or if that is refused, the lowest priority of the normal policy (nice 19).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        match set_thread_priority_and_policy(thread_native_id(), thread_priority::ThreadPriority::Min, idle) {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = ?e, "cannot run hashing under SCHED_IDLE"),
        }
    }
    if let Err(e) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
        tracing::debug!(error = ?e, "cannot lower the hashing thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(m: u32) -> Params {
        Params::new(m, 1, 1, None).unwrap()
    }

    fn worker(params: Params, pepper: Option<&str>) -> HashWorker {
        HashWorker::new(
            params,
            pepper.map(|p| Arc::new(SecretBox::new(p.as_bytes().to_vec().into_boxed_slice()))),
            metrics::Counter::noop(),
        )
    }

    fn pw(s: &str) -> Password {
        Password::normalise(s).unwrap()
    }

    /// A hash made here.
    fn n(phc: &str) -> StoredHash {
        StoredHash::native(phc)
    }

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
    fn failures_wait_the_difference_to_the_costliest_class() {
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
        // As fast as measured: held to the slowest class's cost.
        assert_eq!(timing.failure_time(&fast, ms(10)), ms(40));
        // Slower than measured (load, a preempted thread): the excess is kept.
        assert_eq!(timing.failure_time(&fast, ms(25)), ms(55));
        // The slowest class itself keeps its own time.
        assert_eq!(timing.failure_time(&slow, ms(45)), ms(45));
        // An unmeasured class is not held.
        assert_eq!(timing.failure_time(&HashClass::Bcrypt { cost: 5 }, ms(7)), ms(7));
        // The cost is the least of the last 16 times: a busy moment ages out.
        for _ in 0..SAMPLES {
            timing.observe(fast, ms(20));
        }
        assert_eq!(timing.cost(&fast), Some(ms(20)));
    }

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
    fn changed_parameters_ask_for_a_rehash() {
        let phc = worker(cheap(64), None).hash(&pw("some long password")).unwrap();
        let mut stronger = worker(cheap(128), None);
        assert_eq!(
            stronger.verify(&pw("some long password"), &n(&phc)),
            Verification::Match { needs_rehash: true }
        );
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
    fn limits_are_four_times_the_configured_cost_with_floors() {
        assert_eq!(
            StoredLimits::for_params(&Params::new(19_456, 2, 1, None).unwrap()),
            StoredLimits {
                m_kib: 256 * 1024,
                t: 16,
                p: 16
            }
        );
        assert_eq!(
            StoredLimits::for_params(&Params::new(128 * 1024, 8, 8, None).unwrap()),
            StoredLimits {
                m_kib: 512 * 1024,
                t: 32,
                p: 32
            }
        );
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

    #[tokio::test]
    async fn a_panicking_job_does_not_kill_its_worker() {
        let hasher = Hasher::start(cheap(64), None, 1, metrics::Counter::noop()).unwrap();
        for _ in 0..3 {
            let panicked = hasher.run(|_| -> () { panic!("a bug in a hashing job") }).await;
            assert!(matches!(panicked, Err(JobError::Panicked)), "{panicked:?}");
            let phc = hasher
                .run(|w| w.hash(&pw("pool password here")))
                .await
                .unwrap()
                .unwrap();
            assert!(phc.starts_with("$argon2id$"));
        }
        assert!(matches!(
            ServiceError::from(JobError::Panicked),
            ServiceError::Internal(_)
        ));
    }

    #[tokio::test]
    async fn pool_runs_jobs_lets_callers_wait_for_room_and_refuses_beyond() {
        let hasher = Arc::new(Hasher::start(cheap(64), None, 1, metrics::Counter::noop()).unwrap());
        let phc = hasher
            .run(|w| w.hash(&pw("pool password here")))
            .await
            .unwrap()
            .unwrap();
        assert!(phc.starts_with("$argon2id$"));
        // Block the only worker, fill the queue, and the next job is refused at once.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let h = hasher.clone();
        let blocked = tokio::spawn(async move {
            h.run(move |_| {
                let _ = wait.recv();
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut queued = Vec::new();
        for _ in 0..QUEUE_PER_WORKER {
            let h = hasher.clone();
            queued.push(tokio::spawn(async move { h.run(|_| ()).await }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // The queue is full: the next job waits for room, and is refused when none comes in time.
        let started = std::time::Instant::now();
        assert!(hasher.run(|_| ()).await.is_err(), "queue full for the whole wait");
        assert!(started.elapsed() >= ADMISSION_WAIT);
        // Callers beyond the waiting room are refused at once.
        let mut waiting = Vec::new();
        for _ in 0..WAITING_PER_WORKER {
            let h = hasher.clone();
            waiting.push(tokio::spawn(async move { h.run(|_| ()).await }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(hasher.is_full());
        let started = std::time::Instant::now();
        assert!(hasher.run(|_| ()).await.is_err(), "waiting room full");
        assert!(started.elapsed() < ADMISSION_WAIT / 2, "refused at once");
        // Room comes: the queued jobs and the waiting ones all run.
        release.send(()).unwrap();
        blocked.await.unwrap().unwrap();
        for q in queued.into_iter().chain(waiting) {
            q.await.unwrap().unwrap();
        }
        assert!(!hasher.is_full());
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

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
