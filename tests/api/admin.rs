//! Administration: the `admin` command line against a running server, and the `/admin` routes.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, TestApp, PASSWORD};

const ADMIN_PASSWORD: &str = "the admin's own long passphrase";

/// Creates an administrator with the real command line and signs it in.
pub async fn admin_key(app: &TestApp) -> String {
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "root_admin"],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created administrator root_admin"));
    app.sign_in("root_admin", ADMIN_PASSWORD).await.key()
}

pub async fn user_id(app: &TestApp, key: &str) -> String {
    app.request("GET", "/users/me", Some(key), None).await.body["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits (up to 5 s) until `key` is refused: revocations by another process arrive within a second.
async fn eventually_invalid(app: &TestApp, key: &str) {
    for _ in 0..50 {
        if app.validate(key).await.status == 403 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("key still valid 5 s after it was revoked by another process");
}

#[tokio::test]
async fn create_admin_works_while_the_server_runs_and_refuses_weak_passwords() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let me = app.request("GET", "/users/me", Some(&key), None).await;
    assert_eq!(me.body["data"]["user"]["role"], "ADMIN");

    let out = app
        .cli(
            &["admin", "create-admin", "--username", "weak_admin"],
            "passwordpassword\n",
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("too easy to guess"), "{stderr}");
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "ROOT_ADMIN"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("already taken"), "{stderr}");
    let out = app
        .cli(&["admin", "create-admin", "--username", "quiet"], "")
        .await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let app = spawn_app().await;
    let user = app.user("bill").await;
    let bill = user_id(&app, &user).await;
    for (method, path) in [
        ("GET", "/admin/users".to_owned()),
        ("DELETE", format!("/admin/users/{bill}/keys")),
        ("DELETE", format!("/admin/users/{bill}")),
    ] {
        let r = app.request(method, &path, Some(&user), None).await;
        assert_eq!(
            r.text, r#"{"success":false,"data":null,"error":"Forbidden"}"#,
            "{method} {path}"
        );
        assert_eq!(r.status, 403);
        app.request(method, &path, None, None).await.assert_invalid_key();
    }
    assert_eq!(app.validate(&user).await.status, 200, "nothing happened to bill");
}

#[tokio::test]
async fn users_are_listed_page_by_page() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let mut expected = HashSet::from(["root_admin".to_owned()]);
    for i in 0..6 {
        let name = format!("player{i}");
        app.user(&name).await;
        expected.insert(name);
    }
    let mut seen = Vec::new();
    let mut path = "/admin/users?limit=3".to_owned();
    loop {
        let r = app.request("GET", &path, Some(&admin), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let users = r.body["data"]["users"].as_array().unwrap();
        assert!(users.len() <= 3);
        seen.extend(users.iter().map(|u| u["name"].as_str().unwrap().to_owned()));
        match &r.body["data"]["next"] {
            Value::String(next) => path = format!("/admin/users?limit=3&after={next}"),
            Value::Null => break,
            other => panic!("next: {other}"),
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);
    let all = app.request("GET", "/admin/users", Some(&admin), None).await;
    assert_eq!(all.body["data"]["users"].as_array().unwrap().len(), 7);
    assert!(all.body["data"]["next"].is_null());
    for bad in [
        "/admin/users?limit=0",
        "/admin/users?limit=1001",
        "/admin/users?after=garbage",
        "/admin/users?page=2",
    ] {
        app.request("GET", bad, Some(&admin), None)
            .await
            .assert_error(400);
    }
}

#[tokio::test]
async fn admins_revoke_keys_and_delete_users() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let bills = app.user("bill").await;
    let bill = user_id(&app, &bills).await;
    let teds = app.user("ted").await;
    let ted = user_id(&app, &teds).await;

    let r = app
        .request("DELETE", &format!("/admin/users/{bill}/keys"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&bills).await.assert_invalid_key();
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&fresh).await;
    assert_eq!(listed.body["data"]["revoked"][0]["reason"], "admin");

    let r = app
        .request("DELETE", &format!("/admin/users/{ted}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&teds).await.assert_invalid_key();
    assert_eq!(app.sign_in("ted", PASSWORD).await.status, 401);

    for path in [
        format!("/admin/users/{ted}"),
        format!("/admin/users/{ted}/keys"),
        "/admin/users/nope".to_owned(),
    ] {
        app.request("DELETE", &path, Some(&admin), None)
            .await
            .assert_error(404);
    }
}

#[tokio::test]
async fn the_command_line_lists_revokes_and_deletes_while_the_server_runs() {
    let app = spawn_app().await;
    let bills = app.user("bill").await;
    let teds = app.user("ted").await;
    // Cached by the server before the command line acts.
    assert_eq!(app.validate(&bills).await.status, 200);
    assert_eq!(app.validate(&teds).await.status, 200);

    let out = app.cli(&["admin", "list-users"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(listing.lines().any(|l| l.contains("\tbill\tUSER\t")), "{listing}");

    let out = app.cli(&["admin", "revoke-keys", "--username", "BILL"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1 key(s) of bill"));
    eventually_invalid(&app, &bills).await;
    assert_eq!(app.validate(&teds).await.status, 200);

    let out = app.cli(&["admin", "delete-user", "--username", "ted"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually_invalid(&app, &teds).await;
    assert_eq!(app.sign_in("ted", PASSWORD).await.status, 401);

    let out = app.cli(&["admin", "delete-user", "--username", "ted"], "").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}

#[tokio::test]
async fn the_command_line_never_finds_the_database_locked_while_the_server_writes() {
    let app = spawn_app().await;
    admin_key(&app).await;
    // Keep the server writing (sign-ins, usage flushes) while the command line opens the database.
    let busy = {
        let client = app.client.clone();
        let url = app.url("/auth");
        let signup = app.url("/users");
        tokio::spawn(async move {
            let body = serde_json::json!({"username": "writer", "password": PASSWORD});
            client.post(signup).json(&body).send().await.unwrap();
            for _ in 0..400 {
                let r = client.post(&url).json(&body).send().await.unwrap();
                let key: Value = r.json().await.unwrap();
                if let Some(k) = key["data"]["key"].as_str() {
                    let _ = client.get(url.clone()).bearer_auth(k).send().await;
                }
            }
        })
    };
    for i in 0..6 {
        let out = app
            .cli(
                &["admin", "create-admin", "--username", "root_admin"],
                &format!("{ADMIN_PASSWORD}\n"),
            )
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("already taken"), "run {i}: {stderr}");
        let out = app.cli(&["admin", "list-users"], "").await;
        assert!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    busy.abort();
}
