//! Races around an account's password and its end, driven as concurrent requests against the
//! real server: a password change is linearizable with every sign-in (API.md, "Routes": no key
//! from the old password survives it, and no sign-in with the old password can write its hash
//! back), and a sign-in that loses a race with the account's deletion is a 401, never a 500.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{hashing_only, spawn_app_with, spawn_in, test_settings, TestApp, PASSWORD};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// Settings for the races: the failure throttles and the per-address connection cap out of the
/// way (the losers of a race are failed sign-ins, and many), and a key limit no race reaches,
/// so that no key is hidden by an eviction.
fn racing(settings: &mut killbill_auth::config::Settings) {
    hashing_only(settings);
    settings.keys.max_per_user = 10_000;
}

/// The ids of the user's live keys (`GET /auth/keys` with `key`).
async fn live_key_ids(app: &TestApp, key: &str) -> Vec<String> {
    let r = app.keys(key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Changes `username`'s password from [`PASSWORD`] to [`NEW_PASSWORD`] with `key`; the new key.
async fn change_password(app: &TestApp, key: &str) -> String {
    let r = app
        .request(
            "PUT",
            "/users/me/password",
            Some(key),
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    r.key()
}

/// After a change: the old password is refused, the new one works, and the only live key is
/// the change's own.
async fn assert_only_the_new_password_and_key(app: &TestApp, username: &str, changed: &str, what: &str) {
    let live = live_key_ids(app, changed).await;
    assert_eq!(
        live.len(),
        1,
        "{what}: a key from the old password survived the change: {live:?}"
    );
    let r = app.sign_in(username, PASSWORD).await;
    assert_eq!(r.status, 401, "{what}: the old password works again: {}", r.text);
    let r = app.sign_in(username, NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{what}: the new password is refused: {}", r.text);
}

/// Sign-ins with the old password loop on several connections while the password changes: a
/// sign-in either completes before the change (and the change revokes its key) or is judged
/// by the new password. Every key the loops got is dead afterwards.
#[tokio::test]
async fn no_key_from_the_old_password_survives_a_change_that_overlaps_its_sign_in() {
    let app = Arc::new(spawn_app_with(racing).await);
    let first = app.user("bill").await;
    let changed = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (app, changed) = (app.clone(), changed.clone());
            tokio::spawn(async move {
                let mut keys = Vec::new();
                let mut after_change = 0;
                // Until each loop has had a few answers that started after the change.
                while after_change < 5 {
                    let started_after = changed.load(Ordering::SeqCst);
                    let r = app.sign_in("bill", PASSWORD).await;
                    match r.status {
                        200 => keys.push(r.key()),
                        401 => {}
                        other => panic!("{other}: {}", r.text),
                    }
                    if started_after {
                        after_change += 1;
                    }
                }
                keys
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let new_key = change_password(&app, &first).await;
    changed.store(true, Ordering::SeqCst);
    let mut issued = Vec::new();
    for l in loops {
        issued.extend(l.await.unwrap());
    }
    assert!(!issued.is_empty(), "the loops signed in before the change");
    assert_only_the_new_password_and_key(&app, "bill", &new_key, "sign-ins").await;
    for key in &issued {
        app.validate(key).await.assert_invalid_key();
    }
}

/// When the stored hash needs upgrading (here: the Argon2 settings were raised), sign-ins with
/// the old password that overlap a change compute an upgrade of the old hash: it must never
/// replace the new password's hash. Several accounts, each raced once.
#[tokio::test]
async fn a_hash_upgrade_cannot_undo_a_password_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    racing(&mut settings);
    settings.password.argon2_memory_kib = 1024;
    let app = spawn_in(dir, &settings).await;
    let racers: Vec<(String, String)> = {
        let mut v = Vec::new();
        for i in 0..4 {
            let name = format!("racer{i}");
            let key = app.user(&name).await;
            v.push((name, key));
        }
        v
    };
    // Raised settings: every stored hash is upgraded at its next successful sign-in.
    let dir = app.stop().await;
    settings.password.argon2_memory_kib = 4096;
    let app = Arc::new(spawn_in(dir, &settings).await);
    for (name, key) in &racers {
        let change = {
            let (app, key) = (app.clone(), key.clone());
            tokio::spawn(async move { change_password(&app, &key).await })
        };
        let sign_ins: Vec<_> = (0..4)
            .map(|i| {
                let (app, name) = (app.clone(), name.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(2 * i)).await;
                    let r = app.sign_in(&name, PASSWORD).await;
                    assert!(matches!(r.status, 200 | 401), "{}: {}", r.status, r.text);
                })
            })
            .collect();
        let new_key = change.await.unwrap();
        for s in sign_ins {
            s.await.unwrap();
        }
        assert_only_the_new_password_and_key(&app, name, &new_key, name).await;
    }
}

/// Sign-ins racing the account's deletion: each answer is a key (then dead) or 401, never a
/// 500 from a key written for an account that is gone.
#[tokio::test]
async fn a_sign_in_racing_the_accounts_deletion_answers_401_never_500() {
    let app = Arc::new(spawn_app_with(racing).await);
    for round in 0..4 {
        let name = format!("leaver{round}");
        let key = app.user(&name).await;
        let sign_ins: Vec<_> = (0..6)
            .map(|_| {
                let (app, name) = (app.clone(), name.clone());
                tokio::spawn(async move {
                    let mut keys = Vec::new();
                    for _ in 0..4 {
                        let r = app.sign_in(&name, PASSWORD).await;
                        match r.status {
                            200 => keys.push(r.key()),
                            401 => {}
                            other => panic!("{other}: {}", r.text),
                        }
                    }
                    keys
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = app
            .request(
                "DELETE",
                "/users/me",
                Some(&key),
                Some(json!({"password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut issued = Vec::new();
        for s in sign_ins {
            issued.extend(s.await.unwrap());
        }
        for key in &issued {
            app.validate(key).await.assert_invalid_key();
        }
        assert_eq!(app.sign_in(&name, PASSWORD).await.status, 401);
    }
}
