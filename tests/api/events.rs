//! Security events: `GET /users/me/events` (the owner's own) and `GET /admin/events`
//! (operators'), written in the transaction of what they record.

use serde_json::{json, Value};

use crate::admin::{admin_key, user_id};
use crate::helpers::{spawn_app, TestApp, PASSWORD};

async fn own_events(app: &TestApp, key: &str) -> Vec<Value> {
    let page = app.request("GET", "/users/me/events", Some(key), None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.body["data"]["events"].as_array().unwrap().clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_owner_sees_sign_ins_failures_and_revocations_newest_first() {
    let app = spawn_app().await;
    let first = app
        .send(
            app.client
                .post(app.url("/users"))
                .header("user-agent", "KillBill/2.0 (Android)")
                .json(&json!({"username": "watched", "password": PASSWORD})),
        )
        .await
        .key();
    let id = user_id(&app, &first).await;
    let failed = app.sign_in("watched", "not the right password").await;
    assert_eq!(failed.status, 401);
    let second = app.sign_in("watched", PASSWORD).await.key();
    let signed_out = app.request("DELETE", "/auth", Some(&first), None).await;
    assert_eq!(signed_out.status, 200);

    let events = own_events(&app, &second).await;
    assert_eq!(
        kinds(&events),
        ["key_revoked", "signed_in", "sign_in_failed", "signed_up"],
        "{events:#?}"
    );
    for event in &events {
        assert_eq!(event["user_id"], id.as_str());
        assert!(event["actor_id"].is_null());
        assert_eq!(event["network"], "127.0.0.0/24", "{event}");
        assert!(event["id"].as_str().is_some() && event["at"].as_str().is_some());
    }
    assert_eq!(events[3]["detail"]["user_agent"], "KillBill/2.0 (Android)");
    assert_eq!(events[0]["detail"]["reason"], "signed_out");
    let me = app.request("GET", "/auth", Some(&second), None).await;
    let second_id = me.body["data"]["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(events[1]["detail"]["key_id"], second_id.as_str());

    // A password change records itself and the revocation of every earlier key.
    let changed = app
        .request(
            "PUT",
            "/users/me/password",
            Some(&second),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})),
        )
        .await;
    let third = changed.key();
    let events = own_events(&app, &third).await;
    assert_eq!(kinds(&events)[..2], ["password_changed", "key_revoked"]);
    assert_eq!(events[1]["detail"]["reason"], "password_changed");

    // Nobody else's events, and no events without a key.
    let other = app.user("someone_else").await;
    assert_eq!(kinds(&own_events(&app, &other).await), ["signed_up"]);
    app.request("GET", "/users/me/events", None, None)
        .await
        .assert_invalid_key();
}

#[tokio::test]
async fn a_name_that_matches_no_account_is_never_stored() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let typed = "my_secret_password_typed_as_a_name";
    for name in [typed, "ghost_player"] {
        let answer = app.sign_in(name, "whatever it is").await;
        assert_eq!(answer.status, 401);
    }
    let page = app.request("GET", "/admin/events", Some(&admin), None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        !page.text.contains(typed) && !page.text.contains("ghost_player"),
        "{}",
        page.text
    );
    let failures: Vec<&Value> = page.body["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "sign_in_failed")
        .collect();
    assert_eq!(failures.len(), 2, "{}", page.text);
    for event in failures {
        assert!(event["user_id"].is_null());
        assert_eq!(event["network"], "127.0.0.0/24");
    }
    // Nor in the database file, in any table (SQLite only: the file is ours to read).
    if crate::BACKEND == crate::helpers::Backend::Sqlite {
        let bytes = std::fs::read(crate::helpers::db_path(app.dir.path())).unwrap_or_default();
        let wal = std::fs::read(crate::helpers::db_path(app.dir.path()).with_extension("db-wal"))
            .unwrap_or_default();
        for haystack in [bytes, wal] {
            assert!(!haystack.windows(typed.len()).any(|w| w == typed.as_bytes()));
        }
    }
}

#[tokio::test]
async fn operators_page_through_everyone_or_one_user() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let admin_id = user_id(&app, &admin).await;
    let mut ids = Vec::new();
    for name in ["p_one", "p_two", "p_three"] {
        let key = app.user(name).await;
        ids.push(user_id(&app, &key).await);
    }
    // Suspend and lift: recorded with the administrator as the actor.
    let target = &ids[1];
    let put = app
        .request(
            "PUT",
            &format!("/admin/users/{target}/suspension"),
            Some(&admin),
            Some(json!({"reason": "test", "until": null})),
        )
        .await;
    assert_eq!(put.status, 200);
    let lifted = app
        .request(
            "DELETE",
            &format!("/admin/users/{target}/suspension"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(lifted.status, 200);
    let one = app
        .request("GET", &format!("/admin/events?user={target}"), Some(&admin), None)
        .await;
    let events = one.body["data"]["events"].as_array().unwrap().clone();
    assert_eq!(
        kinds(&events),
        ["suspension_lifted", "suspended", "key_revoked", "signed_up"],
        "{}",
        one.text
    );
    assert_eq!(events[0]["actor_id"], admin_id.as_str());
    assert_eq!(events[1]["actor_id"], admin_id.as_str());
    assert_eq!(events[1]["detail"]["reason"], "test");
    assert_eq!(events[2]["detail"]["reason"], "suspended");

    // Everyone's, two at a time: newest first, no repeats, the same as one page.
    let all = app
        .request("GET", "/admin/events?limit=1000", Some(&admin), None)
        .await;
    let all: Vec<Value> = all.body["data"]["events"].as_array().unwrap().clone();
    assert!(all.len() >= 8, "{all:#?}");
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/events?limit=2&after={c}"),
            None => "/admin/events?limit=2".to_owned(),
        };
        let page = app.request("GET", &path, Some(&admin), None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let events = page.body["data"]["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        paged.extend(events.iter().cloned());
        match page.body["data"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    // Newest first: the administrator's own sign-up (the command line, before the players) last.
    assert_eq!(all.last().unwrap()["kind"], "signed_up");
    assert_eq!(all.last().unwrap()["user_id"], admin_id.as_str());
    assert_eq!(all[0]["kind"], "suspension_lifted");

    // Bad queries name what is wrong; players may not.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=garbage", "after"),
        ("user=not-a-uuid", "user"),
        ("page=2", "page"),
    ] {
        let answer = app
            .request("GET", &format!("/admin/events?{query}"), Some(&admin), None)
            .await;
        let error = answer.assert_error(400);
        assert!(error.contains(field), "{query}: {error}");
    }
    let player = app.sign_in("p_one", PASSWORD).await.key();
    assert_eq!(
        app.request("GET", "/admin/events", Some(&player), None)
            .await
            .assert_error(403),
        "Forbidden"
    );
    let answer = app
        .request("GET", "/users/me/events?limit=0", Some(&player), None)
        .await;
    assert!(answer.assert_error(400).contains("limit"));
}

#[tokio::test]
async fn a_throttled_account_gets_one_event_not_one_per_attempt() {
    let app = spawn_app().await;
    let key = app.user("hammered").await;
    for _ in 0..12 {
        let answer = app.sign_in("hammered", "wrong wrong wrong").await;
        assert!(answer.status == 401 || answer.status == 429, "{}", answer.text);
    }
    let events = own_events(&app, &key).await;
    let throttled = events.iter().filter(|e| e["kind"] == "sign_in_throttled").count();
    let failed = events.iter().filter(|e| e["kind"] == "sign_in_failed").count();
    assert_eq!(throttled, 1, "{events:#?}");
    assert_eq!(failed, 5, "{events:#?}");
}
