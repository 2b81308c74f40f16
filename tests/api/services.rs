//! Service accounts (role `SERVICE`, API.md "Game servers and operators"): made on the command
//! line with a key and no password, admitted on `SERVICE` routes (`POST /auth/tickets/redeem`)
//! and refused on player and administrator routes, exempt from expiry, the anomaly rules and the
//! rate limit, killed by `admin revoke-keys`.

use std::time::Duration;

use killbill_auth::domain::{KeyPolicy, OnLimit};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestResponse, PASSWORD};

const FORBIDDEN: &str = r#"{"success":false,"data":null,"error":"Forbidden"}"#;
const INVALID_TICKET: &str = r#"{"success":false,"data":null,"error":"Invalid ticket"}"#;
const DAY: Duration = Duration::from_secs(86_400);

/// Creates a service account with the real command line; returns its key (stdout, alone).
pub async fn service_key(app: &TestApp, name: &str) -> String {
    let out = app.cli(&["admin", "create-service", "--name", name], "").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the key on stdout: {stdout:?}");
    assert_eq!(lines[0].len(), 44, "{stdout:?}");
    assert!(
        stderr.contains(&format!("created service account {name}")),
        "{stderr}"
    );
    lines[0].to_owned()
}

pub fn assert_forbidden(r: &TestResponse, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    assert_eq!(r.text, FORBIDDEN, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    assert!(
        r.header("www-authenticate").is_none(),
        "{what}: the key itself is fine"
    );
}

/// `POST /auth/tickets/redeem` (a `SERVICE` route) with a ticket that was never issued.
async fn redeem_nothing(app: &TestApp, key: &str, from: Option<&str>) -> TestResponse {
    let mut req = app
        .client
        .post(app.url("/auth/tickets/redeem"))
        .bearer_auth(key)
        .json(&json!({"ticket": "A".repeat(43)}));
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    app.send(req).await
}

/// Whether `key` is still a valid service key: it reaches the `SERVICE` route (which refuses
/// the ticket) while it is valid, `Invalid access key` once it is not.
async fn still_valid(app: &TestApp, key: &str) -> bool {
    let r = redeem_nothing(app, key, None).await;
    match r.status {
        403 if r.text == INVALID_TICKET => true,
        403 => {
            r.assert_invalid_key();
            false
        }
        other => panic!("unexpected {other}: {}", r.text),
    }
}

#[tokio::test]
async fn create_service_prints_the_key_once_and_refuses_taken_and_invalid_names() {
    let app = spawn_app().await;
    let key = service_key(&app, "matchmaker").await;
    assert!(still_valid(&app, &key).await);

    let out = app.cli(&["admin", "list-users"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.lines().any(|l| l.contains("\tmatchmaker\tSERVICE\t")),
        "{listing}"
    );

    app.user("bill").await;
    for taken in ["MatchMaker", "bill"] {
        let out = app.cli(&["admin", "create-service", "--name", taken], "").await;
        assert!(!out.status.success(), "{taken}");
        assert!(out.stdout.is_empty(), "{taken}: no key printed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("already taken"), "{taken}: {stderr}");
    }
    for invalid in ["gs", "game server", "a_name_far_too_long_for_us"] {
        let out = app.cli(&["admin", "create-service", "--name", invalid], "").await;
        assert!(!out.status.success(), "{invalid}");
        assert!(out.stdout.is_empty(), "{invalid}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("username"), "{invalid}: {stderr}");
    }
    // A player cannot take a service's name either.
    assert_eq!(app.sign_up("MATCHMAKER", PASSWORD).await.status, 409);
}

#[tokio::test]
async fn a_service_name_signs_in_as_a_name_that_matches_no_account() {
    let app = spawn_app().await;
    service_key(&app, "matchmaker").await;
    let service = app.sign_in("matchmaker", PASSWORD).await;
    let unknown = app.sign_in("nobody_here", PASSWORD).await;
    assert_eq!(
        service.assert_error(401),
        "Invalid username or password",
        "{}",
        service.text
    );
    assert_eq!(service.text, unknown.text);
    // Whatever is typed as the password: there is none to match.
    for password in ["", "x", "matchmaker"] {
        let r = app.sign_in("MatchMaker", password).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.text, unknown.text);
    }
}

#[tokio::test]
async fn service_keys_are_refused_on_player_and_admin_routes() {
    let app = spawn_app().await;
    let key = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    let bill_id = app.request("GET", "/users/me", Some(&bill), None).await.body["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bill_key_id = app.validate(&bill).await.body["data"]["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let routes = [
        ("GET", "/auth".to_owned(), None),
        ("HEAD", "/auth".to_owned(), None),
        ("DELETE", "/auth".to_owned(), None),
        ("DELETE", "/auth?all=true".to_owned(), None),
        ("GET", "/auth/keys".to_owned(), None),
        ("DELETE", format!("/auth/keys/{bill_key_id}"), None),
        ("GET", "/users/me".to_owned(), None),
        (
            "PUT",
            "/users/me/password".to_owned(),
            Some(json!({"current_password": PASSWORD, "new_password": "an entirely new passphrase"})),
        ),
        (
            "DELETE",
            "/users/me".to_owned(),
            Some(json!({"password": PASSWORD})),
        ),
        ("POST", "/auth/tickets".to_owned(), None),
        ("GET", "/admin/users".to_owned(), None),
        ("DELETE", format!("/admin/users/{bill_id}/keys"), None),
        ("DELETE", format!("/admin/users/{bill_id}"), None),
    ];
    for (method, path, body) in routes {
        let r = app.request(method, &path, Some(&key), body).await;
        if method == "HEAD" {
            assert_eq!(r.status, 403, "HEAD /auth");
            continue;
        }
        assert_forbidden(&r, &format!("{method} {path}"));
    }
    // Nothing happened: the service key and bill's key both still work.
    assert!(still_valid(&app, &key).await);
    assert_eq!(app.validate(&bill).await.status, 200);
}

#[tokio::test]
async fn service_keys_are_exempt_from_networks_floods_the_rate_limit_and_expiry() {
    let app = spawn_app_with(|s| {
        s.anomaly.max_networks = 2;
        s.anomaly.flood_max_requests = 20;
        s.rate_limit.key_per_second = 1;
        s.rate_limit.key_burst = 3;
        s.keys.idle_timeout = killbill_auth::config::HumanDuration(DAY);
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let key = service_key(&app, "matchmaker").await;
    let player = app.user("bill").await;
    // 60 requests from 60 networks through a trusted proxy, far past every line, on a SERVICE
    // route: each reaches it (and is told the ticket is invalid), never 429 nor Invalid access
    // key.
    for i in 0..60 {
        let r = redeem_nothing(&app, &key, Some(&format!("198.51.{i}.7"))).await;
        assert_eq!(r.text, INVALID_TICKET, "request {i}");
    }
    // On a player route it is Forbidden, wherever it comes from.
    let req = app
        .client
        .get(app.url("/users/me"))
        .bearer_auth(&key)
        .header("x-forwarded-for", "192.0.2.1");
    assert_forbidden(&app.send(req).await, "a player route");
    // A player's key is held to them: the third network revokes it.
    for (i, expected) in [(1, 200), (2, 403)] {
        let req = app
            .client
            .get(app.url("/auth"))
            .bearer_auth(&player)
            .header("x-forwarded-for", format!("203.0.{i}.9"));
        assert_eq!(app.send(req).await.status, expected, "player from network {i}");
    }
    // Past the idle timeout and the lifetime: still valid, and housekeeping leaves it live.
    app.clock.advance(400 * DAY);
    let policy = KeyPolicy {
        lifetime: 180 * DAY,
        idle_timeout: Some(DAY),
        max_per_user: 10,
        on_limit: OnLimit::Evict,
    };
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    app.clock.advance(2 * DAY);
    let now = killbill_auth::clock::Clock::now(app.clock.as_ref());
    assert_eq!(
        app.store.expire_keys(&policy, now).await.unwrap(),
        1,
        "only the player's idle key"
    );
    app.validate(&fresh).await.assert_invalid_key();
    assert!(still_valid(&app, &key).await);
}

#[tokio::test]
async fn revoke_keys_kills_a_service_key_and_delete_user_removes_the_account() {
    let app = spawn_app().await;
    let key = service_key(&app, "matchmaker").await;
    assert!(still_valid(&app, &key).await, "cached by the server");
    let out = app
        .cli(&["admin", "revoke-keys", "--username", "MatchMaker"], "")
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1 key(s) of matchmaker"));
    let mut valid = true;
    for _ in 0..50 {
        valid = still_valid(&app, &key).await;
        if !valid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!valid, "the service key still works 5 s after revoke-keys");

    let out = app
        .cli(&["admin", "delete-user", "--username", "matchmaker"], "")
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = app.cli(&["admin", "list-users"], "").await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("matchmaker"));
    // The name is free again: a new service account, a new key.
    let again = service_key(&app, "matchmaker").await;
    assert!(still_valid(&app, &again).await);
}
