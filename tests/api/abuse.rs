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

/// The median of a handful of durations.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

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
    let mut best = f64::MAX;
    // A noisy machine can spoil one round; the rule holds if one of three rounds shows it.
    for _round in 0..3 {
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for i in 0..25 {
            let start = Instant::now();
            assert_eq!(app.sign_in("bill", WRONG).await.status, 401);
            known.push(start.elapsed());
            let start = Instant::now();
            assert_eq!(app.sign_in(&format!("nobody{i}"), WRONG).await.status, 401);
            unknown.push(start.elapsed());
        }
        let (k, u) = (median(known).as_secs_f64(), median(unknown).as_secs_f64());
        let diff = (k - u).abs() / k.max(u);
        best = best.min(diff);
        if best < 0.10 {
            break;
        }
    }
    assert!(best < 0.10, "median sign-in times differ by {:.1}%", best * 100.0);
}
