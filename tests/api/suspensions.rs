//! Suspensions (bans): `PUT`/`DELETE /admin/users/{id}/suspension`, `GET /admin/users/{id}`, the
//! `admin suspend`/`unsuspend` command line, and what a suspended player sees.

use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::{admin_key, eventually_invalid, user_id};
use crate::helpers::{spawn_app, TestApp, TestResponse, PASSWORD};
use killbill_auth::clock::Clock;

async fn suspend(app: &TestApp, admin: &str, id: &str, body: Value) -> TestResponse {
    app.request(
        "PUT",
        &format!("/admin/users/{id}/suspension"),
        Some(admin),
        Some(body),
    )
    .await
}

async fn details(app: &TestApp, admin: &str, id: &str) -> TestResponse {
    app.request("GET", &format!("/admin/users/{id}"), Some(admin), None)
        .await
}

/// RFC 3339 for the app's clock plus `ahead`.
fn from_now(app: &TestApp, ahead: Duration) -> String {
    app.clock.now().plus(ahead).to_rfc3339()
}

#[tokio::test]
async fn a_suspension_revokes_every_key_and_only_the_right_password_learns_of_it() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let player = app.user("cheater").await;
    let second = app.sign_in("cheater", PASSWORD).await.key();
    let id = user_id(&app, &player).await;
    let admin_id = user_id(&app, &admin).await;
    let until = from_now(&app, Duration::from_secs(7 * 86_400));

    let answer = suspend(&app, &admin, &id, json!({"reason": "aimbot", "until": until})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let s = &answer.body["data"]["suspension"];
    assert_eq!(s["reason"], "aimbot");
    assert_eq!(s["until"], until.as_str());
    assert_eq!(s["by"], admin_id.as_str());
    assert!(s["lifted"].is_null());
    assert!(s["id"].as_str().is_some() && s["created"].as_str().is_some());

    // Every key is dead at once, with the reason `suspended`.
    app.validate(&player).await.assert_invalid_key();
    app.validate(&second).await.assert_invalid_key();
    let d = details(&app, &admin, &id).await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["data"]["live_keys"], 0);
    assert_eq!(d.body["data"]["user"]["name"], "cheater");
    assert_eq!(d.body["data"]["suspension"]["reason"], "aimbot");
    assert_eq!(d.body["data"]["suspensions"].as_array().unwrap().len(), 1);

    // The right password learns of the suspension; a wrong one gets the usual 401.
    let refused = app.sign_in("cheater", PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(
        refused.body,
        json!({"success": false, "data": {"suspension": {"reason": "aimbot", "until": until}}, "error": "Account suspended"})
    );
    let wrong = app.sign_in("cheater", "not the password at all").await;
    assert_eq!(wrong.assert_error(401), "Invalid username or password");
    let unknown = app.sign_in("nobody_here", "not the password at all").await;
    assert_eq!(unknown.text, wrong.text);
}

