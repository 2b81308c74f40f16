//! Password guessing, credential stuffing, sign-up floods and account enumeration.

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app, spawn_app_with, spawn_in, test_settings, PASSWORD};

const WRONG: &str = "definitely not the password";

#[tokio::test]
async fn guessing_from_one_network_is_throttled_and_the_right_password_does_not_bypass_it() {
    let app = spawn_app().await;
    app.user("bill").await;
    app.user("ted").await;
    for i in 0..5 {
        assert_eq!(
            app.sign_in("bill", WRONG).await.assert_error(401),
            "Invalid username or password",
            "try {i}"
        );
    }
    let r = app.sign_in("bill", WRONG).await;
    assert_eq!(r.assert_error(429), "Too many requests, retry later");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    app.sign_in("bill", PASSWORD).await.assert_error(429);
    // Other accounts from this network, and this account from other networks, are open.
    assert_eq!(app.sign_in("ted", PASSWORD).await.status, 200);
    assert_eq!(app.sign_in_from("127.0.44.1", "bill", PASSWORD).await.status, 200);
    // The throttle lifts by itself once the window has passed.
    app.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn guessing_from_many_networks_cannot_lock_the_owner_out() {
    let app = spawn_app_with(|s| s.throttle.signin_failures_per_account = 10).await;
    app.user("bill").await;
    // The owner signs in from home (127.0.0.0/24).
    let owners_key = app.sign_in("bill", PASSWORD).await.key();
    // An attacker guesses from ten networks, once each.
    for n in 1..=10 {
        assert_eq!(
            app.sign_in_from(&format!("127.0.{n}.1"), "bill", WRONG)
                .await
                .status,
            401
        );
    }
    // The account is throttled from new networks, even with the right password...
    app.sign_in_from("127.0.77.1", "bill", PASSWORD)
        .await
        .assert_error(429);
    app.sign_in_from("127.0.1.1", "bill", PASSWORD)
        .await
        .assert_error(429);
    // ...but the owner's network stays open, and the owner's keys keep working.
    assert_eq!(app.sign_in_from("127.0.0.9", "bill", PASSWORD).await.status, 200);
    assert_eq!(app.validate(&owners_key).await.status, 200);
}

#[tokio::test]
async fn stuffing_many_accounts_from_one_network_is_throttled() {
    let app = spawn_app_with(|s| s.throttle.signin_failures_per_network = 20).await;
    app.user("bill").await;
    for i in 0..20 {
        let r = app.sign_in_from("127.0.5.1", &format!("victim{i}"), WRONG).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    app.sign_in_from("127.0.5.2", "victim99", WRONG)
        .await
        .assert_error(429);
    app.sign_in_from("127.0.5.3", "bill", PASSWORD)
        .await
        .assert_error(429);
    // Another network is unaffected.
    assert_eq!(app.sign_in_from("127.0.6.1", "bill", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn sign_ups_are_throttled_per_network() {
    let app = spawn_app_with(|s| s.throttle.signups_per_network = 3).await;
    assert_eq!(app.sign_up("ann", PASSWORD).await.status, 200);
    assert_eq!(
        app.sign_up("Ann", PASSWORD).await.status,
        409,
        "a taken name counts"
    );
    // Invalid input does not count.
    assert_eq!(app.sign_up("x", PASSWORD).await.status, 400);
    assert_eq!(app.sign_up("ben", PASSWORD).await.status, 200);
    let r = app.sign_up("cat", PASSWORD).await;
    r.assert_error(429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Nothing was created by the refused attempt; another network may sign up.
    let r = app
        .send(
            app.client_from("127.0.8.1")
                .post(app.url("/users"))
                .json(&serde_json::json!({"username": "cat", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(app.sign_up("dan", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn wrong_passwords_on_sensitive_changes_count_as_failed_sign_ins() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    for _ in 0..5 {
        let body = serde_json::json!({"current_password": WRONG, "new_password": "another good passphrase"});
        assert_eq!(
            app.request("PUT", "/users/me/password", Some(&key), Some(body))
                .await
                .status,
            401
        );
    }
    app.sign_in("bill", PASSWORD).await.assert_error(429);
    let r = app
        .request(
            "DELETE",
            "/users/me",
            Some(&key),
            Some(serde_json::json!({"password": PASSWORD})),
        )
        .await;
    r.assert_error(429);
}

#[tokio::test]
async fn throttles_survive_a_restart() {
    let app = spawn_app().await;
    app.user("bill").await;
    for _ in 0..5 {
        assert_eq!(app.sign_in("bill", WRONG).await.status, 401);
    }
    let dir = app.stop().await;
    let settings = test_settings(dir.path());
    let app = spawn_in(dir, &settings).await;
    app.sign_in("bill", PASSWORD).await.assert_error(429);
}

/// `pairs` times an attempt on the known name and one on the unknown name, alternating which goes
/// first so that neither gains from the other's warm caches: their times, known and unknown.
async fn interleaved<F, Fut>(pairs: usize, mut attempt: F) -> (Vec<Duration>, Vec<Duration>)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let (mut known, mut unknown) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..pairs {
        if i % 2 == 0 {
            known.push(attempt(true).await);
            unknown.push(attempt(false).await);
        } else {
            unknown.push(attempt(false).await);
            known.push(attempt(true).await);
        }
    }
    (known, unknown)
}

/// The median of a handful of durations.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A wrong password for an account and any password for a name that matches none take the same
/// time. Like with like: one unknown name throughout, given the same failures as the account's
/// before the rounds, because every attempt reads its name's failures within the throttles'
/// windows (at most a limit's worth in production; with this test's raised limits, one more row
/// per attempt). Distinct unknown names, each with no failure, against an account collecting 75
/// made the account's answers measurably slower on PostgreSQL (+0.8 ms a sign-in, 5 % of one
/// here), a difference in what had been tried under each name, not in whether it exists.
#[tokio::test]
async fn unknown_names_cost_the_same_as_wrong_passwords() {
    // Hashing must dominate for the comparison to mean anything: real-ish parameters.
    let app = spawn_app_with(|s| {
        s.password.argon2_memory_kib = 8192;
        s.password.argon2_iterations = 3;
        crate::helpers::hashing_only(s);
    })
    .await;
    app.user("bill").await;
    let app = &app;
    let attempt = |name: &'static str| async move {
        let start = Instant::now();
        assert_eq!(app.sign_in(name, WRONG).await.status, 401, "{name}");
        start.elapsed()
    };
    // Warm up the connection and both paths, with as many failures under each name.
    for _ in 0..5 {
        attempt("bill").await;
        attempt("nobody").await;
    }
    let mut best = f64::MAX;
    let mut rounds = Vec::new();
    // A noisy machine can spoil one round; the rule holds if one of three rounds shows it.
    for _round in 0..3 {
        let (known, unknown) = interleaved(30, |known| attempt(if known { "bill" } else { "nobody" })).await;
        let (k, u) = (median(known).as_secs_f64(), median(unknown).as_secs_f64());
        rounds.push(format!("{:.2} ms vs {:.2} ms", k * 1e3, u * 1e3));
        best = best.min((k - u).abs() / k.max(u));
        if best < 0.10 {
            break;
        }
    }
    assert!(
        best < 0.10,
        "median sign-in times differ by {:.1}% (existing vs unknown name): {rounds:?}",
        best * 100.0
    );
}

/// Runs `n` copies of a request at once (each its own task, its own connection when the pool
/// has none free) and returns the statuses.
pub async fn burst(n: usize, make: impl Fn(usize) -> reqwest::RequestBuilder) -> Vec<u16> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let req = make(i);
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                req.send().await.expect("request").status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses
}

pub fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_concurrent_burst_of_guesses_gets_no_more_password_checks_than_the_limit() {
    let app = spawn_app().await;
    app.user("bill").await;
    let statuses = burst(60, |_| {
        app.client
            .post(app.url("/auth"))
            .json(&serde_json::json!({"username": "bill", "password": WRONG}))
    })
    .await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 55, "{statuses:?}");
    // The right password does not get through either.
    app.sign_in("bill", PASSWORD).await.assert_error(429);
}

#[tokio::test]
async fn a_concurrent_burst_of_sign_ups_creates_no_more_accounts_than_the_limit() {
    let app = spawn_app().await;
    let statuses = burst(80, |i| {
        app.client
            .post(app.url("/users"))
            .json(&serde_json::json!({"username": format!("player{i}"), "password": PASSWORD}))
    })
    .await;
    assert_eq!(count(&statuses, 200), 20, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 60, "{statuses:?}");
    // What the answers say is what the database holds.
    let created: Vec<bool> = {
        let mut v = Vec::new();
        for i in 0..80 {
            v.push(
                app.sign_in_from("127.0.9.1", &format!("player{i}"), PASSWORD)
                    .await
                    .status
                    == 200,
            );
        }
        v
    };
    assert_eq!(created.iter().filter(|c| **c).count(), 20);
}

/// IPv6 clients, behind a trusted proxy: an attacker holding a /48 has 65,536 /64 networks,
/// but one wide network.
#[tokio::test]
async fn guesses_from_many_networks_of_one_wide_network_are_throttled_together() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.throttle.signin_failures_per_wide_network = 10;
    })
    .await;
    app.user("bill").await;
    let from = |client: &str, username: &str, password: &str| {
        app.client
            .post(app.url("/auth"))
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({"username": username, "password": password}))
    };
    for n in 0..10 {
        let r = app
            .send(from(
                &format!("2001:db8:aaaa:{n:x}::1"),
                &format!("victim{n}"),
                WRONG,
            ))
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // Another /64 of the same /48: throttled, whatever the account.
    let r = app.send(from("2001:db8:aaaa:ff::1", "bill", PASSWORD)).await;
    r.assert_error(429);
    // Another /48 is not; the IPv4 /16 level works the same way.
    let r = app.send(from("2001:db8:bbbb::1", "bill", PASSWORD)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for n in 0..10 {
        let r = app
            .send(from(&format!("198.51.{n}.7"), &format!("victim{n}"), WRONG))
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    app.send(from("198.51.200.7", "bill", PASSWORD))
        .await
        .assert_error(429);
    let r = app.send(from("198.52.0.7", "bill", PASSWORD)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A proxy that writes the client's port into `X-Forwarded-For` does not collapse its clients
/// into the proxy's own network.
#[tokio::test]
async fn forwarded_addresses_with_ports_are_the_clients() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    app.user("bill").await;
    for client in ["203.0.113.7:4711", "[2001:db8::1]:4711", "[2001:db8:1::1]"] {
        let r = app
            .send(
                app.client
                    .post(app.url("/auth"))
                    .header("x-forwarded-for", format!("198.51.100.1, {client}"))
                    .json(&serde_json::json!({"username": "bill", "password": PASSWORD})),
            )
            .await;
        let key = r.key();
        let keys = app
            .send(
                app.client
                    .get(app.url("/auth/keys"))
                    .bearer_auth(&key)
                    .header("x-forwarded-for", client),
            )
            .await;
        let listed = keys.body["data"]["keys"].as_array().unwrap();
        let this = listed.iter().find(|k| k["current"] == true).unwrap();
        let last_ip = this["last_ip"].as_str().unwrap();
        let expected = client
            .trim_start_matches('[')
            .split("]")
            .next()
            .unwrap()
            .trim_end_matches(":4711");
        assert_eq!(last_ip, expected, "{client}");
    }
}

#[tokio::test]
async fn a_refused_new_password_says_the_same_whether_the_current_one_was_right() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let change = |current: &str, new: &str| {
        app.request(
            "PUT",
            "/users/me/password",
            Some(&key),
            Some(serde_json::json!({"current_password": current, "new_password": new})),
        )
    };
    // (A right current password forgives this network's failures: the right ones go first.)
    let right_weak = change(PASSWORD, "password").await;
    let right_control = change(PASSWORD, "x\u{7}y").await;
    let wrong_weak = change(WRONG, "password").await;
    let wrong_control = change(WRONG, "x\u{7}y").await;
    assert_eq!(right_weak.assert_error(400), wrong_weak.assert_error(400));
    assert!(
        right_weak.assert_error(400).starts_with("new_password: "),
        "the error names the field: {}",
        right_weak.text
    );
    assert_eq!(right_control.assert_error(400), wrong_control.assert_error(400));
    // Each wrong current password counted, whatever else the body held: 2 so far, 3 more.
    for new in ["password", "another good passphrase", "another good passphrase"] {
        let r = change(WRONG, new).await;
        assert!(matches!(r.status, 400 | 401), "{}", r.text);
    }
    change(PASSWORD, "another good passphrase")
        .await
        .assert_error(429);
    app.sign_in("bill", PASSWORD).await.assert_error(429);
}

/// Once a name has reached its account-wide failure limit, its 429 takes as long whether or
/// not the name is an account's: the throttled path reads the same rows either way. 429s are
/// not counted, so an attacker could sample them at will; measured side by side, interleaved,
/// as `unknown_names_cost_the_same_as_wrong_passwords` does.
#[tokio::test]
async fn throttled_answers_take_as_long_whether_or_not_the_name_exists() {
    let app = spawn_app_with(|s| {
        crate::helpers::hashing_only(s);
        s.throttle.signin_failures_per_account = 3;
    })
    .await;
    app.user("bill").await;
    // Both names at their account-wide limit, from three networks.
    for name in ["bill", "nobody"] {
        for n in 0..3 {
            let r = app
                .sign_in_from(&format!("127.0.{}.1", 20 + n), name, WRONG)
                .await;
            assert_eq!(r.status, 401, "{}", r.text);
        }
    }
    let client = app.client_from("127.0.40.1");
    let attempt = |name: &'static str| {
        let req = client
            .post(app.url("/auth"))
            .json(&serde_json::json!({"username": name, "password": WRONG}));
        async move {
            let start = Instant::now();
            let status = req.send().await.expect("request").status().as_u16();
            assert_eq!(status, 429, "{name}");
            start.elapsed()
        }
    };
    // Warm up the connection and both paths.
    for _ in 0..20 {
        attempt("bill").await;
        attempt("nobody").await;
    }
    let mut best = f64::MAX;
    let mut rounds = Vec::new();
    for _round in 0..3 {
        let (known, unknown) = interleaved(300, |known| attempt(if known { "bill" } else { "nobody" })).await;
        let (k, u) = (median(known).as_secs_f64(), median(unknown).as_secs_f64());
        rounds.push(format!("{:.1} µs vs {:.1} µs", k * 1e6, u * 1e6));
        best = best.min((k - u).abs() / k.max(u));
        if best < 0.03 {
            break;
        }
    }
    assert!(
        best < 0.03,
        "median throttled answers differ by {:.1}% (existing vs unknown name): {rounds:?}",
        best * 100.0
    );
}

/// Sign-ups (and name probes) from many /64s of one IPv6 /48, or many /24s of one IPv4 /16,
/// count together (`throttle.signups_per_wide_network`), under a concurrent burst: no more
/// accounts than the limit, whatever networks the burst spreads over.
#[tokio::test]
async fn sign_ups_from_many_networks_of_one_wide_network_are_throttled_together() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.server.max_connections_per_address = 10_000;
        s.throttle.signups_per_network = 2;
        s.throttle.signups_per_wide_network = 10;
    })
    .await;
    let sign_up = |client: String, username: String| {
        app.client
            .post(app.url("/users"))
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({"username": username, "password": PASSWORD}))
    };
    // 40 sign-ups from 40 /64s of one /48, all at once: ten pass.
    let statuses = burst(40, |i| {
        sign_up(format!("2001:db8:aaaa:{i:x}::1"), format!("six{i}"))
    })
    .await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 30, "{statuses:?}");
    // Another /48 is not affected; a taken name counts like a new one (it is how names are
    // probed), so probing from a fresh /64 of the full /48 is refused too.
    let r = app
        .send(sign_up("2001:db8:bbbb::1".into(), "other48".into()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .send(sign_up("2001:db8:aaaa:ffff::1".into(), "six0".into()))
        .await;
    r.assert_error(429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // The same for IPv4 /24s within one /16.
    let statuses = burst(30, |i| sign_up(format!("198.51.{i}.7"), format!("four{i}"))).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    let r = app.send(sign_up("198.52.0.7".into(), "other16".into())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The window passes.
    app.clock.advance(Duration::from_secs(3600));
    let r = app
        .send(sign_up("2001:db8:aaaa:ffff::1".into(), "later".into()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
