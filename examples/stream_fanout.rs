//! The revocation stream's fan-out (issue 14): `--listeners` game servers follow
//! `GET /revocations` (Server-Sent Events, one connection each, all in this process) while
//! `--senders` clients sign out `--revocations` player keys (`DELETE /auth`) as fast as they are
//! answered: a storm. Every delivery (an event read by one listener) is timed from the moment the
//! sender of that sign-out got its 200 to the moment the listener parsed the event, both on this
//! process's monotonic clock (the event names the key by `key_id`, which a `GET /auth` with each
//! key tells beforehand). Checks that every listener got every revocation of the storm exactly
//! once, in strictly increasing `seq`, and no `event: reset`. With `--listeners 0` it measures the
//! storm's sign-outs alone. Used by `bench/game.sh`; loopback only, bounded in count and time.
//!
//! ```sh
//! cargo run --release --example stream_fanout -- --url http://127.0.0.1:19080 \
//!     --service-key-file /tmp/service.key --keys-file /tmp/keys.txt --offset 0 \
//!     --revocations 2000 --senders 16 --listeners 100 [--listen-url URL] [--pid PID]
//! ```
//!
//! `--listen-url` (default `--url`): where the listeners connect (another instance on the same
//! PostgreSQL database). `--pid`: the service's process, whose CPU time over the storm is given
//! per sign-out. Prints one line:
//! `FANOUT listeners=… revocations=… signouts_per_s=… signout_p50_us=… … delay_p50_us=… …`.

// A benchmark tool, not service code: failing loudly on a bad argument is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/args.rs"]
mod args;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

/// What one listener read: every event of the stream after it opened.
#[derive(Default)]
struct Heard {
    /// `(seq, key_id, when parsed)` of every revocation event, in the order read.
    events: Vec<(i64, Uuid, Instant)>,
    resets: usize,
    /// Events that could not be parsed.
    malformed: usize,
    /// Why the stream ended before it was told to stop, if it did.
    broke: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = args::text("--url").expect("--url of the instance that signs out");
    let listen_url = args::text("--listen-url").unwrap_or_else(|| url.clone());
    let service_key = std::fs::read_to_string(
        args::text("--service-key-file").expect("--service-key-file: the key of admin create-service"),
    )
    .expect("the service key file")
    .trim()
    .to_owned();
    let keys_file = args::text("--keys-file").expect("--keys-file: player keys, one a line");
    let offset: usize = args::number("--offset", 0);
    let n: usize = args::number("--revocations", 2000);
    let senders: usize = args::number("--senders", 16);
    let listeners: usize = args::number("--listeners", 100);
    let pid: Option<u32> = args::text("--pid").map(|p| p.parse().expect("--pid"));
    let clk_tck: f64 = args::number("--clk-tck", 100.0);
    let timeout = Duration::from_secs(args::number("--timeout-secs", 120));
    let deadline = Instant::now() + timeout;

