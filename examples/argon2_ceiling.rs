//! The Argon2 ceiling: how many Argon2id hashes per second this machine can do at all, with the
//! service's parameters, on every core. Nothing else runs: one thread per core, each reusing one
//! memory buffer (`hash_password_into_with_memory`, as the service's hashing pool does), in a
//! tight loop for a fixed time. `bench/run.sh` puts sign-ins/s next to it.
//!
//! ```sh
//! cargo run --release --example argon2_ceiling -- --seconds 10 [--threads N] [--m 19456 --t 2 --p 1]
//! ```
//! Prints `argon2_ceiling hashes=… seconds=… hashes_per_second=… threads=…` on one line.

// A benchmark tool, not service code: failing loudly on a bad argument is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

#[path = "common/args.rs"]
mod args;

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u64;
    let seconds = args::number("--seconds", 10);
    let threads = args::number("--threads", cores);
    let m = u32::try_from(args::number("--m", 19_456)).expect("m");
    let t = u32::try_from(args::number("--t", 2)).expect("t");
    let p = u32::try_from(args::number("--p", 1)).expect("p");
    let params = Params::new(m, t, p, Some(32)).expect("argon2 parameters");
    let run_for = Duration::from_secs(seconds);

    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let params = params.clone();
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = vec![Block::default(); params.block_count()];
                let password = format!("ceiling password {i}");
                let salt = [i as u8; 16];
                let mut out = [0u8; 32];
                let mut hashes = 0u64;
                let begin = Instant::now();
                while begin.elapsed() < run_for {
                    argon2
                        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut memory)
                        .expect("argon2");
                    std::hint::black_box(&out);
                    hashes += 1;
                }
                (hashes, begin.elapsed())
            })
        })
        .collect();
    let mut total = 0u64;
    let mut rate = 0f64;
    for w in workers {
        let (hashes, elapsed) = w.join().expect("worker");
        total += hashes;
        // Each thread's own rate: the last hash of a thread may end a little after `run_for`.
        rate += hashes as f64 / elapsed.as_secs_f64();
    }
    println!(
        "argon2_ceiling hashes={total} seconds={:.3} hashes_per_second={rate:.2} threads={threads} m={m} t={t} p={p}",
        start.elapsed().as_secs_f64()
    );
}
