//! How long a revocation made on one instance takes to be honoured by another: signs up a user
//! on instance A, then, for each of `--revocations` keys, signs in on A, has B validate the key
//! (B caches it), signs out on A and polls B until it refuses the key. Prints the median, p90,
//! worst and mean delay. Used by `bench/postgres.sh`; loopback only, bounded in count and time.
//!
//! ```sh
//! cargo run --release --example revocation_latency -- --a http://127.0.0.1:18090 \
//!     --b http://127.0.0.1:18091 --revocations 200
//! ```

// A benchmark tool, not service code: failing loudly on a bad argument is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args::text("--a").expect("--a URL of the instance that revokes");
    let b = args::text("--b").expect("--b URL of the instance that must refuse");
    let n: usize = args::number("--revocations", 200);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let name = format!("latency_{}", std::process::id());
    let password = "revocation latency benchmark passphrase";
    let credentials = json!({"username": name, "password": password});
    let r = client
        .post(format!("{a}/users"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "sign-up on A: {}",
        r.text().await.unwrap_or_default()
    );
    let mut delays = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(600);
    for _ in 0..n {
        assert!(Instant::now() < deadline, "took over 10 minutes");
        let r = client
            .post(format!("{a}/auth"))
            .json(&credentials)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "sign-in on A");
        let body: Value = r.json().await.unwrap();
        let key = body["data"]["key"].as_str().unwrap().to_owned();
        let check = || client.get(format!("{b}/auth")).bearer_auth(&key).send();
        assert_eq!(check().await.unwrap().status(), 200, "B validates the key");
        let r = client
            .delete(format!("{a}/auth"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "sign-out on A");
        let revoked = Instant::now();
        loop {
            if check().await.unwrap().status() == 403 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(5),
                "B accepts a key revoked on A for 5 s"
            );
        }
        delays.push(revoked.elapsed());
    }
    delays.sort();
    let us = |d: Duration| d.as_micros();
    let mean = delays.iter().sum::<Duration>() / u32::try_from(delays.len().max(1)).unwrap();
    println!(
        "REVOCATION n={} p50_us={} p90_us={} max_us={} mean_us={}",
        delays.len(),
        us(delays[delays.len() / 2]),
        us(delays[delays.len() * 9 / 10]),
        us(delays[delays.len() - 1]),
        us(mean),
    );
}
