//! Connections that hold the server without asking anything of it: request-head, keep-alive and
//! body timeouts, the per-address and global connection caps, on raw sockets (the timings are
//! the point, and a client library would hide them).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{spawn_app_with, start_binary_with, TestApp};

/// The body of every 408 (API.md's envelope).
const TIMED_OUT: &str = r#"{"success":false,"data":null,"error":"Request timed out"}"#;

/// A connection to `addr` from the local address `from` (any 127.x.y.z is local on Linux).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent and when
/// it closed. Panics if it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + within).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {within:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// Reads one whole response (head and `Content-Length` body), leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

fn assert_between(elapsed: Duration, low_ms: u64, high_ms: u64, what: &str) {
    assert!(
        elapsed >= Duration::from_millis(low_ms) && elapsed <= Duration::from_millis(high_ms),
        "{what}: closed after {elapsed:?}, expected {low_ms}–{high_ms} ms"
    );
}

async fn app_with_timeouts(head_ms: u64, keep_alive_ms: u64, request_ms: u64) -> TestApp {
    spawn_app_with(|s| {
        s.server.request_head_timeout.0 = Duration::from_millis(head_ms);
        s.server.keep_alive_timeout.0 = Duration::from_millis(keep_alive_ms);
        s.server.request_timeout.0 = Duration::from_millis(request_ms);
    })
    .await
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_head_timeout_without_an_answer() {
    let app = app_with_timeouts(1000, 5000, 30_000).await;
    let mut stream = connect_from("127.0.0.1", app.addr).await;
    let (received, elapsed) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    assert_between(elapsed, 800, 3000, "a silent connection");
    assert!(received.is_empty(), "{:?}", String::from_utf8_lossy(&received));
    // The server still serves others, and stops at once.
    assert_eq!(app.request("GET", "/health", None, None).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_head_dribbled_byte_by_byte_is_cut_at_the_head_timeout_with_408() {
    let app = app_with_timeouts(1000, 5000, 30_000).await;
    let stream = connect_from("127.0.0.1", app.addr).await;
    let (mut reader, mut writer) = stream.into_split();
    // A byte every 200 ms: bytes keep coming, the head never ends.
    let dribble = tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(4), reader.read(&mut buf))
            .await
            .expect("closed within 4 s")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    assert_between(started.elapsed(), 800, 3000, "a dribbled head");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(text.ends_with(TIMED_OUT), "{text}");
    dribble.abort();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_keep_alive_timeout_not_the_head_timeout() {
    let app = app_with_timeouts(300, 1000, 30_000).await;
    let mut stream = connect_from("127.0.0.1", app.addr).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let (received, elapsed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_between(elapsed, 900, 2500, "an idle keep-alive connection");
    assert!(
        received.is_empty(),
        "closed without a word: {:?}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn a_keep_alive_timeout_shorter_than_the_head_timeout_closes_idle_connections_sooner() {
    let app = app_with_timeouts(2000, 300, 30_000).await;
    let mut stream = connect_from("127.0.0.1", app.addr).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut stream).await;
    let (_, elapsed) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    assert_between(elapsed, 250, 1500, "an idle keep-alive connection");
}

#[tokio::test]
async fn the_next_head_on_a_keep_alive_connection_has_the_head_timeout_from_its_first_byte() {
    // Idle for up to 1.5 s is fine, but a head begun must be whole within 0.5 s.
    let app = app_with_timeouts(500, 1500, 30_000).await;
    let mut stream = connect_from("127.0.0.1", app.addr).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut stream).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Past the head timeout, within the keep-alive one: still open, and served.
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200 "));
    // Now the start of a head, and nothing more: cut 0.5 s after it, not 1.5 s.
    stream.write_all(b"GET /heal").await.unwrap();
    let (received, elapsed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_between(elapsed, 400, 1400, "an unfinished second head");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 408 ") && text.ends_with(TIMED_OUT),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_within_request_timeout_and_the_connection_closes() {
    let app = app_with_timeouts(5000, 5000, 1000).await;
    let mut stream = connect_from("127.0.0.1", app.addr).await;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /auth HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 10\r\n\r\n",
        )
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_between(started.elapsed(), 800, 3000, "a missing body");
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert!(response.ends_with(TIMED_OUT), "{response}");
    let (_, elapsed) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    assert!(
        elapsed < Duration::from_secs(2),
        "closed after the 408: {elapsed:?}"
    );
}

/// The value of the sample `series` in a `/metrics` scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn past_the_per_address_cap_a_connection_is_closed_at_once_while_others_are_served() {
    let app = spawn_app_with(|s| s.server.max_connections_per_address = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", app.addr).await);
    }
    let mut extra = connect_from("127.0.0.1", app.addr).await;
    let (received, elapsed) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(
        received.is_empty() && elapsed < Duration::from_millis(500),
        "{elapsed:?}"
    );
    // Another address is served meanwhile.
    let other = app.client_from("127.0.0.2");
    let r = app.send(other.get(app.url("/health"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let metrics = app.send(other.get(app.url("/metrics"))).await.text;
    assert!(
        sample(
            &metrics,
            r#"killbill_auth_connections_refused_total{reason="per_address"}"#
        ) >= Some(1.0),
        "{metrics}"
    );
    // The three held, and the scraper's own.
    assert_eq!(
        sample(&metrics, "killbill_auth_open_connections"),
        Some(4.0),
        "{metrics}"
    );
    // A closed connection gives its place back.
    drop(held.pop());
    let mut served = false;
    for _ in 0..20 {
        let mut again = connect_from("127.0.0.1", app.addr).await;
        again
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        if again.read_exact(&mut buf).await.is_ok() {
            assert_eq!(&buf, b"HTTP/1.1 200");
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a place under the cap came back");
}

#[tokio::test]
async fn trusted_proxies_are_exempt_from_the_per_address_cap() {
    let app = spawn_app_with(|s| {
        s.server.max_connections_per_address = 2;
        s.server.trusted_proxies = vec!["127.0.0.3/32".parse().unwrap()];
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.3", app.addr).await);
    }
    for stream in &mut held {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(stream).await.starts_with("HTTP/1.1 200 "));
    }
}

#[tokio::test]
async fn past_the_global_cap_a_connection_is_closed_at_once() {
    let app = spawn_app_with(|s| s.server.max_connections = 2).await;
    let _held = [
        connect_from("127.0.0.1", app.addr).await,
        connect_from("127.0.0.2", app.addr).await,
    ];
    let mut extra = connect_from("127.0.0.3", app.addr).await;
    let (received, elapsed) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(
        received.is_empty() && elapsed < Duration::from_millis(500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_connections_that_sent_nothing() {
    let app = app_with_timeouts(10_000, 10_000, 30_000).await;
    let _silent = connect_from("127.0.0.1", app.addr).await;
    let mut idle = connect_from("127.0.0.1", app.addr).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut idle).await;
    let started = Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// The reproduction of the report: one address holds more idle connections than the process may
/// open files. The real binary, with `ulimit -n 512`.
#[tokio::test]
async fn idle_connections_from_one_address_beyond_the_open_file_limit_do_not_deny_others() {
    // This process needs more than 600 descriptors itself.
    rlimit::increase_nofile_limit(4096).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(dir.path(), Some(512), &[("RUST_LOG", "info")]).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let flooding = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..600 {
        flood.push(connect_from("127.0.0.1", addr).await);
    }
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A sign-up still opens what it needs (the database kept its descriptors).
    let r = client
        .post(server.url("/users"))
        .json(&serde_json::json!({"username": "ulimit", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The log is written as it goes; a moment for the last line.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(flood);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("open-file limit") && l.contains("512")),
        "{log}"
    );
    // One line a second at most, however many refusals (344 here).
    let refusals = log.lines().filter(|l| l.contains("connections refused")).count();
    let most = flooding.elapsed().as_secs() as usize + 1;
    assert!((1..=most).contains(&refusals), "{refusals} refusal lines:\n{log}");
    assert!(!log.contains("accept failed"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}

/// The same flood with the per-address cap out of the way: the global cap (derived from the
/// open-file limit) holds, so the process never runs out of descriptors and the log does not spin.
#[tokio::test]
async fn at_the_derived_global_cap_the_server_refuses_without_running_out_of_descriptors() {
    rlimit::increase_nofile_limit(4096).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(
        dir.path(),
        Some(512),
        &[
            ("RUST_LOG", "info"),
            ("KILLBILL_AUTH_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "100000"),
        ],
    )
    .await;
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // A client whose connection was open before the flood is served throughout.
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert_eq!(
        client.get(server.url("/health")).send().await.unwrap().status(),
        200
    );
    let flooding = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..600 {
        flood.push(connect_from("127.0.0.1", addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client
        .post(server.url("/users"))
        .json(&serde_json::json!({"username": "capped", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Once the flood goes away, new connections are served again.
    drop(flood);
    let fresh = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut served = false;
    for _ in 0..40 {
        if let Ok(r) = fresh.get(server.url("/health")).send().await {
            assert_eq!(r.status(), 200);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connections refused"))
        .collect();
    let most = flooding.elapsed().as_secs() as usize + 1;
    assert!((1..=most).contains(&refusals.len()), "{log}");
    assert!(refusals.iter().any(|l| l.contains("\"limit\":384")), "{log}");
    assert!(!log.contains("accept failed"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}

/// With both caps out of the way the process does run out of descriptors (EMFILE): the accept
/// loop pauses instead of spinning, logs once a second at most, and recovers when the flood goes.
#[tokio::test]
async fn out_of_descriptors_the_accept_loop_pauses_and_recovers() {
    rlimit::increase_nofile_limit(4096).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(
        dir.path(),
        Some(512),
        &[
            ("RUST_LOG", "info"),
            ("KILLBILL_AUTH_SERVER_MAX_CONNECTIONS", "100000"),
            ("KILLBILL_AUTH_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "100000"),
        ],
    )
    .await;
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let flooding = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..600 {
        flood.push(connect_from("127.0.0.1", addr).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(flood);
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut served = false;
    for _ in 0..40 {
        if let Ok(r) = client.get(server.url("/health")).send().await {
            assert_eq!(r.status(), 200);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "served again once the flood went away");
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let errors = log.lines().filter(|l| l.contains("accept failed")).count();
    let most = flooding.elapsed().as_secs() as usize + 1;
    assert!((1..=most).contains(&errors), "{errors} lines:\n{log}");
}
