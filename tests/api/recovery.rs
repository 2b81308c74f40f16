//! Account recovery without e-mail (API.md, "Accounts and passwords"): reset codes issued by an
//! administrator (`POST /admin/users/{id}/reset-code`, `admin reset-code`) and redeemed by the
//! player (`POST /users/reset`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::abuse::{burst, count};
use crate::admin::{admin_key, user_id};
use crate::helpers::{hashing_only, spawn_app, spawn_app_with, TestApp, TestResponse, PASSWORD};
use killbill_auth::clock::Clock;
use killbill_auth::domain::Timestamp;

const NEW_PASSWORD: &str = "a brand new passphrase 42";
const INVALID: &str = "Invalid username or code";

async fn issue(app: &TestApp, admin: &str, id: &str, body: Option<Value>) -> TestResponse {
    app.request(
        "POST",
        &format!("/admin/users/{id}/reset-code"),
        Some(admin),
        body,
    )
    .await
}

/// A code issued over HTTP (with `{}`), checked as API.md gives it.
async fn code_for(app: &TestApp, admin: &str, id: &str) -> String {
    let r = issue(app, admin, id, Some(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let code = r.body["data"]["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 19, "{code}");
    code
}

async fn reset(app: &TestApp, username: &str, code: &str, new_password: &str) -> TestResponse {
    app.request(
        "POST",
        "/users/reset",
        None,
        Some(json!({"username": username, "code": code, "new_password": new_password})),
    )
    .await
}

#[tokio::test]
async fn a_reset_code_works_once_revokes_every_key_and_is_recorded() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let first = app.user("bill").await;
    let second = app.sign_in("bill", PASSWORD).await.key();
    let id = user_id(&app, &first).await;

    let r = issue(&app, &admin, &id, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let code = r.body["data"]["code"].as_str().unwrap().to_owned();
    let expires = Timestamp::parse_rfc3339(r.body["data"]["expires"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires,
        app.clock.now().plus(Duration::from_secs(86_400)),
        "24 h by default"
    );

    // Redeemed as typed by a person: lower case, no dashes.
    let typed = code.replace('-', " ").to_lowercase();
    let r = reset(&app, "BILL", &typed, NEW_PASSWORD).await;
    let key = r.key();
    for old in [&first, &second] {
        app.validate(old).await.assert_invalid_key();
    }
    assert_eq!(app.validate(&key).await.status, 200);
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 401);
    assert_eq!(app.sign_in("bill", NEW_PASSWORD).await.status, 200);
    let keys = app.keys(&key).await;
    let revoked = keys.body["data"]["revoked"].as_array().unwrap();
    assert_eq!(revoked.len(), 2, "{}", keys.text);
    assert!(
        revoked.iter().all(|k| k["reason"] == "password_changed"),
        "{}",
        keys.text
    );

    // Spent: once only.
    let r = reset(&app, "bill", &code, "yet another fine passphrase").await;
    assert_eq!(r.assert_error(401), INVALID);
    assert_eq!(app.sign_in("bill", NEW_PASSWORD).await.status, 200);

    // Recorded for the owner and the operators, never with the code.
    let events = app.request("GET", "/users/me/events", Some(&key), None).await;
    let kinds: Vec<&str> = events.body["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"password_reset"), "{kinds:?}");
    assert!(kinds.contains(&"reset_code_issued"), "{kinds:?}");
    let all = app
        .request("GET", &format!("/admin/events?user={id}"), Some(&admin), None)
        .await;
    assert!(
        !all.text.contains(&code) && !all.text.contains(&code.replace('-', "")),
        "{}",
        all.text
    );
    let issued = all.body["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reset_code_issued")
        .unwrap()
        .clone();
    assert_eq!(
        issued["actor_id"],
        user_id(&app, &admin).await.as_str(),
        "{issued}"
    );
}

#[tokio::test]
async fn a_code_expires_a_newer_one_voids_the_older_and_the_lifetime_is_bounded() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let bill = app.user("bill").await;
    let id = user_id(&app, &bill).await;
    // On the command line, while the server runs.
    let out = app
        .cli(
            &["admin", "reset-code", "--username", "bill", "--lifetime", "1h"],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let older = line
        .strip_prefix("reset code for bill: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert!(
        line.trim_end().ends_with(')') && line.contains("(expires "),
        "{line}"
    );
    let newer = code_for(&app, &admin, &id).await;
    assert_eq!(
        reset(&app, "bill", &older, NEW_PASSWORD).await.assert_error(401),
        INVALID,
        "voided"
    );
    // Expired.
    app.clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        reset(&app, "bill", &newer, NEW_PASSWORD).await.assert_error(401),
        INVALID,
        "expired"
    );
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
    // A short one works within its lifetime.
    let r = issue(&app, &admin, &id, Some(json!({"lifetime": "30m"}))).await;
    let code = r.body["data"]["code"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(reset(&app, "bill", &code, NEW_PASSWORD).await.status, 200);

    // Bounds and bad input.
    for (body, says) in [
        (json!({"lifetime": "8d"}), "lifetime: must be at most 7d"),
        (json!({"lifetime": "0s"}), "lifetime: must be longer than 0s"),
        (json!({"lifetime": "soon"}), "lifetime: invalid duration"),
        (json!({"lifetime": 3600}), "lifetime: invalid type"),
        (json!({"lifespan": "1h"}), "lifespan"),
    ] {
        let r = issue(&app, &admin, &id, Some(body.clone())).await;
        assert!(r.assert_error(400).contains(says), "{body}: {}", r.text);
    }
    let r = issue(&app, &admin, "00000000-0000-0000-0000-000000000000", None).await;
    r.assert_error(404);
    let service = crate::services::service_key(&app, "matchmaker").await;
    let users = app.request("GET", "/admin/users", Some(&admin), None).await;
    let service_id = users.body["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "matchmaker")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = issue(&app, &admin, &service_id, None).await;
    assert_eq!(r.assert_error(400), "service accounts have no password to reset");
    // Only administrators issue codes.
    crate::services::assert_forbidden(&issue(&app, &service, &id, None).await, "a service key");
    let r = issue(&app, &bill, &id, None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let out = app
        .cli(&["admin", "reset-code", "--username", "matchmaker"], "")
        .await;
    assert_eq!(out.status.code(), Some(1));
    let out = app
        .cli(
            &["admin", "reset-code", "--username", "bill", "--lifetime", "9d"],
            "",
        )
        .await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn a_suspended_account_can_be_reset_and_stays_suspended() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let bill = app.user("bill").await;
    let id = user_id(&app, &bill).await;
    let code = code_for(&app, &admin, &id).await;
    let r = app
        .request(
            "PUT",
            &format!("/admin/users/{id}/suspension"),
            Some(&admin),
            Some(json!({"reason": "chargeback", "until": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = reset(&app, "bill", &code, NEW_PASSWORD).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"], "Account suspended");
    assert_eq!(r.body["data"]["suspension"]["reason"], "chargeback");
    // The new password is set all the same: it is the one that answers "suspended".
    let r = app.sign_in("bill", NEW_PASSWORD).await;
    assert_eq!(r.body["error"], "Account suspended", "{}", r.text);
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 401);
    let r = app
        .request(
            "DELETE",
            &format!("/admin/users/{id}/suspension"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.sign_in("bill", NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_weak_new_password_is_refused_and_the_code_kept() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let bill = app.user("bill").await;
    let id = user_id(&app, &bill).await;
    let code = code_for(&app, &admin, &id).await;
    let r = reset(&app, "bill", &code, "passwordpassword").await;
    assert!(r.assert_error(400).starts_with("new_password: "), "{}", r.text);
    // A wrong code with a weak password says only that the code is wrong.
    let r = reset(&app, "bill", "0000-0000-0000-0000", "passwordpassword").await;
    assert_eq!(r.assert_error(401), INVALID);
    assert_eq!(app.validate(&bill).await.status, 200, "nothing changed");
    assert_eq!(reset(&app, "bill", &code, NEW_PASSWORD).await.status, 200);
    // Malformed input is a 400 naming the field.
    let r = app
        .request(
            "POST",
            "/users/reset",
            None,
            Some(json!({"username": "bill", "code": 7})),
        )
        .await;
    assert!(r.assert_error(400).starts_with("code: "), "{}", r.text);
}

/// Wrong codes count as failed sign-ins: a concurrent burst gets exactly the limit's answers
/// (`throttle.signin_failures_per_account_network`, 5) and 429 for the rest, the right code
/// included while it lasts; then sign-ins are throttled as well.
#[tokio::test]
async fn a_burst_of_wrong_codes_is_held_to_the_sign_in_throttle() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let bill = app.user("bill").await;
    let id = user_id(&app, &bill).await;
    let code = code_for(&app, &admin, &id).await;
    let statuses = burst(40, |i| {
        app.client.post(app.url("/users/reset")).json(&json!({
            "username": "bill",
            "code": format!("0000-0000-0000-{i:04}"),
            "new_password": NEW_PASSWORD,
        }))
    })
    .await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 35, "{statuses:?}");
    let r = reset(&app, "bill", &code, NEW_PASSWORD).await;
    r.assert_error(429);
    assert!(r.header("retry-after").is_some());
    app.sign_in("bill", PASSWORD).await.assert_error(429);
    // Another network is not held back.
    let r = app
        .send(
            app.client_from("127.0.9.1")
                .post(app.url("/users/reset"))
                .json(&json!({
                    "username": "bill", "code": code, "new_password": NEW_PASSWORD,
                })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A wrong code for an existing account and any code for a name that matches none take the same
/// time, measured side by side as `unknown_names_cost_the_same_as_wrong_passwords` does.
#[tokio::test]
async fn wrong_codes_and_unknown_names_take_the_same_time() {
    let app = spawn_app_with(|s| {
        hashing_only(s);
        s.throttle.signin_failures_per_wide_network = 10_000;
    })
    .await;
    let admin = admin_key(&app).await;
    let bill = app.user("bill").await;
    let id = user_id(&app, &bill).await;
    code_for(&app, &admin, &id).await;
    let client = app.client_from("127.0.30.1");
    let attempt = |name: String| {
        let req = client.post(app.url("/users/reset")).json(&json!({
            "username": name, "code": "0000-0000-0000-0000", "new_password": NEW_PASSWORD,
        }));
        async move {
            let start = Instant::now();
            let status = req.send().await.expect("request").status().as_u16();
            assert_eq!(status, 401);
            start.elapsed()
        }
    };
    // One unknown name throughout, as one account: each collects the same failures in its
    // counters, which every attempt reads.
    for _ in 0..20 {
        attempt("bill".into()).await;
        attempt("nobody".into()).await;
    }
    let mut best = f64::MAX;
    let mut rounds = Vec::new();
    for _round in 0..3 {
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for i in 0..150 {
            let nobody = "nobody".to_owned();
            if i % 2 == 0 {
                known.push(attempt("bill".into()).await);
                unknown.push(attempt(nobody).await);
            } else {
                unknown.push(attempt(nobody).await);
                known.push(attempt("bill".into()).await);
            }
        }
        let (k, u) = (median(known).as_secs_f64(), median(unknown).as_secs_f64());
        rounds.push(format!("{:.1} µs vs {:.1} µs", k * 1e6, u * 1e6));
        best = best.min((k - u).abs() / k.max(u));
        if best < 0.05 {
            break;
        }
    }
    assert!(
        best < 0.05,
        "median answers differ by {:.1}%: {rounds:?}",
        best * 100.0
    );
}