#[tokio::test]
async fn a_suspension_ends_by_itself_and_can_be_lifted_or_replaced_keeping_its_history() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let player = app.user("grinder").await;
    let id = user_id(&app, &player).await;

    let until = from_now(&app, Duration::from_secs(3600));
    assert_eq!(
        suspend(&app, &admin, &id, json!({"reason": "one hour", "until": until}))
            .await
            .status,
        200
    );
    assert_eq!(app.sign_in("grinder", PASSWORD).await.status, 403);
    app.clock.advance(Duration::from_secs(3601));
    app.sign_in("grinder", PASSWORD).await.key();
    let d = details(&app, &admin, &id).await;
    assert!(d.body["data"]["suspension"].is_null(), "{}", d.text);
    assert_eq!(d.body["data"]["live_keys"], 1);

    // Permanent, then replaced by a shorter one: the first is kept, lifted at the replacement.
    assert_eq!(
        suspend(&app, &admin, &id, json!({"reason": "for ever", "until": null}))
            .await
            .status,
        200
    );
    let refused = app.sign_in("grinder", PASSWORD).await;
    assert_eq!(
        refused.body["data"]["suspension"],
        json!({"reason": "for ever", "until": null})
    );
    let until = from_now(&app, Duration::from_secs(600));
    let second = suspend(&app, &admin, &id, json!({"reason": "reduced", "until": until})).await;
    assert_eq!(second.status, 200);
    let d = details(&app, &admin, &id).await;
    let history = d.body["data"]["suspensions"].as_array().unwrap().clone();
    assert_eq!(history.len(), 3, "{}", d.text);
    assert_eq!(history[0]["reason"], "reduced");
    assert!(history[0]["lifted"].is_null());
    assert_eq!(history[1]["reason"], "for ever");
    assert_eq!(history[1]["lifted"], second.body["data"]["suspension"]["created"]);
    assert_eq!(history[2]["reason"], "one hour");
    assert_eq!(d.body["data"]["suspension"]["reason"], "reduced");

    // Lifted by hand: signing in works again; lifting again finds nothing.
    let lifted = app
        .request(
            "DELETE",
            &format!("/admin/users/{id}/suspension"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(lifted.status, 200, "{}", lifted.text);
    assert_eq!(lifted.text, r#"{"success":true,"data":null,"error":null}"#);
    app.sign_in("grinder", PASSWORD).await.key();
    let d = details(&app, &admin, &id).await;
    assert!(d.body["data"]["suspension"].is_null());
    assert!(d.body["data"]["suspensions"][0]["lifted"].is_string());
    let again = app
        .request(
            "DELETE",
            &format!("/admin/users/{id}/suspension"),
            Some(&admin),
            None,
        )
        .await;
    again.assert_error(404);
}

#[tokio::test]
async fn bad_suspension_requests_are_refused_naming_what_is_wrong() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let player = app.user("victim").await;
    let id = user_id(&app, &player).await;
    let later = from_now(&app, Duration::from_secs(3600));
    let earlier = app.clock.now().minus(Duration::from_secs(1)).to_rfc3339();

    for (body, field) in [
        (json!({"reason": "", "until": later}), "reason"),
        (json!({"reason": "x".repeat(201), "until": later}), "reason"),
        (json!({"reason": "   ", "until": later}), "reason"),
        (json!({"reason": "spam", "until": earlier}), "until"),
        (json!({"reason": "spam", "until": "tomorrow"}), "until"),
        (json!({"reason": "spam", "until": 1_800_000_000}), "until"),
        (json!({"reason": "spam"}), "until"),
        (json!({"until": later}), "reason"),
        (json!({"reason": "spam", "until": later, "extra": 1}), "extra"),
    ] {
        let answer = suspend(&app, &admin, &id, body.clone()).await;
        let error = answer.assert_error(400);
        assert!(error.contains(field), "{body}: {error}");
    }
    // 200 characters (not bytes) are fine.
    let long = suspend(
        &app,
        &admin,
        &id,
        json!({"reason": "é".repeat(200), "until": later}),
    )
    .await;
    assert_eq!(long.status, 200, "{}", long.text);
    // Nothing above took effect but the last.
    let d = details(&app, &admin, &id).await;
    assert_eq!(d.body["data"]["suspensions"].as_array().unwrap().len(), 1);

    // Unknown or malformed ids.
    let unknown = uuid::Uuid::new_v4().to_string();
    suspend(&app, &admin, &unknown, json!({"reason": "spam", "until": null}))
        .await
        .assert_error(404);
    suspend(
        &app,
        &admin,
        "not-a-uuid",
        json!({"reason": "spam", "until": null}),
    )
    .await
    .assert_error(404);
    details(&app, &admin, &unknown).await.assert_error(404);
    app.request(
        "DELETE",
        &format!("/admin/users/{unknown}/suspension"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(404);

    // Players may not; no key is the usual 403.
    let other = app.user("bystander").await;
    let forbidden = suspend(&app, &other, &id, json!({"reason": "spam", "until": null})).await;
    assert_eq!(forbidden.assert_error(403), "Forbidden");
    assert_eq!(details(&app, &other, &id).await.assert_error(403), "Forbidden");
    app.request(
        "PUT",
        &format!("/admin/users/{id}/suspension"),
        None,
        Some(json!({"reason": "x", "until": null})),
    )
    .await
    .assert_invalid_key();
}

#[tokio::test]
async fn the_last_administrator_cannot_be_suspended_or_deleted() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let admin_id = user_id(&app, &admin).await;

    let me = suspend(&app, &admin, &admin_id, json!({"reason": "oops", "until": null})).await;
    assert_eq!(me.status, 409, "{}", me.text);
    assert_eq!(
        me.body["error"],
        "The last administrator cannot be suspended, demoted or deleted"
    );
    app.request("DELETE", &format!("/admin/users/{admin_id}"), Some(&admin), None)
        .await
        .assert_error(409);
    let delete_me = app
        .request(
            "DELETE",
            "/users/me",
            Some(&admin),
            Some(json!({"password": "the admin's own long passphrase"})),
        )
        .await;
    delete_me.assert_error(409);
    let out = app
        .cli(
            &["admin", "suspend", "--username", "root_admin", "--reason", "oops"],
            "",
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("last administrator"));
    app.validate(&admin).await;
    assert_eq!(app.validate(&admin).await.status, 200, "still an administrator");

    // With a second administrator, one may go; then the other is the last one in force.
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "second_admin"],
            "another long admin passphrase\n",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = app
        .sign_in("second_admin", "another long admin passphrase")
        .await
        .key();
    let second_id = user_id(&app, &second).await;
    assert_eq!(
        suspend(
            &app,
            &admin,
            &second_id,
            json!({"reason": "rotation", "until": null})
        )
        .await
        .status,
        200
    );
    suspend(&app, &admin, &admin_id, json!({"reason": "oops", "until": null}))
        .await
        .assert_error(409);
}

#[tokio::test]
async fn two_administrators_suspending_each_other_at_once_leave_one_in_force() {
    let app = spawn_app().await;
    let first = admin_key(&app).await;
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "second_admin"],
            "another long admin passphrase\n",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for round in 0..5 {
        let second = app
            .sign_in("second_admin", "another long admin passphrase")
            .await
            .key();
        let first_key = app
            .sign_in("root_admin", "the admin's own long passphrase")
            .await
            .key();
        let (first_id, second_id) = (user_id(&app, &first_key).await, user_id(&app, &second).await);
        let body = json!({"reason": "duel", "until": null});
        let (a, b) = tokio::join!(
            suspend(&app, &first_key, &second_id, body.clone()),
            suspend(&app, &second, &first_id, body.clone())
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        // One wins; the other is refused as the last administrator, or finds its key revoked.
        assert!(
            statuses == [200, 403] || statuses == [200, 409],
            "round {round}: {} / {}",
            a.text,
            b.text
        );
        // The loser is lifted from the command line (its key died with the suspension).
        let loser = if a.status == 200 {
            "second_admin"
        } else {
            "root_admin"
        };
        let out = app.cli(&["admin", "unsuspend", "--username", loser], "").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = first;
}

#[tokio::test]
async fn sign_ins_racing_a_suspension_leave_no_live_key() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let player = app.user("racer").await;
    let id = user_id(&app, &player).await;
    let mut sign_ins = Vec::new();
    for _ in 0..12 {
        let (client, url) = (app.client.clone(), app.url("/auth"));
        sign_ins.push(tokio::spawn(async move {
            let answer = client
                .post(url)
                .json(&json!({"username": "racer", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }));
    }
    let banned = suspend(&app, &admin, &id, json!({"reason": "race", "until": null})).await;
    assert_eq!(banned.status, 200, "{}", banned.text);
    for task in sign_ins {
        let (status, body) = task.await.unwrap();
        match status {
            200 => {
                let key = body["data"]["key"].as_str().unwrap();
                app.validate(key).await.assert_invalid_key();
            }
            403 => assert_eq!(body["error"], "Account suspended"),
            // Throttled (in-flight attempts count), or the machine is overloaded: both fine here,
            // where what matters is that no key outlives the suspension.
            429 | 503 => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(details(&app, &admin, &id).await.body["data"]["live_keys"], 0);
}

#[tokio::test]
async fn the_command_line_suspends_for_a_while_and_lifts() {
    let app = spawn_app().await;
    let player = app.user("cli_banned").await;
    let out = app
        .cli(
            &[
                "admin",
                "suspend",
                "--username",
                "cli_banned",
                "--reason",
                "toxic chat",
                "--for",
                "2h",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("suspended cli_banned until"));
    // Revoked by another process: refused within a second.
    eventually_invalid(&app, &player).await;
    let answer = app.sign_in("cli_banned", PASSWORD).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.body["data"]["suspension"]["reason"], "toxic chat");
    assert!(answer.body["data"]["suspension"]["until"].is_string());

    for bad in [
        vec!["--until", "next tuesday"],
        vec!["--for", "2h", "--until", "2030-01-01T00:00:00Z"],
        vec!["--until", "2000-01-01T00:00:00Z"],
    ] {
        let mut args = vec!["admin", "suspend", "--username", "cli_banned", "--reason", "x"];
        args.extend(bad.iter().copied());
        let out = app.cli(&args, "").await;
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
    let out = app
        .cli(&["admin", "unsuspend", "--username", "cli_banned"], "")
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.sign_in("cli_banned", PASSWORD).await.key();
    let out = app
        .cli(&["admin", "unsuspend", "--username", "cli_banned"], "")
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not suspended"));
}

#[tokio::test]
async fn roles_change_on_the_command_line_but_the_last_administrator_stays() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let out = app
        .cli(
            &["admin", "set-role", "--username", "root_admin", "--role", "USER"],
            "",
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("last administrator"));

    let player = app.user("promoted").await;
    assert_eq!(
        app.request("GET", "/admin/users", Some(&player), None)
            .await
            .status,
        403
    );
    let out = app
        .cli(
            &["admin", "set-role", "--username", "promoted", "--role", "ADMIN"],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("promoted is now ADMIN"));
    // The role comes with the next sign-in: the old key is revoked (within a second, another
    // process changed it).
    eventually_invalid(&app, &player).await;
    let player = app.sign_in("promoted", PASSWORD).await.key();
    assert_eq!(
        app.request("GET", "/admin/users", Some(&player), None)
            .await
            .status,
        200
    );
    // Now the first administrator may step down; the second may not.
    let out = app
        .cli(
            &["admin", "set-role", "--username", "root_admin", "--role", "USER"],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = app
        .cli(
            &["admin", "set-role", "--username", "promoted", "--role", "USER"],
            "",
        )
        .await;
    assert!(!out.status.success());
    let id = user_id(&app, &player).await;
    let events = app
        .request("GET", &format!("/admin/events?user={id}"), Some(&player), None)
        .await;
    let kinds: Vec<&str> = events.body["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..3],
        ["signed_in", "role_changed", "key_revoked"],
        "{}",
        events.text
    );
    assert_eq!(
        events.body["data"]["events"][1]["detail"],
        json!({"from": "USER", "to": "ADMIN"})
    );
    let _ = admin;
}
