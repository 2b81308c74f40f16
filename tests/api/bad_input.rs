//! Malformed input gets the envelope and the right status; nothing panics.

use serde_json::json;

use crate::helpers::{spawn_app, PASSWORD};

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = spawn_app().await;
    let big = "a".repeat(70 * 1024);
    for path in ["/users", "/auth"] {
        let r = app
            .request(
                "POST",
                path,
                None,
                Some(json!({"username": "bill", "password": big})),
            )
            .await;
        r.assert_error(413);
    }
    // Just under the limit is read (and refused for what it says, not for its size).
    let r = app
        .request(
            "POST",
            "/auth",
            None,
            Some(json!({"username": "bill", "password": "a".repeat(60 * 1024)})),
        )
        .await;
    r.assert_error(401);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415() {
    let app = spawn_app().await;
    let body = r#"{"username":"bill","password":"correct horse battery staple"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let mut req = app.client.post(app.url("/auth")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = app.send(req).await;
        assert_eq!(
            r.assert_error(415),
            "Content-Type must be application/json",
            "{ct:?}"
        );
    }
    let ok = app
        .send(
            app.client
                .post(app.url("/users"))
                .header("content-type", "application/json; charset=utf-8")
                .body(body),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test]
async fn malformed_json_and_bad_fields_are_400_naming_the_field() {
    let app = spawn_app().await;
    let cases: &[(&str, &str)] = &[
        (r#"{"username":"bill""#, "malformed JSON"),
        (r#"not json"#, "malformed JSON"),
        (r#"{"username":"bill"}"#, "password"),
        (r#"{"password":"correct horse battery staple"}"#, "username"),
        (r#"{"username":"bill","password":123}"#, "password"),
        (r#"{"username":["bill"],"password":"x"}"#, "username"),
        (
            r#"{"username":"bill","password":"x","is_admin":true}"#,
            "is_admin",
        ),
        (r#"{"username":"a","username":"b","password":"x"}"#, "username"),
        (r#"[]"#, "invalid request body"),
        (r#"null"#, "invalid request body"),
    ];
    for path in ["/users", "/auth"] {
        for (body, expect) in cases {
            let r = app
                .send(
                    app.client
                        .post(app.url(path))
                        .header("content-type", "application/json")
                        .body(*body),
                )
                .await;
            let error = r.assert_error(400);
            assert!(error.contains(expect), "{path} {body}: {error}");
        }
    }
    let deep = "[".repeat(60_000);
    let r = app
        .send(
            app.client
                .post(app.url("/auth"))
                .header("content-type", "application/json")
                .body(deep),
        )
        .await;
    r.assert_error(400);
    let invalid_utf8 = b"{\"username\":\"bi\xffll\",\"password\":\"x\"}".to_vec();
    let r = app
        .send(
            app.client
                .post(app.url("/auth"))
                .header("content-type", "application/json")
                .body(invalid_utf8),
        )
        .await;
    r.assert_error(400);
}

#[tokio::test]
async fn invalid_usernames_are_400() {
    let app = spawn_app().await;
    for name in [
        "",
        "ab",
        &"a".repeat(21),
        "bill\n",
        "bi ll",
        "bïll",
        "x\u{202e}yz",
        "\u{1b}[2Jab",
    ] {
        let r = app.sign_up(name, PASSWORD).await;
        let error = r.assert_error(400);
        assert!(error.starts_with("username:"), "{name:?}: {error}");
    }
}

#[tokio::test]
async fn weak_passwords_are_400_with_a_reason() {
    let app = spawn_app().await;
    for (password, why) in [
        ("short", "at least 12 characters"),
        ("passwordpassword", "too easy to guess"),
        ("123456789012345", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("dolphin42dolphin42", "too easy to guess"),
        ("killbillkillbill", "too easy to guess"),
    ] {
        let r = app.sign_up("dolphin42", password).await;
        let error = r.assert_error(400);
        assert!(
            error.starts_with("password:") && error.contains(why),
            "{password}: {error}"
        );
    }
    let long = "x".repeat(1025);
    assert!(app
        .sign_up("dolphin42", &long)
        .await
        .assert_error(400)
        .contains("1024 bytes"));
    // Nothing was created along the way.
    assert_eq!(app.sign_up("dolphin42", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn malformed_authorization_headers_are_the_invalid_key_403() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let cases = [
        None,
        Some(String::new()),
        Some(key.clone()),
        Some(format!("Basic {key}")),
        Some(format!("Bearer {}", &key[..43])),
        Some(format!("Bearer {key}x")),
        Some("Bearer ".to_owned() + &"A".repeat(10_000)),
        Some("Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned()),
    ];
    for header in cases {
        let mut req = app.client.get(app.url("/auth"));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        app.send(req).await.assert_invalid_key();
    }
    let bytes = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    app.send(
        app.client
            .get(app.url("/users/me"))
            .header("authorization", bytes),
    )
    .await
    .assert_invalid_key();
}

#[tokio::test]
async fn bad_query_and_path_parameters_are_answered_in_the_envelope() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let r = app.request("DELETE", "/auth?all=maybe", Some(&key), None).await;
    assert!(r.assert_error(400).contains("all"));
    let r = app
        .request("DELETE", "/auth/keys/not-a-uuid", Some(&key), None)
        .await;
    r.assert_error(404);
    let r = app.request("DELETE", "/auth/keys/%FF%FE", Some(&key), None).await;
    assert!(r.status == 400 || r.status == 404, "{}", r.text);
    assert_eq!(r.body["success"], false);
    // The key still works: none of this signed it out.
    assert_eq!(app.validate(&key).await.status, 200);
}

/// Two `Authorization` headers: which key is meant is not guessed (a proxy in front could read
/// the other one), whether they agree or not, on a player's, an administrator's and a game
/// server's route; the key itself is neither used nor harmed.
#[tokio::test]
async fn two_authorization_headers_are_400() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let other = app.user("ann").await;
    for (path, second) in [
        ("/auth", key.as_str()),
        ("/auth", other.as_str()),
        ("/users/me", "not a key"),
        ("/admin/users", key.as_str()),
        ("/revocations", key.as_str()),
    ] {
        let r = app
            .send(
                app.client
                    .get(app.url(path))
                    .header("authorization", format!("Bearer {key}"))
                    .header("authorization", format!("Bearer {second}")),
            )
            .await;
        assert_eq!(
            r.assert_error(400),
            "Authorization: more than one header; send exactly one",
            "{path}"
        );
    }
    assert_eq!(app.validate(&key).await.status, 200);
}
