//! The revocation stream across real server processes on one PostgreSQL database: a stream held
//! open on one instance hears what every instance revokes, within a second and in commit order,
//! and is reset when its instance loses the connection that hears the others.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{database_url, postgres_admin_url, start_binary, Server, PASSWORD};
use crate::revocations::EventStream;

const PROMISE: Duration = Duration::from_secs(1);

/// Two instances of the real binary on one fresh database, and a service key.
async fn two_instances() -> (tempfile::TempDir, Server, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let a = start_binary(dir.path(), &[]).await;
    let b = start_binary(dir.path(), &[]).await;
    let url = database_url(dir.path());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
            .args(["admin", "create-service", "--name", "game_server"])
            .env("KILLBILL_AUTH_DATABASE_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (dir, a, b, key)
}

async fn post(server: &Server, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn sign_in(server: &Server, name: &str) -> String {
    let body = post(server, "/auth", json!({"username": name, "password": PASSWORD})).await;
    body["data"]["key"].as_str().unwrap().to_owned()
}

async fn key_id(server: &Server, key: &str) -> String {
    let r = reqwest::Client::new()
        .get(server.url("/auth"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["data"]["key"]["id"].as_str().unwrap().to_owned()
}

async fn sign_out(server: &Server, key: &str) {
    let r = reqwest::Client::new()
        .delete(server.url("/auth"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_stream_on_one_instance_hears_revocations_on_another_within_a_second() {
    let (_dir, a, b, service) = two_instances().await;
    post(&a, "/users", json!({"username": "bill", "password": PASSWORD})).await;
    let mut events = EventStream::connect(&b.url("/revocations"), &service, None).await;
    let mut delays = Vec::new();
    for _ in 0..20 {
        let key = sign_in(&a, "bill").await;
        let id = key_id(&a, &key).await;
        sign_out(&a, &key).await;
        let revoked = Instant::now();
        let data = events.event(PROMISE).await.revocation();
        delays.push(revoked.elapsed());
        assert_eq!(data["key_id"], id.as_str());
        assert_eq!(data["reason"], "signed_out");
    }
    delays.sort();
    println!(
        "revocation on A to event on B: median {:?}, worst {:?} over {}",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
}

#[tokio::test]
async fn concurrent_revocations_on_both_instances_arrive_in_commit_order_and_none_missing() {
    let (_dir, a, b, service) = two_instances().await;
    let mut keys = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        let body = post(&a, "/users", json!({"username": name, "password": PASSWORD})).await;
        keys.push(body["data"]["key"].as_str().unwrap().to_owned());
        for i in 0..9 {
            keys.push(sign_in(if i % 2 == 0 { &a } else { &b }, name).await);
        }
    }
    let mut expected = HashSet::new();
    for key in &keys {
        expected.insert(key_id(&a, key).await);
    }
    let mut on_a = EventStream::connect(&a.url("/revocations"), &service, None).await;
    let mut on_b = EventStream::connect(&b.url("/revocations"), &service, None).await;
    let mut tasks = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let url = if i % 2 == 0 {
            a.url("/auth")
        } else {
            b.url("/auth")
        };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .delete(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let from_a = on_a.revocations(keys.len(), PROMISE).await;
    let from_b = on_b.revocations(keys.len(), PROMISE).await;
    for got in [&from_a, &from_b] {
        let seqs: Vec<i64> = got.iter().map(|d| d["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let ids: HashSet<String> = got
            .iter()
            .map(|d| d["key_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, expected);
    }
    assert_eq!(from_a, from_b, "both instances stream the same feed");
    on_a.quiet_for(Duration::from_millis(300)).await;
}

/// The listening connections of the database's instances, killed as a network fault would;
/// how many, and when (PostgreSQL's clock, in seconds since the epoch).
async fn kill_listeners(database: &str) -> (u64, f64) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let at: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    (killed.len() as u64, at)
}

/// Listening connections of the database made after `since` (see [`kill_listeners`]).
async fn listeners_since(database: &str, since: f64) -> i64 {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%' \
         AND extract(epoch FROM backend_start) > $2",
    )
    .bind(database)
    .bind(since)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    n
}

#[tokio::test]
async fn a_lost_listener_resets_the_open_streams_then_revocations_flow_again() {
    let (dir, a, b, service) = two_instances().await;
    let url = database_url(dir.path());
    let database = url.rsplit('/').next().unwrap().to_owned();
    post(&a, "/users", json!({"username": "bill", "password": PASSWORD})).await;
    let mut events = EventStream::connect(&b.url("/revocations"), &service, None).await;
    let key = sign_in(&a, "bill").await;
    sign_out(&a, &key).await;
    let before = events.event(PROMISE).await.revocation();

    let (killed, killed_at) = kill_listeners(&database).await;
    assert_eq!(killed, 2, "one listener per instance");
    let killed = Instant::now();
    let reset = events.event(Duration::from_secs(3)).await;
    println!("listener killed to reset on the stream: {:?}", killed.elapsed());
    assert!(reset.is_reset(), "{reset:?}");
    assert!(reset.seq() >= before["seq"].as_i64().unwrap());
    assert!(reset.data.as_deref().unwrap().contains("\"cause\":\"unproven\""));

    // Revocations flow again, at once (the feed is read by seq) and once listening again.
    for round in ["before listening again", "listening again"] {
        if round == "listening again" {
            let start = Instant::now();
            while listeners_since(&database, killed_at).await < 2 {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "the instances listen again"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let key = sign_in(&a, "bill").await;
        let id = key_id(&a, &key).await;
        sign_out(&a, &key).await;
        let revoked = Instant::now();
        let data = events.event(PROMISE).await.revocation();
        println!("{round}: revocation on A to event on B {:?}", revoked.elapsed());
        assert_eq!(data["key_id"], id.as_str());
        assert!(data["seq"].as_i64().unwrap() > reset.seq());
    }
    // One reset for the outage, none when listening resumes.
    events.quiet_for(Duration::from_millis(1500)).await;
}
