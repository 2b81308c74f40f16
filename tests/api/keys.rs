//! `GET /auth`, `DELETE /auth`, `GET /auth/keys`, `DELETE /auth/keys/{id}`; expiry and eviction.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};

const DAY: Duration = Duration::from_secs(86_400);

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn current_key_id(app: &TestApp, key: &str) -> String {
    let r = app.validate(key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["key"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn validation_returns_user_key_and_forward_auth_headers() {
    let app = spawn_app().await;
    let key = app.user("Bill").await;
    let r = app
        .send(
            app.client
                .get(app.url("/auth"))
                .bearer_auth(&key)
                .header("user-agent", "KillBill/2.0 (Android)"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = &r.body["data"];
    assert_eq!(data["user"]["name"], "Bill");
    assert_eq!(r.header("x-auth-username"), Some("Bill"));
    assert_eq!(r.header("x-auth-user-id"), data["user"]["id"].as_str());
    let k = &data["key"];
    assert_eq!(k["current"], true);
    assert_eq!(k["last_ip"], "127.0.0.1");
    assert_eq!(k["user_agent"], "KillBill/2.0 (Android)");
    assert!(k["last_used"].is_string());
    // expires = created + 180 days by default.
    let created = chrono::DateTime::parse_from_rfc3339(k["created"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(k["expires"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_days(), 180);
    assert!(r.text.find(&key).is_none(), "the key itself is never echoed");
}

/// `GET /auth` is answered by the connection's fast path, `HEAD /auth` by the router's route
/// (see `src/http/connection.rs`): both must give the same status and headers.
#[tokio::test]
async fn validation_answers_alike_through_the_fast_path_and_the_router() {
    let app = spawn_app().await;
    let key = app.user("Bill").await;
    let headers_of = |r: &crate::helpers::TestResponse| {
        let mut names: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| !["date", "x-request-id", "content-length"].contains(&k.as_str()))
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        names.sort();
        names
    };
    for key in [Some(key.as_str()), Some("not-a-key"), None] {
        let get = app.request("GET", "/auth", key, None).await;
        let head = app.request("HEAD", "/auth", key, None).await;
        assert_eq!(get.status, head.status, "{key:?}");
        assert_eq!(headers_of(&get), headers_of(&head), "{key:?}");
        assert!(head.text.is_empty());
        assert_eq!(
            get.header("content-length"),
            head.header("content-length"),
            "{key:?}"
        );
    }
}

#[tokio::test]
async fn sign_out_revokes_this_key_only() {
    let app = spawn_app().await;
    let a = app.user("bill").await;
    let b = app.sign_in("bill", PASSWORD).await.key();
    let r = app.request("DELETE", "/auth", Some(&a), None).await;
    assert_eq!(r.text, r#"{"success":true,"data":null,"error":null}"#);
    app.validate(&a).await.assert_invalid_key();
    app.request("DELETE", "/auth", Some(&a), None)
        .await
        .assert_invalid_key();
    assert_eq!(app.validate(&b).await.status, 200);
    let listed = app.keys(&b).await;
    let revoked = &listed.body["data"]["revoked"][0];
    assert_eq!(revoked["reason"], "signed_out");
    assert!(revoked["revoked"].is_string() && revoked["created"].is_string());
}

#[tokio::test]
async fn sign_out_all_revokes_every_key_of_the_user_only() {
    let app = spawn_app().await;
    let a = app.user("bill").await;
    let b = app.sign_in("bill", PASSWORD).await.key();
    let other = app.user("ted").await;
    let r = app.request("DELETE", "/auth?all=true", Some(&a), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&a).await.assert_invalid_key();
    app.validate(&b).await.assert_invalid_key();
    assert_eq!(app.validate(&other).await.status, 200);
}

#[tokio::test]
async fn keys_are_listed_and_revocable_by_id_by_their_owner_only() {
    let app = spawn_app().await;
    let a = app.user("bill").await;
    let b = app.sign_in("bill", PASSWORD).await.key();
    let teds = app.user("ted").await;
    let a_id = current_key_id(&app, &a).await;
    let b_id = current_key_id(&app, &b).await;

    let listed = app.keys(&a).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let keys = &listed.body["data"]["keys"];
    let mut listed_ids = ids(keys);
    listed_ids.sort();
    let mut expected = vec![a_id.clone(), b_id.clone()];
    expected.sort();
    assert_eq!(listed_ids, expected);
    for k in keys.as_array().unwrap() {
        assert_eq!(k["current"], k["id"] == a_id.as_str());
        for field in ["created", "expires", "last_used", "last_ip", "user_agent"] {
            assert!(k.get(field).is_some(), "{field}");
        }
    }
    assert_eq!(listed.body["data"]["revoked"], Value::Array(vec![]));

    // Someone else's key is not found, and stays valid.
    let r = app
        .request("DELETE", &format!("/auth/keys/{b_id}"), Some(&teds), None)
        .await;
    r.assert_error(404);
    assert_eq!(app.validate(&b).await.status, 200);

    let r = app
        .request("DELETE", &format!("/auth/keys/{b_id}"), Some(&a), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&b).await.assert_invalid_key();
    let r = app
        .request("DELETE", &format!("/auth/keys/{b_id}"), Some(&a), None)
        .await;
    r.assert_error(404);
    let listed = app.keys(&a).await;
    assert_eq!(ids(&listed.body["data"]["keys"]), vec![a_id]);
    assert_eq!(ids(&listed.body["data"]["revoked"]), vec![b_id]);
}

#[tokio::test]
async fn keys_expire_after_their_lifetime() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    app.clock.advance(179 * DAY);
    assert_eq!(app.validate(&key).await.status, 200);
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    app.clock.advance(DAY);
    app.validate(&key).await.assert_invalid_key();
    // Still expired however often it is tried.
    app.validate(&key).await.assert_invalid_key();
    let listed = app.keys(&fresh).await;
    let revoked = &listed.body["data"]["revoked"];
    assert_eq!(revoked.as_array().unwrap().len(), 1, "{}", listed.text);
    assert_eq!(revoked[0]["reason"], "expired");
    // The moment it expired, not the moment it was noticed.
    let created = chrono::DateTime::parse_from_rfc3339(revoked[0]["created"].as_str().unwrap()).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(revoked[0]["revoked"].as_str().unwrap()).unwrap();
    assert_eq!((at - created).num_milliseconds(), (180 * DAY).as_millis() as i64);
}

#[tokio::test]
async fn unused_expired_keys_are_listed_as_expired() {
    let app = spawn_app().await;
    app.user("bill").await;
    app.clock.advance(181 * DAY);
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&fresh).await;
    assert_eq!(listed.body["data"]["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["data"]["revoked"][0]["reason"], "expired");
}

#[tokio::test]
async fn idle_keys_expire_when_the_idle_timeout_is_on() {
    let app = spawn_app_with(|s| {
        s.keys.idle_timeout = killbill_auth::config::HumanDuration(Duration::from_secs(30 * 86_400));
    })
    .await;
    let busy = app.user("bill").await;
    let idle = app.sign_in("bill", PASSWORD).await.key();
    for _ in 0..3 {
        app.clock.advance(20 * DAY);
        assert_eq!(app.validate(&busy).await.status, 200);
    }
    app.validate(&idle).await.assert_invalid_key();
    let listed = app.keys(&busy).await;
    assert_eq!(listed.body["data"]["revoked"][0]["reason"], "expired");
    let k = &listed.body["data"]["keys"][0];
    let last = chrono::DateTime::parse_from_rfc3339(k["last_used"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(k["expires"].as_str().unwrap()).unwrap();
    assert_eq!((expires - last).num_days(), 30);
}

#[tokio::test]
async fn signing_in_past_the_limit_evicts_the_least_recently_used_key() {
    let app = spawn_app_with(|s| s.keys.max_per_user = 3).await;
    let k1 = app.user("bill").await;
    app.clock.advance(Duration::from_secs(1));
    let k2 = app.sign_in("bill", PASSWORD).await.key();
    app.clock.advance(Duration::from_secs(1));
    let k3 = app.sign_in("bill", PASSWORD).await.key();
    app.clock.advance(Duration::from_secs(1));
    // k1 is the oldest but was used last; k2 is now the least recently used.
    let k2_id = current_key_id(&app, &k2).await;
    app.clock.advance(Duration::from_secs(1));
    current_key_id(&app, &k3).await;
    app.clock.advance(Duration::from_secs(1));
    current_key_id(&app, &k1).await;
    app.clock.advance(Duration::from_secs(1));
    let k4 = app.sign_in("bill", PASSWORD).await.key();
    app.validate(&k2).await.assert_invalid_key();
    for k in [&k1, &k3, &k4] {
        assert_eq!(app.validate(k).await.status, 200);
    }
    let listed = app.keys(&k4).await;
    assert_eq!(listed.body["data"]["keys"].as_array().unwrap().len(), 3);
    let revoked = &listed.body["data"]["revoked"];
    assert_eq!(ids(revoked), vec![k2_id]);
    assert_eq!(revoked[0]["reason"], "evicted");
}

#[tokio::test]
async fn revoked_keys_are_listed_for_30_days() {
    let app = spawn_app().await;
    let a = app.user("bill").await;
    let b = app.sign_in("bill", PASSWORD).await.key();
    app.request("DELETE", "/auth", Some(&a), None).await;
    app.clock.advance(29 * DAY);
    assert_eq!(
        app.keys(&b).await.body["data"]["revoked"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.clock.advance(2 * DAY);
    assert_eq!(
        app.keys(&b).await.body["data"]["revoked"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// The cache follows the players who play: a key nobody presented for ten minutes leaves it
/// (once its usage is written), and its next use reads the database and works as before.
#[tokio::test]
async fn idle_keys_leave_the_cache_and_come_back_on_use() {
    use killbill_auth::service::keys::CACHE_IDLE;

    let (_dir, clock, services) = crate::helpers::services_with_manual_clock().await;
    let client = crate::helpers::client_at("127.0.0.1");
    let (_, idle) = services
        .accounts
        .sign_up("bill", PASSWORD, &client)
        .await
        .unwrap();
    let busy = services
        .accounts
        .sign_in("bill", PASSWORD, &client)
        .await
        .unwrap();
    services.keys.validate(&idle, &client).await.unwrap();
    services.keys.validate(&busy, &client).await.unwrap();
    assert_eq!(services.keys.cached(), 2);

    clock.advance(CACHE_IDLE / 2);
    services.keys.validate(&busy, &client).await.unwrap();
    clock.advance(CACHE_IDLE / 2 + Duration::from_secs(1));
    assert_eq!(services.keys.sweep_idle(), 0, "unwritten usage keeps keys cached");
    services.keys.flush().await.unwrap();
    assert_eq!(services.keys.sweep_idle(), 1);
    assert_eq!(services.keys.cached(), 1);

    let valid = services.keys.validate(&idle, &client).await.unwrap();
    assert_eq!(valid.entry.user.name.as_str(), "bill");
    assert_eq!(services.keys.cached(), 2);
}

/// A key in steady use is written once a minute, not at every flush; a new network is written at
/// the next flush; a graceful stop (`flush`) writes whatever is left.
#[tokio::test]
async fn usage_is_written_when_due_not_at_every_flush() {
    use killbill_auth::clock::Clock;
    use killbill_auth::service::keys::USAGE_WRITE_EVERY;

    let (_dir, clock, services) = crate::helpers::services_with_manual_clock().await;
    let home = crate::helpers::client_at("127.0.0.1");
    let (user, key) = services.accounts.sign_up("bill", PASSWORD, &home).await.unwrap();
    let stored_last_used = || async {
        let since = clock.now().minus(Duration::from_secs(3600));
        services.store.list_keys(user.id, since).await.unwrap()[0].last_used
    };

    // From the network the key was issued on: nothing is due yet.
    services.keys.validate(&key, &home).await.unwrap();
    clock.advance(Duration::from_secs(10));
    services.keys.validate(&key, &home).await.unwrap();
    assert_eq!(services.keys.flush_due().await.unwrap(), 0);
    assert_eq!(stored_last_used().await, None);

    // A minute after the key was read, its use is due.
    clock.advance(USAGE_WRITE_EVERY);
    let at = clock.now();
    services.keys.validate(&key, &home).await.unwrap();
    assert_eq!(services.keys.flush_due().await.unwrap(), 1);
    assert_eq!(stored_last_used().await, Some(at));

    // A new network is due at once.
    clock.advance(Duration::from_secs(1));
    let away = crate::helpers::client_at("10.1.2.3");
    services.keys.validate(&key, &away).await.unwrap();
    assert_eq!(services.keys.flush_due().await.unwrap(), 1);

    // Anything else waits for its minute, or for a graceful stop.
    clock.advance(Duration::from_secs(1));
    let last = clock.now();
    services.keys.validate(&key, &away).await.unwrap();
    assert_eq!(services.keys.flush_due().await.unwrap(), 0);
    assert_eq!(services.keys.flush().await.unwrap(), 1);
    assert_eq!(stored_last_used().await, Some(last));
}

/// `keys.on_limit = "refuse"` (the original back end's rule): past `max_per_user` live keys a
/// sign-in is refused with 409, nothing is evicted, and room made by a sign-out is room again.
#[tokio::test]
async fn with_on_limit_refuse_a_sign_in_past_the_limit_is_refused() {
    let app = spawn_app_with(|s| {
        s.keys.max_per_user = 2;
        s.keys.on_limit = killbill_auth::domain::OnLimit::Refuse;
    })
    .await;
    let first = app.user("bill").await;
    let second = app.sign_in("bill", PASSWORD).await.key();
    let r = app.sign_in("bill", PASSWORD).await;
    assert_eq!(r.assert_error(409), "Too many active keys");
    assert_eq!(app.validate(&first).await.status, 200, "nothing was evicted");
    assert_eq!(app.validate(&second).await.status, 200);
    assert_eq!(
        app.request("DELETE", "/auth", Some(&first), None).await.status,
        200
    );
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
}

/// The refusal holds under concurrent sign-ins (from different networks, so that the sign-in
/// throttle's in-flight count is not what limits them): exactly `max_per_user` live keys.
#[tokio::test]
async fn with_on_limit_refuse_concurrent_sign_ins_get_exactly_the_room_left() {
    let app = spawn_app_with(|s| {
        s.keys.max_per_user = 3;
        s.keys.on_limit = killbill_auth::domain::OnLimit::Refuse;
    })
    .await;
    app.user("bill").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = app.client_from(&format!("127.0.{}.1", 20 + i));
        let url = app.url("/auth");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({"username": "bill", "password": PASSWORD}))
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
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 18, "{statuses:?}");
}