    let keys: Vec<String> = std::fs::read_to_string(&keys_file)
        .expect("the keys file")
        .lines()
        .filter(|l| !l.is_empty())
        .skip(offset)
        .take(n)
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), n, "{keys_file} has fewer than {} keys", offset + n);
    let keys = Arc::new(keys);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();

    // Each key's id (the events name keys by id), with the same senders: this also puts every
    // key in the service's cache, so that the storm measures revocations, not first uses.
    let key_ids: Vec<Uuid> = {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..senders {
            let (client, keys, next, url) = (client.clone(), keys.clone(), next.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= keys.len() {
                        break got;
                    }
                    let r = client
                        .get(format!("{url}/auth"))
                        .bearer_auth(&keys[i])
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200, "GET /auth with key {}", offset + i);
                    let body: Value = r.json().await.unwrap();
                    let id = body["data"]["key"]["id"].as_str().unwrap().parse().unwrap();
                    got.push((i, id));
                }
            }));
        }
        let mut ids = vec![Uuid::nil(); n];
        for t in tasks {
            for (i, id) in t.await.unwrap() {
                ids[i] = id;
            }
        }
        ids
    };
    let storm_keys: HashMap<Uuid, usize> = key_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    assert_eq!(storm_keys.len(), n, "duplicate key ids");

    // The listeners, each on its own connection; the storm starts when every one has read the
    // stream's opening comment.
    let (stop_tx, stop_rx) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let listen_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut listening = Vec::new();
    for _ in 0..listeners {
        listening.push(tokio::spawn(listen(
            listen_client.clone(),
            format!("{listen_url}/revocations"),
            service_key.clone(),
            opened.clone(),
            stop_rx.clone(),
            n,
        )));
    }
    while opened.load(Ordering::Acquire) < listeners {
        assert!(Instant::now() < deadline, "the listeners did not all open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The storm.
    let cpu0 = pid.map(cpu_ticks);
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, keys, next, url) = (client.clone(), keys.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            // (index, sent, answered 200 at)
            let mut acks: Vec<(usize, Instant, Instant)> = Vec::new();
            let mut failed = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys.len() {
                    break (acks, failed);
                }
                let sent = Instant::now();
                let r = client
                    .delete(format!("{url}/auth"))
                    .bearer_auth(&keys[i])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let at = Instant::now();
                        let _ = r.bytes().await;
                        acks.push((i, sent, at));
                    }
                    Ok(r) => {
                        failed += 1;
                        eprintln!("sign-out {}: {}", offset + i, r.status());
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("sign-out {}: {e}", offset + i);
                    }
                }
            }
        }));
    }
    let mut acked: Vec<Option<Instant>> = vec![None; n];
    let mut signout_us = Vec::with_capacity(n);
    let mut failed = 0;
    for t in tasks {
        let (acks, f) = t.await.unwrap();
        failed += f;
        for (i, sent, at) in acks {
            acked[i] = Some(at);
            signout_us.push(us(at - sent));
        }
    }
    let storm = start.elapsed();
    let cpu_storm = pid.map(cpu_ticks);

    // Wait until every listener has every revocation (or the deadline), then stop them.
    let expected = listeners * n;
    if listeners > 0 {
        let done = listening.iter().all(|t| t.is_finished());
        if !done {
            let all_done = async {
                while !listening.iter().all(|t| t.is_finished()) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, all_done).await;
        }
    }
    let _ = stop_tx.send(true);
    let mut heard = Vec::new();
    for t in listening {
        heard.push(t.await.unwrap());
    }
    let cpu_end = pid.map(cpu_ticks);

    // Every delivery against its sign-out's acknowledgement.
    let mut delays: Vec<i64> = Vec::with_capacity(expected);
    let (mut missing, mut duplicates, mut out_of_order, mut foreign, mut resets, mut malformed) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let mut broken = Vec::new();
    let mut last_delivery = start;
    for h in &heard {
        resets += h.resets;
        malformed += h.malformed;
        if let Some(why) = &h.broke {
            broken.push(why.clone());
        }
        let mut seen = vec![false; n];
        let mut previous = i64::MIN;
        for &(seq, key_id, at) in &h.events {
            if seq <= previous {
                out_of_order += 1;
            }
            previous = seq;
            let Some(&i) = storm_keys.get(&key_id) else {
                foreign += 1;
                continue;
            };
            if seen[i] {
                duplicates += 1;
                continue;
            }
            seen[i] = true;
            last_delivery = last_delivery.max(at);
            if let Some(ack) = acked[i] {
                delays.push(signed_us(at, ack));
            }
        }
        missing += seen.iter().filter(|s| !**s).count();
    }
    let deliveries = delays.len();
    delays.sort_unstable();
    signout_us.sort_unstable();
    let ok = n - failed;
    let pct = |v: &[i64], p: f64| -> i64 {
        if v.is_empty() {
            0
        } else {
            v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
        }
    };
    let early = delays.iter().filter(|d| **d < 0).count();
    let fanout_secs = (last_delivery - start).as_secs_f64();
    let cpu_us = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}", (b - a) / clk_tck * 1e6 / ok.max(1) as f64),
        _ => "-".into(),
    };
    println!(
        "FANOUT listeners={listeners} revocations={n} senders={senders} signouts_ok={ok} signouts_failed={failed} \
         storm_us={} signouts_per_s={:.1} signout_p50_us={} signout_p99_us={} signout_max_us={} \
         deliveries={deliveries} expected={expected} deliveries_per_s={:.0} \
         delay_p50_us={} delay_p90_us={} delay_p99_us={} delay_max_us={} delay_min_us={} early={early} \
         last_delivery_after_storm_us={} missing={missing} duplicates={duplicates} out_of_order={out_of_order} \
         foreign={foreign} resets={resets} malformed={malformed} broken={} \
         service_cpu_us_per_signout={} service_cpu_us_per_signout_with_drain={}",
        storm.as_micros(),
        ok as f64 / storm.as_secs_f64(),
        pct(&signout_us, 0.5),
        pct(&signout_us, 0.99),
        signout_us.last().copied().unwrap_or(0),
        if fanout_secs > 0.0 { deliveries as f64 / fanout_secs } else { 0.0 },
        pct(&delays, 0.5),
        pct(&delays, 0.9),
        pct(&delays, 0.99),
        delays.last().copied().unwrap_or(0),
        delays.first().copied().unwrap_or(0),
        if listeners > 0 { signed_us(last_delivery, start + storm) } else { 0 },
        broken.len(),
        cpu_us(cpu0.flatten(), cpu_storm.flatten()),
        cpu_us(cpu0.flatten(), cpu_end.flatten()),
    );
    for why in broken.iter().take(3) {
        eprintln!("a stream ended early: {why}");
    }
}

