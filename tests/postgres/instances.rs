//! Several real server processes on one PostgreSQL database behave as one service (API.md,
//! "Running"): what one instance writes, revokes or counts, every other one honours.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{database_url, start_binary, Server, PASSWORD};

const WRONG: &str = "definitely not the password";

async fn post(client: &reqwest::Client, server: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = client.post(server.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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

fn key_of(body: &Value) -> String {
    body["data"]["key"].as_str().unwrap().to_owned()
}

/// Two instances of the real binary on one fresh database.
async fn two_instances(env: &[(&str, &str)]) -> (tempfile::TempDir, Server, Server) {
    let dir = tempfile::tempdir().unwrap();
    let a = start_binary(dir.path(), env).await;
    let b = start_binary(dir.path(), env).await;
    (dir, a, b)
}

#[tokio::test]
async fn an_account_made_on_one_instance_signs_in_on_another() {
    let (_dir, a, b) = two_instances(&[]).await;
    let client = reqwest::Client::new();
    let (status, _) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &client,
        &b,
        "/auth",
        json!({"username": "BILL", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key = key_of(&body);
    assert_eq!(validate(&client, &a, &key).await, 200);
    assert_eq!(validate(&client, &b, &key).await, 200);
    let (status, _) = post(
        &client,
        &b,
        "/users",
        json!({"username": "Bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 409, "the name is taken on every instance");
}

/// A key revoked on A is refused by B (which had it cached) within a second: measured over many
/// revocations, median and worst printed.
#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_by_the_other_within_a_second() {
    let (_dir, a, b) = two_instances(&[]).await;
    let client = reqwest::Client::new();
    let (status, _) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let mut delays = Vec::new();
    for _ in 0..20 {
        let (_, body) = post(
            &client,
            &a,
            "/auth",
            json!({"username": "bill", "password": PASSWORD}),
        )
        .await;
        let key = key_of(&body);
        // B reads it and caches it.
        assert_eq!(validate(&client, &b, &key).await, 200);
        let r = client
            .delete(a.url("/auth"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let revoked = Instant::now();
        loop {
            if validate(&client, &b, &key).await == 403 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "B still accepts a key revoked on A"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delays.push(revoked.elapsed());
    }
    delays.sort();
    println!(
        "revocation from A refused by B: median {:?}, worst {:?} over {} revocations",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
}

/// Concurrent sign-ins of one user on both instances never leave more than `max_per_user` live keys.
#[tokio::test]
async fn concurrent_sign_ins_on_two_instances_respect_the_key_limit() {
    let (_dir, a, b) = two_instances(&[("KILLBILL_AUTH_KEYS_MAX_PER_USER", "3")]).await;
    let client = reqwest::Client::new();
    let (status, _) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 {
            a.url("/auth")
        } else {
            b.url("/auth")
        };
        // Each from its own network: from one network, attempts in flight count against its
        // throttle (5) until their passwords prove right.
        let client = reqwest::Client::builder()
            .local_address(format!("127.0.{}.1", 10 + i).parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"username": "bill", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        keys.push(key_of(&body));
    }
    // Ask with one key that is still live: the listing counts live keys.
    let mut live = 0;
    let mut listing = Value::Null;
    for key in &keys {
        let r = client
            .get(b.url("/auth/keys"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            live += 1;
            listing = r.json().await.unwrap();
        }
    }
    assert_eq!(live, 3, "live keys among the 20 issued");
    assert_eq!(listing["data"]["keys"].as_array().unwrap().len(), 3, "{listing}");
}

/// Wrong guesses split across two instances count together, exactly.
#[tokio::test]
async fn a_throttle_split_across_two_instances_holds_exactly() {
    let (_dir, a, b) = two_instances(&[]).await;
    let client = reqwest::Client::new();
    let (status, _) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = if i % 2 == 0 {
            a.url("/auth")
        } else {
            b.url("/auth")
        };
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": "bill", "password": WRONG}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35, "{statuses:?}");
    let (status, _) = post(
        &client,
        &b,
        "/auth",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        status, 429,
        "the right password does not bypass the throttle on either instance"
    );
}

/// The admin command line revokes while both instances serve: both refuse at once.
#[tokio::test]
async fn the_admin_command_line_revokes_on_every_instance() {
    let (dir, a, b) = two_instances(&[]).await;
    let client = reqwest::Client::new();
    let (_, body) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    let key = key_of(&body);
    assert_eq!(validate(&client, &a, &key).await, 200);
    assert_eq!(validate(&client, &b, &key).await, 200);
    let url = database_url(dir.path());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
            .args(["admin", "revoke-keys", "--username", "bill"])
            .env("KILLBILL_AUTH_DATABASE_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let revoked = Instant::now();
    for server in [&a, &b] {
        while validate(&client, server, &key).await != 403 {
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "an instance still accepts the key"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn validate_from(server: &Server, ip: &str, key: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    validate(&client, server, key).await
}

/// Polls until both instances refuse `key`, for at most `limit`; returns how long it took.
async fn refused_by_both(a: &Server, b: &Server, key: &str, limit: Duration) -> Option<Duration> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < limit {
        if validate(&client, a, key).await == 403 && validate(&client, b, key).await == 403 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A key used from two networks on A and two on B (its issuing network counts on both) is used
/// from three networks in all: with `max_networks = 2` both instances end up refusing it,
/// although neither saw more than two.
#[tokio::test]
async fn networks_split_across_instances_revoke_on_both() {
    let (_dir, a, b) = two_instances(&[("KILLBILL_AUTH_ANOMALY_MAX_NETWORKS", "2")]).await;
    let client = reqwest::Client::new();
    let (_, body) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    let key = key_of(&body);
    assert_eq!(validate_from(&a, "127.0.1.1", &key).await, 200);
    assert_eq!(validate_from(&b, "127.0.2.1", &key).await, 200);
    let took = refused_by_both(&a, &b, &key, Duration::from_secs(5)).await;
    assert!(took.is_some(), "three networks in all, and the key still works");
    println!("networks split across two instances: refused by both after {took:?}");
}

/// A flood split across two instances: each serves fewer requests than the limit, together
/// more; both end up refusing the key.
#[tokio::test]
async fn a_flood_split_across_instances_revokes_on_both() {
    let (_dir, a, b) = two_instances(&[("KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS", "40")]).await;
    let client = reqwest::Client::new();
    let (_, body) = post(
        &client,
        &a,
        "/users",
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    let key = key_of(&body);
    for server in [&a, &b] {
        for _ in 0..25 {
            assert_eq!(validate(&client, server, &key).await, 200);
        }
    }
    let took = refused_by_both(&a, &b, &key, Duration::from_secs(5)).await;
    assert!(
        took.is_some(),
        "50 requests in all against a limit of 40, and the key still works"
    );
    println!("flood split across two instances: refused by both after {took:?}");
}
