//! The accept loop and each connection's life: HTTP/1.1 by hyper, serving each connection's
//! [`Connection`] service, under the limits that keep idle or slow connections from denying
//! everyone else (`[server]` in the configuration):
//!
//! - **Caps.** At most `max_connections` connections are open (0: derived from the open-file
//!   limit, see [`derived_max_connections`]) and at most `max_connections_per_address` from one
//!   client address (an IPv4-mapped IPv6 address counts as IPv4; `trusted_proxies` are exempt, as
//!   every client comes through them). Past a cap a connection is accepted and closed at once:
//!   left in the listen queue it would wait for nothing and fill the queue. A guard gives the
//!   place back when a connection ends. Refusals are logged at most once a second, with their
//!   count, and counted in `/metrics`.
//! - **Head timeouts.** hyper's `header_read_timeout` arms one sleep each time it waits for a
//!   request head — on a new connection and on an idle keep-alive connection alike — with one
//!   duration measured from that moment. We want two: `request_head_timeout` for a head,
//!   `keep_alive_timeout` for an idle connection. So each connection has its own [`hyper::rt::Timer`]
//!   ([`HeadTimer`]) whose sleep ignores hyper's deadline and computes its own each time it is
//!   polled, from what the connection's IO wrapper ([`Watched`]) has seen:
//!     - the first head must be whole `request_head_timeout` after the connection opened;
//!     - a later one, while no byte of it has arrived: the connection is idle and is closed
//!       `keep_alive_timeout` after hyper began waiting (after the previous answer);
//!     - once a byte of it arrived: `request_head_timeout` from that byte, so that a head dribbled
//!       a byte a second is cut all the same.
//!
//!   When the sleep fires hyper ends the connection: silently when nothing of a head has arrived;
//!   with part of a head in its buffer it returns a timeout error and writes nothing (hyper 1.12
//!   has no automatic answer for a timeout), so we write a 408 in the envelope (API.md) and close.
//! - **The body** and the handler: `request_timeout`, answered 408 by `super::dispatch`.
//! - **Accept errors** (EMFILE when the open-file limit is reached, and the like): a 50 ms pause
//!   instead of a busy loop, and a log line at most once a second with their count.
//! - **Shutdown**: stop accepting, ask each connection to finish (hyper's `graceful_shutdown`:
//!   an idle one closes, one with a request under way closes after answering it; one that has not
//!   sent a byte yet is closed at once), and wait for them at most `request_timeout`.
//!
//! At start-up the soft open-file limit is raised to the hard one ([`raise_open_file_limit`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::connection::{Connection, Connections};
use crate::config::ServerSettings;
use crate::domain::anomaly::canonical_ip;
use crate::metrics::{Metrics, Refusal};
use crate::telemetry::Sampled;

/// The pause after an accept error that is not about one connection (EMFILE, ENFILE, ENOMEM…):
/// the condition lasts until a connection closes, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this for refusals, and one for accept errors.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// The open-file limit assumed when it cannot be read.
const ASSUMED_OPEN_FILES: u64 = 1024;
/// How long writing the 408 for an incomplete head may take.
const TIMEOUT_ANSWER_WRITE: Duration = Duration::from_secs(1);

