//! The bounds of what instances share (API.md, "Several instances"): a quiet key costs the
//! database no write per request, a busy one is shared every second, and a key's idleness is
//! judged on its use on every instance, exact to a tenth of `keys.idle_timeout`, and `last_used`
//! stays exact to its write interval when a key moves between instances. Each test runs two real
//! server processes on one fresh PostgreSQL database, except the last, which steps two instances'
//! services through an hour on one manual clock.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{database_url, start_binary, Server, PASSWORD};

async fn sign_up(server: &Server, username: &str) -> String {
    let r = reqwest::Client::new()
        .post(server.url("/users"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["data"]["key"].as_str().unwrap().to_owned()
}

async fn validate(client: &reqwest::Client, server: &Server, key: &str) -> u16 {
    client
        .get(server.url("/auth"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn two_instances(env: &[(&str, &str)]) -> (tempfile::TempDir, Server, Server) {
    let dir = tempfile::tempdir().unwrap();
    let a = start_binary(dir.path(), env).await;
    let b = start_binary(dir.path(), env).await;
    (dir, a, b)
}

/// The requests of `username`'s keys that the instances have shared (`key_request_counts`).
async fn shared_requests(dir: &std::path::Path, username: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&database_url(dir)).await.unwrap();
    let n: Option<i64> = sqlx::query_scalar(
        "SELECT sum(c.count)::bigint FROM key_request_counts c \
         JOIN keys k ON k.id = c.key_id JOIN users u ON u.id = k.user_id \
         WHERE u.username = $1",
    )
    .bind(username)
    .fetch_one(&mut db)
    .await
    .unwrap();
    let _ = db.close().await;
    n.unwrap_or(0)
}

/// A quiet key (a request every 300 ms, under a tenth of the rate limit) writes no request
/// count while its unshared requests stay under 1 % of the flood limit on each instance; the
/// request that reaches 1 % has the count shared within about a second.
#[tokio::test]
async fn a_quiet_key_shares_its_requests_only_when_it_crosses_the_threshold() {
    // 1 % of 1,000: ten requests; a tenth of 50 per second: five in one second.
    let (dir, a, b) = two_instances(&[("KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS", "1000")]).await;
    let key = sign_up(&a, "quiet").await;
    let client = reqwest::Client::new();
    for server in [&a, &b] {
        for _ in 0..9 {
            assert_eq!(validate(&client, server, &key).await, 200);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // Both instances had two whole sharing rounds since their last request.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        shared_requests(dir.path(), "quiet").await,
        0,
        "nine requests on each instance, none of them busy, and counts were written"
    );
    // The tenth on A: 1 % of the flood limit, shared within a second (plus a tick).
    assert_eq!(validate(&client, &a, &key).await, 200);
    let crossed = Instant::now();
    loop {
        let shared = shared_requests(dir.path(), "quiet").await;
        if shared == 10 {
            break;
        }
        assert!(
            crossed.elapsed() < Duration::from_millis(2500),
            "A's ten requests are still not shared ({shared} are)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "a quiet key crossing 1 % of the flood limit: shared after {:?}",
        crossed.elapsed()
    );
}

/// A key that turns busy on both instances at once (each well over a tenth of the rate limit
/// per second): together they refuse it once the flood limit is passed, each learning of the
/// other's requests within a second, so at most about a second's requests of each pass beyond it.
#[tokio::test]
async fn a_key_busy_on_two_instances_at_once_is_refused_by_both_within_a_second_of_the_limit() {
    const FLOOD: u64 = 300;
    let (_dir, a, b) = two_instances(&[
        ("KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS", "300"),
        ("KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "1000"),
        ("KILLBILL_AUTH_RATE_LIMIT_KEY_BURST", "1000"),
    ])
    .await;
    let key = sign_up(&a, "busy").await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    // Four paced clients per instance, about 40 requests per second each.
    for server in [&a, &b] {
        for _ in 0..4 {
            let url = server.url("/auth");
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut accepted, mut sent) = (0u64, 0u64);
                while start.elapsed() < Duration::from_secs(20) {
                    sent += 1;
                    let r = client.get(&url).bearer_auth(&key).send().await.unwrap();
                    match r.status().as_u16() {
                        200 => accepted += 1,
                        403 => return (accepted, sent),
                        other => panic!("status {other}"),
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                panic!("never refused after {accepted} accepted requests");
            }));
        }
    }
    let (mut accepted, mut sent) = (0, 0);
    for t in tasks {
        let (a, s) = t.await.unwrap();
        accepted += a;
        sent += s;
    }
    let took = start.elapsed().as_secs_f64();
    // Requests per second on each instance, which bounds what one second of lag lets through.
    let per_instance_second = (sent as f64 / took / 2.0).ceil() as u64;
    let bound = FLOOD + 2 * (per_instance_second + FLOOD / 100) + 2;
    println!(
        "busy on two instances at once: {accepted} accepted against a flood limit of {FLOOD} \
         ({per_instance_second} requests/s per instance, bound {bound}), refused after {took:.1} s"
    );
    // Never refused early: what each instance counts is at most what was really served.
    assert!(accepted + 2 >= FLOOD, "refused after only {accepted} requests");
    assert!(accepted <= bound, "{accepted} accepted, more than {bound}");
    // Neither instance alone passed the limit's half by much: both counted the other's requests.
    assert!(
        accepted < 2 * FLOOD - 50,
        "{accepted}: the instances counted apart"
    );
}

/// `keys.idle_timeout` across instances: a key used only on A for longer than the timeout is
/// not expired by B (B reads the use A wrote before declaring it idle); once nobody uses it, it
/// is refused by both after the timeout plus at most a tenth of it.
#[tokio::test]
async fn idleness_counts_use_on_every_instance_and_is_exact_to_a_tenth() {
    let idle = Duration::from_secs(20);
    let (_dir, a, b) = two_instances(&[("KILLBILL_AUTH_KEYS_IDLE_TIMEOUT", "20s")]).await;
    let key = sign_up(&a, "idler").await;
    let client = reqwest::Client::new();
    assert_eq!(validate(&client, &b, &key).await, 200, "B caches it");
    let started = Instant::now();
    while started.elapsed() < idle + Duration::from_secs(2) {
        assert_eq!(validate(&client, &a, &key).await, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // B last saw it 22 s ago; A used it half a second ago.
    assert_eq!(
        validate(&client, &b, &key).await,
        200,
        "B expired a key that A was using"
    );
    let last_use = Instant::now();
    tokio::time::sleep(idle + idle / 10).await;
    assert_eq!(
        validate(&client, &a, &key).await,
        403,
        "A, idle for 1.1 × the timeout"
    );
    assert_eq!(
        validate(&client, &b, &key).await,
        403,
        "B, idle for 1.1 × the timeout"
    );
    println!(
        "idle timeout of {idle:?} across instances: refused {:?} after the last use",
        last_use.elapsed()
    );
}

/// The rate limit split across instances: clients hammering one key on both instances at once
/// get, in all, about what one instance would allow (a burst, then the rate), each instance
/// learning within a second what the other served; not the double that two separate limits
/// would let through.
#[tokio::test]
async fn the_rate_limit_split_across_instances_holds_for_both_together() {
    const RATE: u64 = 10;
    const BURST: u64 = 10;
    let (_dir, a, b) = two_instances(&[
        ("KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "10"),
        ("KILLBILL_AUTH_RATE_LIMIT_KEY_BURST", "10"),
    ])
    .await;
    let key = sign_up(&a, "hammer").await;
    let run = Duration::from_secs(6);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for server in [&a, &b] {
        for _ in 0..3 {
            let url = server.url("/auth");
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut accepted, mut slowed) = (0u64, 0u64);
                while start.elapsed() < run {
                    let r = client.get(&url).bearer_auth(&key).send().await.unwrap();
                    match r.status().as_u16() {
                        200 => accepted += 1,
                        429 => slowed += 1,
                        other => panic!("status {other}"),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (accepted, slowed)
            }));
        }
    }
    let (mut accepted, mut slowed) = (0, 0);
    for t in tasks {
        let (a, s) = t.await.unwrap();
        accepted += a;
        slowed += s;
    }
    let secs = start.elapsed().as_secs_f64();
    let one_instance = BURST as f64 + RATE as f64 * secs;
    println!(
        "rate limit of {RATE}/s (burst {BURST}) on two instances for {secs:.1} s: {accepted} \
         accepted, {slowed} answered 429; one instance alone would allow {one_instance:.0}"
    );
    assert!(slowed > accepted, "the clients did push past the limit");
    // What one instance allows, plus a second's lag of each instance.
    let bound = one_instance + 2.0 * RATE as f64 + 2.0;
    assert!(
        (accepted as f64) <= bound,
        "{accepted} accepted in all, more than {bound:.0}: the instances limited apart"
    );
}

/// `last_used` stays exact to the write interval when a key moves from one instance to another
/// (API.md: exact to five minutes). Two instances' services on one database and one manual
/// clock, each flushing at every 10 s tick as the server does: A uses the key until it writes
/// it, then only B does. B met the key a fifth of an interval in, so its own interval ended
/// within half an interval of A's write and its first write was skipped. It comes back when
/// A's stored use is an interval old, not an interval after its own attempt (which let the
/// stored use lag by 350 s here). Then, with the key in use on both, it is written about once
/// per interval, not once per instance.
#[tokio::test]
async fn last_used_stays_within_an_interval_when_a_key_moves_between_instances() {
    use std::sync::Arc;

    use killbill_auth::clock::{Clock, ManualClock};
    use killbill_auth::service::keys::USAGE_WRITE_EVERY;
    use killbill_auth::startup::Services;

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let settings = crate::helpers::test_settings(dir.path());
    let a = Services::build(&settings, clock.clone()).await.unwrap();
    let b = Services::build(&settings, clock.clone()).await.unwrap();
    let client = crate::helpers::client_at("127.0.0.1");
    let (user, key) = a.accounts.sign_up("bill", PASSWORD, &client).await.unwrap();
    let stored = || async {
        let since = clock.now().minus(Duration::from_secs(3600));
        a.store.list_keys(user.id, since).await.unwrap()[0].last_used
    };
    let tick = Duration::from_secs(10);
    let interval = USAGE_WRITE_EVERY;
    let start = clock.now();
    let at = |secs: u64| start.plus(Duration::from_secs(secs));
    let (b_starts, a_stops) = (interval.as_secs() / 5, interval.as_secs());
    let mut worst = Duration::ZERO;
    let mut writes = 0;
    let mut last = None;
    for t in (0..=12 * interval.as_secs()).step_by(tick.as_secs() as usize) {
        if t > 0 {
            clock.advance(tick);
        }
        // A until its first write; B from a fifth of an interval in; both from six intervals.
        if t <= a_stops || t >= 6 * interval.as_secs() {
            a.keys.validate(&key, &client).await.unwrap();
        }
        if t >= b_starts {
            b.keys.validate(&key, &client).await.unwrap();
        }
        a.keys.flush_due().await.unwrap();
        b.keys.flush_due().await.unwrap();
        let now_stored = stored().await;
        if now_stored != last {
            last = now_stored;
            if t > 7 * interval.as_secs() {
                writes += 1;
            }
        }
        if t >= a_stops && t < 6 * interval.as_secs() {
            let stored_at = now_stored.expect("A wrote its use");
            worst = worst.max(Duration::from_millis(
                (at(t).as_millis() - stored_at.as_millis()) as u64,
            ));
        }
    }
    println!(
        "stored last_used lagged by at most {worst:?}; {writes} writes in five intervals on two instances"
    );
    assert!(
        worst <= interval + tick,
        "the stored last_used lagged by {worst:?}, beyond the interval ({interval:?}) and a tick"
    );
    // Five intervals with the key in use on both: once per interval, and a tick's rounding.
    assert!(
        (5..=6).contains(&writes),
        "{writes} writes in five intervals of use on two instances"
    );
}
