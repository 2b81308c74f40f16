//! Hostile traffic for `bench/run.sh` (step 6): holds many idle TCP connections to a server and
//! runs clients that dribble a request head one byte a second, for a bounded time, while the
//! benchmark measures what normal clients get. Connections the server closes (its head and
//! keep-alive timeouts) are opened again at once, so the pressure lasts the whole run.
//!
//! ```sh
//! cargo run --release --example hostile -- --port 18080 --idle 2000 --slow 8 --seconds 20 \
//!     --from 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
//! ```
//!
//! `--from` spreads the connections over local source addresses (any 127.x.y.z is local on
//! Linux), as an attacker with several addresses would; the server caps connections per
//! address. Every second it prints `HOSTILE open=N opened=N closed_by_server=N` so the run
//! shows how many connections it really held. Loopback only.

// A benchmark tool, not service code: failing loudly on a bad argument is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/args.rs"]
mod args;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Default)]
struct Counts {
    open: AtomicU64,
    opened: AtomicU64,
    closed_by_server: AtomicU64,
    refused: AtomicU64,
}

async fn connect(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Holds one connection open, sending nothing (idle) or a request head one byte a second
/// (slow); when the server closes it, opens another, until `deadline`.
async fn hold(from: IpAddr, to: SocketAddr, slow: bool, deadline: tokio::time::Instant, counts: Arc<Counts>) {
    const HEAD: &[u8] = b"GET /auth HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=\r\n\r\n";
    while tokio::time::Instant::now() < deadline {
        let Ok(mut stream) = connect(from, to).await else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        counts.opened.fetch_add(1, Ordering::Relaxed);
        counts.open.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 512];
        let mut sent = 0;
        loop {
            let wait = if slow {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                read = stream.read(&mut buf) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    if slow && stream.write_all(&HEAD[sent % HEAD.len()..][..1]).await.is_err() {
                        counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    sent += 1;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        counts.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = args::number("--port", 18080);
    let idle: usize = args::number("--idle", 2000);
    let slow: usize = args::number("--slow", 8);
    let seconds: u64 = args::number("--seconds", 20);
    let from: Vec<IpAddr> = args::text("--from")
        .unwrap_or_else(|| "127.0.0.2".into())
        .split(',')
        .map(|a| a.trim().parse().expect("--from: IPv4 addresses, comma-separated"))
        .collect();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::with_capacity(idle + slow);
    for i in 0..idle + slow {
        let address = from[i % from.len()];
        tasks.push(tokio::spawn(hold(
            address,
            to,
            i >= idle,
            deadline,
            counts.clone(),
        )));
        // Open them over a fraction of a second rather than in one SYN burst.
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let report = {
        let counts = counts.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                println!(
                    "HOSTILE open={} opened={} closed_by_server={} refused={}",
                    counts.open.load(Ordering::Relaxed),
                    counts.opened.load(Ordering::Relaxed),
                    counts.closed_by_server.load(Ordering::Relaxed),
                    counts.refused.load(Ordering::Relaxed),
                );
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    report.abort();
}