/// The answer to a request head that did not arrive in time, written by hand (hyper has lost
/// the connection's service by then); the body is `ApiError::RequestTimeout`'s, and the headers
/// those every answer carries (`super::guarded`).
const HEAD_TIMEOUT_ANSWER: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
content-type: application/json\r\n\
cache-control: no-store\r\n\
x-content-type-options: nosniff\r\n\
connection: close\r\n\
content-length: 57\r\n\
\r\n\
{\"success\":false,\"data\":null,\"error\":\"Request timed out\"}";

/// The `[server]` limits, resolved (the connection cap derived when it is 0).
#[derive(Clone, Debug)]
pub struct Limits {
    pub request_head_timeout: Duration,
    pub request_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub trusted_proxies: Arc<[IpNet]>,
}

impl Limits {
    /// `open_files`: the soft open-file limit in force (see [`raise_open_file_limit`]).
    pub fn new(server: &ServerSettings, open_files: Option<u64>) -> Self {
        let max_connections = match server.max_connections {
            0 => derived_max_connections(open_files.unwrap_or(ASSUMED_OPEN_FILES)),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Self {
            request_head_timeout: server.request_head_timeout.0,
            request_timeout: server.request_timeout.0,
            keep_alive_timeout: server.keep_alive_timeout.0,
            max_connections,
            max_connections_per_address: usize::try_from(server.max_connections_per_address)
                .unwrap_or(usize::MAX),
            trusted_proxies: server.trusted_proxies.clone().into(),
        }
    }
}

/// The connection cap when `server.max_connections` is 0: the open-file limit less a reserve
/// for everything else the process opens — the database (each SQLite connection holds the
/// database, its WAL and its shared-memory file), the listener, the runtime's own descriptors,
/// the logs — of 64 plus an eighth of the limit (so 384 of 512, 832 of 1024, 917,440 of 2^20).
pub fn derived_max_connections(open_files: u64) -> usize {
    let reserve = 64 + open_files / 8;
    usize::try_from(open_files.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Raises the soft open-file limit to the hard one (each connection is a file descriptor; the
/// hard limit is the administrator's, the soft one merely a default) and returns the soft limit
/// in force, or `None` when it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let (soft, hard) = match rlimit::getrlimit(Resource::NOFILE) {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open-file limit");
                return None;
            }
        };
        match rlimit::increase_nofile_limit(hard) {
            Ok(now) => {
                tracing::info!(was = soft, now, hard, "open-file limit");
                Some(now)
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                Some(soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `listener` until `shutdown` completes, then lets the open connections finish (at most
/// `request_timeout`).
pub async fn serve(
    listener: TcpListener,
    connections: Connections,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let admission = Arc::new(Admission {
        max_open: limits.max_connections,
        max_per_address: limits.max_connections_per_address,
        trusted: limits.trusted_proxies.clone(),
        open: AtomicUsize::new(0),
        per_address: Mutex::new(HashMap::new()),
        metrics: metrics.clone(),
    });
    // Every connection task holds a receiver: `closed()` tells when the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refusals = RefusalLog::default();
    // Accept errors: one line a second at most, with how many there were.
    let accept_errors = Sampled::new(LOG_EVERY);
    tokio::pin!(shutdown);
    loop {
        let flush_at = refusals.flush_at();
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now).into()), if flush_at.is_some() => {
                refusals.flush(&admission);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match admission.admit(peer.ip()) {
                Ok(admitted) => {
                    let service = connections.connection(peer);
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        service,
                        limits.clone(),
                        admitted,
                        stop_rx.clone(),
                    ));
                }
                Err(refusal) => {
                    drop(stream);
                    metrics.connection_refused(refusal);
                    refusals.note(refusal, &admission);
                }
            },
            // About that one connection (it went away before we took it): nothing to wait for.
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                if let Some(suppressed) = accept_errors.admit() {
                    tracing::error!(error = %e, count = suppressed + 1, "accept failed; pausing 50 ms after each");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Stop accepting: from now on the system refuses new connections.
    drop(listener);
    refusals.flush(&admission);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    if tokio::time::timeout(limits.request_timeout, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = admission.open.load(Ordering::Relaxed),
            "connections still open after the drain; closing them"
        );
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One connection, from accept to close.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: Connection,
    limits: Arc<Limits>,
    admitted: Admitted,
    mut stop: watch::Receiver<bool>,
) {
    let _admitted = admitted;
    let clock = Arc::new(HeadClock::new(&limits));
    let io = TokioIo::new(Watched {
        stream,
        clock: clock.clone(),
    });
    let mut http = http1::Builder::new();
    http.timer(HeadTimer(clock.clone()))
        .header_read_timeout(limits.request_head_timeout);
    let mut conn = http.serve_connection(io, service);
    let result = tokio::select! {
        result = &mut conn => result,
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            // Nothing of a request has arrived: nothing to finish.
            if clock.idle() {
                return;
            }
            Pin::new(&mut conn).graceful_shutdown();
            (&mut conn).await
        }
    };
    match result {
        Ok(()) => {}
        Err(e) if e.is_timeout() => {
            let parts = conn.into_parts();
            if !parts.read_buf.is_empty() {
                tracing::debug!(%peer, "incomplete request head timed out: 408");
                let mut stream = parts.io.into_inner().stream;
                let _ = tokio::time::timeout(TIMEOUT_ANSWER_WRITE, async {
                    stream.write_all(HEAD_TIMEOUT_ANSWER).await?;
                    stream.shutdown().await
                })
                .await;
            }
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended on an error"),
    }
}

/// What a connection's [`HeadTimer`] computes its deadlines from.
struct HeadClock {
    opened: Instant,
    head_timeout: Duration,
    keep_alive_timeout: Duration,
    /// Request heads hyper has begun waiting for (1: the first request's).
    waits: AtomicU64,
    /// hyper is waiting for a head.
    waiting: AtomicBool,
    /// When the first byte arrived while waiting for the current head, in nanoseconds after
    /// `opened`, plus 1; 0 while none has.
    first_byte: AtomicU64,
    /// The connection's one runtime timer, kept from wait to wait (see [`HeadSleep`]); made
    /// when a wait first has to sleep (a head that is already buffered never needs one).
    alarm: Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
}

impl HeadClock {
    fn new(limits: &Limits) -> Self {
        Self {
            opened: Instant::now(),
            head_timeout: limits.request_head_timeout,
            keep_alive_timeout: limits.keep_alive_timeout,
            waits: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            first_byte: AtomicU64::new(0),
            alarm: Mutex::new(None),
        }
    }

    /// Bytes were read (one relaxed load unless a head's first byte is awaited).
    fn on_read(&self) {
        if self.waiting.load(Ordering::Relaxed) && self.first_byte.load(Ordering::Relaxed) == 0 {
            let since = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            self.first_byte.store(since + 1, Ordering::Relaxed);
        }
    }

    /// hyper begins waiting for a head; returns the wait's number.
    fn begin_wait(&self) -> u64 {
        self.first_byte.store(0, Ordering::Relaxed);
        self.waiting.store(true, Ordering::Relaxed);
        self.waits.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// hyper has the head (or gave up): its sleep is dropped.
    fn end_wait(&self, wait: u64) {
        if self.waits.load(Ordering::Relaxed) == wait {
            self.waiting.store(false, Ordering::Relaxed);
        }
    }

    /// When wait number `wait`, begun at `began`, ends (see the module's documentation).
    fn deadline(&self, wait: u64, began: Instant) -> Instant {
        if wait <= 1 {
            return self.opened + self.head_timeout;
        }
        match self.first_byte.load(Ordering::Relaxed) {
            0 => began + self.keep_alive_timeout,
            n => self.opened + Duration::from_nanos(n - 1) + self.head_timeout,
        }
    }

    /// Waiting for a head of which nothing has arrived.
    fn idle(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) && self.first_byte.load(Ordering::Relaxed) == 0
    }
}

/// A connection's timer for hyper: its `sleep_until` is only used for the request head timeout
/// (hyper 1.12's HTTP/1 server uses its timer for nothing else), and gives the sleep the
/// deadline of [`HeadClock::deadline`] instead of hyper's.
#[derive(Clone)]
struct HeadTimer(Arc<HeadClock>);

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    fn sleep_until(&self, _hyper_deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let wait = self.0.begin_wait();
        Box::pin(HeadSleep {
            clock: self.0.clone(),
            wait,
            began: Instant::now(),
        })
    }
}

/// The sleep of one head wait; its deadline moves when the head's first byte arrives.
struct HeadSleep {
    clock: Arc<HeadClock>,
    wait: u64,
    began: Instant,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Only this connection's task polls it: never contended.
        let mut alarm = this.clock.alarm.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let deadline: tokio::time::Instant = this.clock.deadline(this.wait, this.began).into();
            let sleep = alarm.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            // Set later than this wait's deadline (a head's first byte brought it forward):
            // bring it forward. Set earlier (an earlier wait's deadline): leave it; when it
            // rings it is moved on below. So a keep-alive connection answering request after
            // request touches the runtime's timer once per timeout, not once per request.
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
            ready!(sleep.as_mut().poll(cx));
            if sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        self.clock.end_wait(self.wait);
    }
}

/// The connection's socket, noting for its [`HeadClock`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    clock: Arc<HeadClock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Open connections, in all and by client address.
struct Admission {
    max_open: usize,
    max_per_address: usize,
    trusted: Arc<[IpNet]>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

impl Admission {
    /// Counts a new connection from `peer`, or says which cap it is over. Only the accept loop
    /// calls it, so the check and the count cannot race with another admission.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        if self.open.load(Ordering::Relaxed) >= self.max_open {
            return Err(Refusal::MaxConnections);
        }
        let ip = canonical_ip(peer);
        let trusted = self
            .trusted
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&peer));
        let address = if trusted {
            None
        } else {
            let mut counts = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let open = counts.entry(ip).or_insert(0);
            if *open >= self.max_per_address {
                return Err(Refusal::PerAddress);
            }
            *open += 1;
            Some(ip)
        };
        self.open.fetch_add(1, Ordering::Relaxed);
        self.metrics.connection_opened();
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }
}

/// A connection's place under the caps, given back when it is dropped.
struct Admitted {
    admission: Arc<Admission>,
    /// The address it counts against (none for a trusted proxy).
    address: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(ip) = self.address {
            let mut counts = self
                .admission
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(open) = counts.get_mut(&ip) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    counts.remove(&ip);
                }
            }
        }
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        self.admission.metrics.connection_closed();
    }
}

