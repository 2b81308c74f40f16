//! The pool: worker threads fed by a bounded queue, with a bounded waiting room for callers
//! when the queue is full.
//!
//! Hashing runs off the async executor, on one thread per core. When the queue is full a caller
//! waits for room, in a bounded waiting room and for at most [`ADMISSION_WAIT`]; when the waiting
//! room is full too, or the wait is over, it is told [`Overloaded`] and answers 503 with
//! `Retry-After`. Neither the queue nor the waiting room grows with a flood, so sign-in floods
//! cannot starve key validation of CPU or the machine of memory (each hash needs
//! `argon2_memory_kib`).
//!
//! Why wait rather than refuse at once: a client that is refused comes back at once (a flood
//! does, and so do eager retries), and each refusal costs a request's worth of CPU on the request
//! threads, the ones validation runs on. A client that waits costs nothing while it waits. With
//! refusals only, a 64-connection sign-in flood made ~90,000 refusals a second on this project's
//! 2-core reference machine, taking about a core from validation.
//!
//! A job that panics (a bug) does not take its worker with it: the panic is caught and logged,
//! the caller gets [`JobError::Panicked`] (500), and the worker takes the next job.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use argon2::Params;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use tracing::Span;

use super::timing::time_failures;
use super::{native_class, HashWorker, StoredLimits, Timing, RELEASE_AFTER};
use crate::domain::{HashClass, Password, StoredHash};
use crate::service::error::ServiceError;

/// Jobs that may wait per worker in the queue.
pub const QUEUE_PER_WORKER: usize = 16;
/// Callers that may wait per worker for room in a full queue; beyond them, callers are refused
/// at once.
pub const WAITING_PER_WORKER: usize = 256;
/// How long a caller waits for room in a full queue before it is refused. The queue itself
/// holds about a quarter of a second of work at the default parameters on two cores.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(1);

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
    use crate::service::hasher::testing::{cheap, pw};

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
