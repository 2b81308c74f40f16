//! Logging set-up in one place: structured, UTC timestamps, filtered by `RUST_LOG` (default
//! `info`). Logs are JSON lines when the output is not a terminal (for log shippers), readable
//! text when it is. Strings that clients choose are logged with escaping, so they cannot forge
//! a log line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where logs go: the service logs to stdout; the admin commands keep stdout for their results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// Installs the global subscriber; a second call is a no-op (tests start many apps).
pub fn init(output: Output) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let terminal = match output {
        Output::Stdout => std::io::stdout().is_terminal(),
        Output::Stderr => std::io::stderr().is_terminal(),
    };
    let result = match (output, terminal) {
        (Output::Stdout, true) => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        (Output::Stderr, true) => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        (Output::Stdout, false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false),
            )
            .try_init(),
        (Output::Stderr, false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    let _ = result;
}

/// At most one log line per period for an event that clients can cause at will (a throttled
/// request, a refused connection, a database refusing writes): one warn line per such request
/// would let an attacker fill the disk with logs. The first occurrence is logged at once; later
/// ones within the period are counted, and the count goes out with the next line.
pub struct Sampled {
    period_ms: u64,
    /// Milliseconds since [`origin`] before which no line may be written.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Sampled {
    pub const fn new(period: Duration) -> Self {
        Self {
            period_ms: period.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were left out since the
    /// last one; `None` when this one is to be left out (and is counted).
    pub fn admit(&self) -> Option<u64> {
        let now = origin().elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now + self.period_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_rest_counted() {
        let s = Sampled::new(Duration::from_millis(200));
        assert_eq!(s.admit(), Some(0));
        for _ in 0..50 {
            assert_eq!(s.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(s.admit(), Some(50));
        assert_eq!(s.admit(), None);
    }

    #[test]
    fn concurrent_callers_let_one_line_through() {
        let s = std::sync::Arc::new(Sampled::new(Duration::from_secs(60)));
        let admitted: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..1000).filter(|_| s.admit().is_some()).count())
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(admitted, 1);
    }
}
