//! The floor for a cold `GET /auth` on PostgreSQL: the key row read by digest through the same
//! driver as the service (sqlx, a `PgPool`), with nothing around it. `bench/postgres.sh` runs it
//! next to the service's first uses of the same keys, at the same concurrency and pace.
//!
//! ```sh
//! cargo run --release --example pg_select -- --url postgres://postgres@127.0.0.1/kb_bench \
//!     --keys-file /tmp/keys.txt [--concurrency 8] [--think-ms 1] [--no-ping] [--lazy-pool]
//! ```
//!
//! Every key of the file (one standard base64 key a line) is looked up once, in file order, by
//! `--concurrency` tasks that each wait `--think-ms` between an answer and their next query (as
//! wrk's connections do with `BENCH_THINK_MS`), on a pool of as many connections, opened before
//! the clock starts. The query is the store's `find_key` (`src/store/postgres/mod.rs`): the key's
//! columns and its owner's, by the digest's unique index, joined to `users` by primary key, every
//! column decoded. The time of one query is from before `fetch_optional` until its row is
//! decoded. The pool pings a connection before handing it out (sqlx's `test_before_acquire`,
//! on by default and in the service: one more round trip per query); `--no-ping` turns that off.
//! `--lazy-pool` opens no connection before the clock starts: the first queries open them, as
//! in the service right after a start (and `backend_ticks` is then -1).
//! Prints one line:
//! `PGSELECT queries=… found=… seconds=… qps=… p50_us=… p90_us=… p99_us=… max_us=… cpu_ticks=…
//! backend_ticks=…`: `cpu_ticks` the user + system CPU time of this process while the queries
//! ran, `backend_ticks` that of the pool's PostgreSQL backends (read from `/proc` when the
//! server runs on this machine, else -1), both in clock ticks (`getconf CLK_TCK`).

// A benchmark tool, not service code: failing loudly is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use killbill_auth::domain::AccessKey;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[path = "common/args.rs"]
mod args;

/// `find_key`'s statement, word for word (its column list is the store's `KEY_COLUMNS`).
const FIND_KEY: &str = "SELECT k.id, k.user_id, k.digest, k.created_ms, k.last_used_ms, k.last_ip, \
     k.user_agent, k.revoked_ms, k.revoke_reason, k.revoked_network, k.created_ip, k.activity, \
     u.username, u.role, u.created_ms AS user_created_ms \
     FROM keys k JOIN users u ON u.id = k.user_id WHERE k.digest = $1";

/// The row as the store decodes it: every column, owned.
type KeyRow = (
    Uuid,
    Uuid,
    Vec<u8>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
);

/// User + system CPU time of this process so far, in clock ticks (0 off Linux).
fn cpu_ticks() -> u64 {
    process_ticks("self").unwrap_or(0)
}

/// User + system CPU time of the PostgreSQL backends `pids` so far (`None` if one cannot be read:
/// the server runs elsewhere).
fn backend_ticks(pids: &[i32]) -> Option<u64> {
    pids.iter().map(|pid| process_ticks(&pid.to_string())).sum()
}

/// User + system CPU time of process `pid` (or `self`), in clock ticks, from `/proc`.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, indexes 11 and 12 after the name.
    fields
        .get(11..13)
        .map(|f| f.iter().map(|v| v.parse::<u64>().unwrap_or(0)).sum())
}

/// The value at quantile `q` of sorted samples (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = args::text("--url").expect("--url postgres://…");
    let keys_file = args::text("--keys-file").expect("--keys-file FILE");
    let concurrency: usize = args::number("--concurrency", 8);
    let think = Duration::from_millis(args::number("--think-ms", 1));
    let ping = !std::env::args().any(|a| a == "--no-ping");
    let lazy = std::env::args().any(|a| a == "--lazy-pool");

    let digests: Arc<Vec<[u8; 32]>> = Arc::new(
        std::fs::read_to_string(&keys_file)?
            .lines()
            .filter_map(|line| AccessKey::parse(line.trim().as_bytes()))
            .map(|key| key.digest().0)
            .collect(),
    );
    assert!(!digests.is_empty(), "no keys in {keys_file}");

    let options = PgConnectOptions::from_str(&url)?.application_name("killbill-auth pg_select");
    let pool_options = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).expect("--concurrency"))
        .min_connections(if lazy {
            0
        } else {
            u32::try_from(concurrency).expect("--concurrency")
        })
        .test_before_acquire(ping);
    let pool = if lazy {
        pool_options.connect_lazy_with(options)
    } else {
        pool_options.connect_with(options).await?
    };
    // Every connection open before the clock starts; their backends' process ids.
    let mut held = Vec::with_capacity(concurrency);
    let mut backends = Vec::with_capacity(concurrency);
    for _ in 0..if lazy { 0 } else { concurrency } {
        let mut conn = pool.acquire().await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        backends.push(pid);
        held.push(conn);
    }
    drop(held);
    let backends0 = backend_ticks(&backends);

    let next = Arc::new(AtomicUsize::new(0));
    let ticks0 = cpu_ticks();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (pool, digests, next) = (pool.clone(), digests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut found = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(digest) = digests.get(i) else { break };
                let t0 = Instant::now();
                let row: Option<KeyRow> = sqlx::query_as(FIND_KEY)
                    .bind(&digest[..])
                    .fetch_optional(&pool)
                    .await
                    .expect("find_key");
                samples.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                found += usize::from(row.is_some());
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
            (samples, found)
        }));
    }
    let mut samples = Vec::with_capacity(digests.len());
    let mut found = 0;
    for task in tasks {
        let (s, f) = task.await?;
        samples.extend(s);
        found += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks() - ticks0;
    let backend = match (backends0, backend_ticks(&backends)) {
        (Some(a), Some(b)) if !lazy => i64::try_from(b - a).unwrap_or(-1),
        _ => -1,
    };
    pool.close().await;
    samples.sort_unstable();
    println!(
        "PGSELECT queries={} found={found} seconds={seconds:.3} qps={:.0} p50_us={} p90_us={} p99_us={} max_us={} cpu_ticks={ticks} backend_ticks={backend}",
        samples.len(),
        samples.len() as f64 / seconds,
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(0),
    );
    Ok(())
}
