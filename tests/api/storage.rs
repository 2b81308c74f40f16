//! What reaches the disk: hashes and digests only, durably, and upgraded when parameters change.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row, SqliteConnection};

use crate::helpers::{db_path, spawn_app, spawn_in, start_binary, test_settings, PASSWORD};

async fn open(dir: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", db_path(dir).display()))
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file of the database: main file, WAL and shared memory.
fn database_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("killbill-auth.db"))
        // A file listed may be gone when it is read (SQLite removes its journal files as it
        // goes): what is not there holds nothing.
        .filter_map(|e| match std::fs::read(e.path()) {
            Ok(bytes) => Some((e.file_name().to_string_lossy().into_owned(), bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => panic!("{}: {err}", e.path().display()),
        })
        .collect()
}

fn assert_no_secrets(files: &[(String, Vec<u8>)], password: &str, keys: &[String]) {
    assert!(!files.is_empty());
    for (name, bytes) in files {
        assert!(!contains(bytes, password.as_bytes()), "password in {name}");
        for key in keys {
            let raw = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
            assert!(!contains(bytes, key.as_bytes()), "key text in {name}");
            assert!(!contains(bytes, &raw), "key bytes in {name}");
        }
    }
}

#[tokio::test]
async fn the_database_holds_only_argon2id_hashes_and_key_digests() {
    let app = spawn_app().await;
    let password = "a distinctive passphrase 7731";
    let k1 = app.sign_up("bill", password).await.key();
    let k2 = app.sign_in("bill", password).await.key();
    assert_eq!(app.validate(&k2).await.status, 200);
    assert_no_secrets(
        &database_bytes(app.dir.path()),
        password,
        &[k1.clone(), k2.clone()],
    );
    let dir = app.stop().await;
    assert_no_secrets(&database_bytes(dir.path()), password, &[k1.clone(), k2.clone()]);

    let mut db = open(dir.path()).await;
    let phc: String = sqlx::query_scalar("SELECT phc FROM password_hashes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
    let digests: Vec<Vec<u8>> = sqlx::query_scalar("SELECT digest FROM keys")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for key in [&k1, &k2] {
        let raw = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
        let digest = Sha256::digest(&raw).to_vec();
        assert!(digests.contains(&digest));
    }
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn salts_are_fresh_for_every_hash() {
    let app = spawn_app().await;
    for name in ["ann", "ben", "cat"] {
        app.user(name).await;
    }
    let dir = app.stop().await;
    let mut db = open(dir.path()).await;
    let rows = sqlx::query("SELECT phc FROM password_hashes")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let salts: std::collections::HashSet<String> = rows
        .iter()
        .map(|r| r.get::<String, _>("phc").split('$').nth(4).unwrap().to_owned())
        .collect();
    assert_eq!(salts.len(), 3);
    for salt in &salts {
        assert!(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(salt)
                .unwrap()
                .len()
                >= 16
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_writes_pending_key_usage() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let r = app
        .send(
            app.client
                .get(app.url("/auth"))
                .bearer_auth(&key)
                .header("user-agent", "KB2-test"),
        )
        .await;
    assert_eq!(r.status, 200);
    let last_used = r.body["data"]["key"]["last_used"].as_str().unwrap().to_owned();
    let dir = app.stop().await;
    let mut db = open(dir.path()).await;
    let row = sqlx::query("SELECT last_used_ms, last_ip, user_agent FROM keys")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let ms: i64 = row.get("last_used_ms");
    assert_eq!(
        killbill_auth::domain::Timestamp::from_millis(ms).to_rfc3339(),
        last_used
    );
    assert_eq!(row.get::<String, _>("last_ip"), "127.0.0.1");
    assert_eq!(row.get::<String, _>("user_agent"), "KB2-test");
}

#[tokio::test]
async fn hashes_are_upgraded_at_sign_in_when_the_parameters_change() {
    let app = spawn_app().await;
    app.user("bill").await;
    let dir = app.stop().await;

    let mut settings = test_settings(dir.path());
    settings.password.argon2_memory_kib = 128;
    settings.password.argon2_iterations = 2;
    let app = spawn_in(dir, &settings).await;
    assert_eq!(
        app.sign_in("bill", "wrong password, no upgrade").await.status,
        401
    );
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
    let dir = app.stop().await;
    let mut db = open(dir.path()).await;
    let phc: String = sqlx::query_scalar("SELECT phc FROM password_hashes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=128,t=2,p=1$"), "{phc}");
    drop(db);
    let app = spawn_in(dir, &settings).await;
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_copied_database_is_useless_without_the_pepper() {
    let pepper = || Some(SecretString::from("sixteen+ bytes of pepper"));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.password.pepper = pepper();
    let app = spawn_in(dir, &settings).await;
    app.user("bill").await;
    let dir = app.stop().await;
    // Without the pepper the service refuses to start (the pepper's verifier, API.md)...
    let no_pepper = test_settings(dir.path());
    let clock = std::sync::Arc::new(killbill_auth::clock::ManualClock::starting_now());
    let refused = killbill_auth::startup::Application::build(&no_pepper, clock).await;
    let error = refused.err().expect("refused without the pepper").to_string();
    assert!(error.starts_with("password.pepper is not set"), "{error}");
    // ...and a copy whose verifier was taken out, as a thief could, signs nobody in.
    let mut db = open(dir.path()).await;
    sqlx::query("DELETE FROM service_secrets WHERE name = 'pepper_verifier'")
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);
    let app = spawn_in(dir, &no_pepper).await;
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 401);
    let dir = app.stop().await;
    let mut db = open(dir.path()).await;
    sqlx::query("DELETE FROM service_secrets WHERE name = 'pepper_verifier'")
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);
    let app = spawn_in(dir, &settings).await;
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn kill_9_right_after_an_answer_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let creds = serde_json::json!({"username": "durable", "password": PASSWORD});

    let mut server = start_binary(dir.path(), &[]).await;
    let r = client
        .post(server.url("/users"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let signup_key = body["data"]["key"].as_str().unwrap().to_owned();
    let r = client
        .post(server.url("/auth"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let signin_key = body["data"]["key"].as_str().unwrap().to_owned();
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();

    let mut server = start_binary(dir.path(), &[]).await;
    for key in [&signup_key, &signin_key] {
        let r = client
            .get(server.url("/auth"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a key acknowledged before the kill still works");
    }
    let r = client
        .post(server.url("/auth"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the account acknowledged before the kill still exists"
    );

    // Graceful stop on SIGTERM.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("killbill-auth listening"));
    assert!(log.contains("stopped"), "graceful shutdown is logged");
    for secret in [PASSWORD, &signup_key, &signin_key] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    let mut db = open(dir.path()).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[anomaly]\nmax_netwroks = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_netwroks"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
        .arg("serve")
        .env("KILLBILL_AUTH_KEYS_LIFETIME", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lifetime") && stderr.contains("forever"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_sweep_marks_keys_that_expired_unused() {
    use killbill_auth::clock::Clock;
    let app = spawn_app().await;
    app.user("bill").await;
    app.clock.advance(std::time::Duration::from_secs(181 * 86_400));
    let policy = killbill_auth::domain::KeyPolicy {
        lifetime: std::time::Duration::from_secs(180 * 86_400),
        idle_timeout: None,
        max_per_user: 10,
        on_limit: killbill_auth::domain::OnLimit::Evict,
    };
    assert_eq!(app.store.expire_keys(&policy, app.clock.now()).await.unwrap(), 1);
    assert_eq!(
        app.store.expire_keys(&policy, app.clock.now()).await.unwrap(),
        0,
        "only once"
    );
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&fresh).await;
    let revoked = &listed.body["data"]["revoked"][0];
    assert_eq!(revoked["reason"], "expired");
    let created = chrono::DateTime::parse_from_rfc3339(revoked["created"].as_str().unwrap()).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(revoked["revoked"].as_str().unwrap()).unwrap();
    assert_eq!((at - created).num_days(), 180);
    assert_eq!(
        app.validate(&fresh).await.status,
        200,
        "the fresh key is untouched"
    );
}

/// API.md, "Running": the data directory and the database are created owner-only (the hashes
/// are in it); SQLite gives its `-wal` and `-shm` files the main file's mode.
#[tokio::test]
async fn the_database_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("new").join("data");
    let settings = test_settings(&data);
    let app = spawn_in(root, &settings).await;
    app.user("bill").await;
    for dir in [app.dir.path().join("new"), data.clone()] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("killbill-auth.db")
        })
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    app.stop().await;
}

/// A stored hash far costlier than the configured parameters (here 4 GiB of memory, a tampered
/// row) is refused without being computed: the right password gets a quick 401, like a wrong
/// one, and the refusal is counted.
#[tokio::test]
async fn a_tampered_hash_far_costlier_than_configured_is_refused_quickly() {
    let app = spawn_app().await;
    app.user("bill").await;
    let mut db = open(app.dir.path()).await;
    sqlx::query("UPDATE password_hashes SET phc = ?")
        .bind(
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA\
             $aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        )
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let started = std::time::Instant::now();
    let r = app.sign_in("bill", PASSWORD).await;
    r.assert_error(401);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let metrics = app.request("GET", "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "killbill_auth_password_hashes_refused_total 1"),
        "{}",
        metrics.text
    );
}