/// Refusals, logged at most once per [`LOG_EVERY`] with how many there were since the last line.
#[derive(Default)]
struct RefusalLog {
    last_line: Option<Instant>,
    per_address: u64,
    max_connections: u64,
}

impl RefusalLog {
    fn note(&mut self, refusal: Refusal, admission: &Admission) {
        match refusal {
            Refusal::PerAddress => self.per_address += 1,
            Refusal::MaxConnections => self.max_connections += 1,
        }
        if self.last_line.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.flush(admission);
        }
    }

    /// When the refusals not yet logged are due.
    fn flush_at(&self) -> Option<Instant> {
        let pending = self.per_address + self.max_connections > 0;
        pending.then(|| self.last_line.map_or_else(Instant::now, |at| at + LOG_EVERY))
    }

    fn flush(&mut self, admission: &Admission) {
        if self.per_address + self.max_connections == 0 {
            return;
        }
        tracing::warn!(
            per_address = self.per_address,
            max_connections = self.max_connections,
            open = admission.open.load(Ordering::Relaxed),
            limit = admission.max_open,
            limit_per_address = admission.max_per_address,
            "connections refused at the caps"
        );
        self.last_line = Some(Instant::now());
        self.per_address = 0;
        self.max_connections = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_cap_leaves_room_for_the_database() {
        assert_eq!(derived_max_connections(512), 384);
        assert_eq!(derived_max_connections(1024), 832);
        assert_eq!(derived_max_connections(1 << 20), 917_440);
        assert_eq!(derived_max_connections(10), 1);
    }

    #[test]
    fn the_head_timeout_answer_is_well_formed() {
        let text = std::str::from_utf8(HEAD_TIMEOUT_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "Request timed out");
    }
}