/// One game server: follows the stream from the present until it has read `want` revocations or
/// is told to stop.
async fn listen(
    client: reqwest::Client,
    url: String,
    key: String,
    opened: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
    want: usize,
) -> Heard {
    let mut heard = Heard::default();
    let mut response = match client.get(&url).bearer_auth(&key).send().await {
        Ok(r) if r.status() == 200 => r,
        Ok(r) => {
            heard.broke = Some(format!("answered {}", r.status()));
            opened.fetch_add(1, Ordering::Release);
            return heard;
        }
        Err(e) => {
            heard.broke = Some(e.to_string());
            opened.fetch_add(1, Ordering::Release);
            return heard;
        }
    };
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut open = false;
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = stop.changed() => break,
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                heard.broke = Some("the stream ended".into());
                break;
            }
            Err(e) => {
                heard.broke = Some(e.to_string());
                break;
            }
        };
        buffer.extend_from_slice(&chunk);
        // Whole events only: each ends with a blank line.
        let mut consumed = 0;
        while let Some(end) = find(&buffer[consumed..], b"\n\n") {
            let event = &buffer[consumed..consumed + end];
            consumed += end + 2;
            if !open {
                open = true;
                opened.fetch_add(1, Ordering::Release);
            }
            read_event(event, &mut heard);
        }
        buffer.drain(..consumed);
        if heard.events.len() >= want {
            break;
        }
    }
    if !open {
        opened.fetch_add(1, Ordering::Release);
    }
    heard
}

/// One event's lines: `id:`, `data:`, `event:`, `retry:` or a comment.
fn read_event(event: &[u8], heard: &mut Heard) {
    let mut data = None;
    let mut reset = false;
    for line in event.split(|b| *b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"data:") {
            data = Some(rest);
        } else if line.starts_with(b"event: reset") {
            reset = true;
        }
    }
    if reset {
        heard.resets += 1;
        return;
    }
    let Some(data) = data else {
        return; // a comment, or the opening retry:
    };
    let at = Instant::now();
    let parsed: Option<(i64, Uuid)> = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| Some((v["seq"].as_i64()?, v["key_id"].as_str()?.parse().ok()?)));
    match parsed {
        Some((seq, key_id)) => heard.events.push((seq, key_id, at)),
        None => heard.malformed += 1,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `a - b` in µs, negative when `a` came first.
fn signed_us(a: Instant, b: Instant) -> i64 {
    if a >= b {
        us(a - b)
    } else {
        -us(b - a)
    }
}

/// User + system CPU time of a process so far, in clock ticks (`None` once it is gone).
fn cpu_ticks(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
