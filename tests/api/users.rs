//! `POST /users`, `GET /users/me`, `PUT /users/me/password`, `DELETE /users/me`.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{spawn_app, PASSWORD};

#[tokio::test]
async fn sign_up_returns_the_user_and_a_working_key() {
    let app = spawn_app().await;
    let r = app.sign_up("Bill_2", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    let user = &r.body["data"]["user"];
    assert_eq!(user["name"], "Bill_2");
    assert_eq!(user["role"], "USER");
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    let created = user["created"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == "2026-11-25T07:23:33.125Z".len(),
        "{created}"
    );
    let key = r.key();
    assert_eq!(key.len(), 44);
    let me = app.request("GET", "/users/me", Some(&key), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(&me.body["data"]["user"], user);
}

#[tokio::test]
async fn names_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    app.user("Bill").await;
    for name in ["Bill", "bill", "BILL"] {
        let r = app.sign_up(name, "another fine passphrase").await;
        assert_eq!(r.assert_error(409), "Username already taken");
    }
}

#[tokio::test]
async fn concurrent_sign_ups_of_one_name_have_exactly_one_winner() {
    let app = spawn_app().await;
    let attempts = 20;
    let mut tasks = Vec::new();
    for i in 0..attempts {
        let client = app.client.clone();
        let url = app.url("/users");
        tasks.push(tokio::spawn(async move {
            let password = format!("{PASSWORD} number {i}");
            let r = client
                .post(url)
                .json(&json!({"username": "bob", "password": password}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), password)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, password) = t.await.unwrap();
        match status {
            200 => winners.push(password),
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1);
    // The password that works is the winner's.
    assert_eq!(app.sign_in("bob", &winners[0]).await.status, 200);
    assert_eq!(app.sign_in("bob", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn change_password_revokes_every_key_and_returns_a_new_one() {
    let app = spawn_app().await;
    let first = app.user("bill").await;
    let second = app.sign_in("bill", PASSWORD).await.key();
    let body = json!({"current_password": "not my password!", "new_password": "a brand new passphrase"});
    let r = app
        .request("PUT", "/users/me/password", Some(&first), Some(body))
        .await;
    assert_eq!(r.assert_error(401), "Invalid password");

    let body = json!({"current_password": PASSWORD, "new_password": "passwordpassword"});
    let r = app
        .request("PUT", "/users/me/password", Some(&first), Some(body))
        .await;
    assert!(r.assert_error(400).starts_with("new_password:"), "{}", r.text);

    let body = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    let r = app
        .request("PUT", "/users/me/password", Some(&first), Some(body))
        .await;
    let fresh = r.key();
    app.validate(&first).await.assert_invalid_key();
    app.validate(&second).await.assert_invalid_key();
    assert_eq!(app.validate(&fresh).await.status, 200);
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 401);
    assert_eq!(app.sign_in("bill", "a brand new passphrase").await.status, 200);

    let listed = app.keys(&fresh).await;
    let reasons: HashSet<&str> = listed.body["data"]["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, HashSet::from(["password_changed"]));
}

#[tokio::test]
async fn change_password_needs_both_fields() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let r = app
        .request(
            "PUT",
            "/users/me/password",
            Some(&key),
            Some(json!({"current_password": PASSWORD})),
        )
        .await;
    assert!(r.assert_error(400).contains("new_password"));
    // Without a key the body is not even read.
    let r = app
        .request("PUT", "/users/me/password", None, Some(json!({})))
        .await;
    r.assert_invalid_key();
}

#[tokio::test]
async fn delete_account_needs_the_password_and_removes_everything() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let other = app.sign_in("bill", PASSWORD).await.key();
    let r = app
        .request(
            "DELETE",
            "/users/me",
            Some(&key),
            Some(json!({"password": "wrong password!!"})),
        )
        .await;
    assert_eq!(r.assert_error(401), "Invalid password");
    assert_eq!(app.validate(&key).await.status, 200);

    let r = app
        .request(
            "DELETE",
            "/users/me",
            Some(&key),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.text, r#"{"success":true,"data":null,"error":null}"#);
    app.validate(&key).await.assert_invalid_key();
    app.validate(&other).await.assert_invalid_key();
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 401);
    // The name is free again.
    assert_eq!(app.sign_up("Bill", PASSWORD).await.status, 200);
}
