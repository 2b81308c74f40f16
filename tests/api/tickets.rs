//! Join tickets (issue 14): `POST /auth/tickets` with a player's key, `POST
//! /auth/tickets/redeem` with a service's, once, within `tickets.lifetime`, while the key that
//! asked is live.

use std::sync::Arc;
use std::time::Duration;

use killbill_auth::config::HumanDuration;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestResponse, PASSWORD};
use crate::services::{assert_forbidden, service_key};

const INVALID_TICKET: &str = r#"{"success":false,"data":null,"error":"Invalid ticket"}"#;

async fn ask(app: &TestApp, key: &str) -> TestResponse {
    app.request("POST", "/auth/tickets", Some(key), None).await
}

/// Asks for a ticket with `key` and returns it.
async fn ticket(app: &TestApp, key: &str) -> String {
    let r = ask(app, key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["ticket"].as_str().unwrap().to_owned()
}

async fn redeem(app: &TestApp, service: &str, ticket: &str) -> TestResponse {
    app.request(
        "POST",
        "/auth/tickets/redeem",
        Some(service),
        Some(json!({ "ticket": ticket })),
    )
    .await
}

fn assert_invalid_ticket(r: &TestResponse, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    assert_eq!(r.text, INVALID_TICKET, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("www-authenticate").is_none(), "{what}: the key is fine");
}

/// The player's user and current key id, as `GET /auth` shows them.
async fn who(app: &TestApp, key: &str) -> (Value, String) {
    let r = app.validate(key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = &r.body["data"];
    (
        data["user"].clone(),
        data["key"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_ticket_names_the_player_and_key_that_asked_and_is_redeemed_once() {
    let app = spawn_app().await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("Bill").await;
    let (user, key_id) = who(&app, &bill).await;

    let r = ask(&app, &bill).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    let data = r.body["data"].as_object().unwrap();
    assert_eq!(data.len(), 2, "{}", r.text);
    let ticket = data["ticket"].as_str().unwrap().to_owned();
    assert_eq!(ticket.len(), 43, "{ticket}");
    assert!(
        ticket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{ticket}"
    );
    // Expires tickets.lifetime (30 s) after it was asked for, RFC 3339 with milliseconds.
    let expires = data["expires"].as_str().unwrap();
    assert_eq!(expires.len(), 24, "{expires}");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    let now = killbill_auth::clock::Clock::now(app.clock.as_ref()).as_millis();
    assert_eq!(expires.timestamp_millis() - now, 30_000);

    let r = redeem(&app, &service, &ticket).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"success": true, "data": {"user": user, "key_id": key_id}, "error": null})
    );
    assert_invalid_ticket(&redeem(&app, &service, &ticket).await, "a second time");

    // `{}` as the body of the ask is fine too; each ask is a new ticket.
    let r = app
        .request("POST", "/auth/tickets", Some(&bill), Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let other = r.body["data"]["ticket"].as_str().unwrap();
    assert_ne!(other, ticket);
    assert_eq!(redeem(&app, &service, other).await.status, 200);
}

#[tokio::test]
async fn fifty_simultaneous_redemptions_of_one_ticket_succeed_once() {
    let app = spawn_app().await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    let (user, _) = who(&app, &bill).await;
    for round in 0..3 {
        let ticket = ticket(&app, &bill).await;
        let start = Arc::new(tokio::sync::Barrier::new(50));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let client = app.client.clone();
            let url = app.url("/auth/tickets/redeem");
            let (service, ticket, start) = (service.clone(), ticket.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                // Each on its own connection, all sent at once.
                let request = client
                    .post(url)
                    .bearer_auth(service)
                    .json(&json!({ "ticket": ticket }));
                start.wait().await;
                let r = request.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let won: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s == 200).collect();
        assert_eq!(won.len(), 1, "round {round}: {answers:?}");
        let body: Value = serde_json::from_str(&won[0].1).unwrap();
        assert_eq!(body["data"]["user"], user);
        for (status, text) in &answers {
            if *status != 200 {
                assert_eq!((*status, text.as_str()), (403, INVALID_TICKET));
            }
        }
    }
}

#[tokio::test]
async fn a_ticket_expires_after_its_lifetime() {
    let app = spawn_app_with(|s| s.tickets.lifetime = HumanDuration(Duration::from_secs(1))).await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    let late = ticket(&app, &bill).await;
    let in_time = ticket(&app, &bill).await;
    app.clock.advance(Duration::from_millis(999));
    assert_eq!(redeem(&app, &service, &in_time).await.status, 200);
    app.clock.advance(Duration::from_millis(1));
    assert_invalid_ticket(&redeem(&app, &service, &late).await, "expired");
    // The lifetime is bounded: 0 and more than 10 minutes stop the start-up.
    for bad in ["0s", "11m"] {
        let e = killbill_auth::config::Settings::load_from(
            None,
            vec![("KILLBILL_AUTH_TICKETS_LIFETIME".to_owned(), bad.to_owned())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tickets.lifetime"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_ticket_dies_with_the_key_that_asked_for_it() {
    let app = spawn_app().await;
    let service = service_key(&app, "matchmaker").await;

    // Signed out before the redemption.
    let bill = app.user("bill").await;
    let t = ticket(&app, &bill).await;
    assert_eq!(
        app.request("DELETE", "/auth", Some(&bill), None).await.status,
        200
    );
    assert_invalid_ticket(&redeem(&app, &service, &t).await, "signed out");

    // Every key revoked by a password change.
    let bill = app.sign_in("bill", PASSWORD).await.key();
    let t = ticket(&app, &bill).await;
    let body = json!({"current_password": PASSWORD, "new_password": "an entirely new passphrase"});
    let r = app
        .request("PUT", "/users/me/password", Some(&bill), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_invalid_ticket(&redeem(&app, &service, &t).await, "password changed");

    // The account deleted.
    let ann = app.user("ann").await;
    let t = ticket(&app, &ann).await;
    let r = app
        .request(
            "DELETE",
            "/users/me",
            Some(&ann),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_invalid_ticket(&redeem(&app, &service, &t).await, "account deleted");

    // Revoked by the command line.
    let carl = app.user("carl").await;
    let t = ticket(&app, &carl).await;
    let out = app.cli(&["admin", "revoke-keys", "--username", "carl"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_invalid_ticket(&redeem(&app, &service, &t).await, "revoked by an administrator");

    // A revoked key gets no ticket at all.
    ask(&app, &carl).await.assert_invalid_key();
}

#[tokio::test]
async fn a_ticket_dies_when_its_key_expires_but_asking_for_it_was_a_use() {
    let app = spawn_app_with(|s| {
        s.keys.lifetime = HumanDuration(Duration::from_secs(3 * 3600));
        s.keys.idle_timeout = HumanDuration(Duration::from_secs(3600));
        s.tickets.lifetime = HumanDuration(Duration::from_secs(600));
    })
    .await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    // Unused for 59 minutes, then asks: the ask is a use (not yet written to the database), so
    // the key is not idle two minutes later, when the ticket is redeemed.
    app.clock.advance(Duration::from_secs(59 * 60));
    let t = ticket(&app, &bill).await;
    app.clock.advance(Duration::from_secs(120));
    assert_eq!(redeem(&app, &service, &t).await.status, 200);
    // Kept in use (every 50 minutes) up to its lifetime's end; asked just before it ends,
    // redeemed just after.
    for _ in 0..2 {
        assert_eq!(app.validate(&bill).await.status, 200);
        app.clock.advance(Duration::from_secs(50 * 60));
    }
    assert_eq!(app.validate(&bill).await.status, 200);
    // Now 161 minutes after the sign-up; the lifetime ends at 180.
    app.clock.advance(Duration::from_secs(18 * 60 + 50));
    let t = ticket(&app, &bill).await;
    app.clock.advance(Duration::from_secs(20));
    assert_invalid_ticket(&redeem(&app, &service, &t).await, "key past its lifetime");
    app.validate(&bill).await.assert_invalid_key();
}

#[tokio::test]
async fn asking_is_a_use_of_the_key_under_the_anomaly_rules() {
    let app = spawn_app_with(|s| {
        s.anomaly.max_networks = 1;
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let bill = app.user("bill").await;
    let from = |ip: &str| {
        app.client
            .post(app.url("/auth/tickets"))
            .bearer_auth(&bill)
            .header("x-forwarded-for", ip)
    };
    assert_eq!(app.send(from("127.0.0.9")).await.status, 200);
    // A second network is one too many: the ask that crosses the line revokes the key.
    app.send(from("198.51.100.7")).await.assert_invalid_key();
    app.validate(&bill).await.assert_invalid_key();
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&fresh).await;
    assert_eq!(listed.body["data"]["revoked"][0]["reason"], "ip_changes");
}

#[tokio::test]
async fn the_routes_take_the_right_keys_only() {
    let app = spawn_app().await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    let t = ticket(&app, &bill).await;
    // A player's key cannot redeem (not even its own ticket), a service's cannot ask.
    assert_forbidden(&redeem(&app, &bill, &t).await, "a player's key on redeem");
    assert_forbidden(&ask(&app, &service).await, "a service key on ask");
    // No key, or a bad one.
    for key in [None, Some("not a key")] {
        let r = app
            .request("POST", "/auth/tickets/redeem", key, Some(json!({ "ticket": t })))
            .await;
        r.assert_invalid_key();
        app.request("POST", "/auth/tickets", key, None)
            .await
            .assert_invalid_key();
    }
    // Nothing above spent the ticket.
    assert_eq!(redeem(&app, &service, &t).await.status, 200);
}

#[tokio::test]
async fn bad_bodies_are_400_and_bad_tickets_are_all_the_same_403() {
    let app = spawn_app().await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    let redeem_raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/auth/tickets/redeem"))
            .bearer_auth(&service)
            .header("content-type", content_type)
            .body(body)
    };
    for (body, field) in [
        ("{}", "`ticket`"),
        (r#"{"ticket": 7}"#, "ticket:"),
        (r#"{"ticket": null}"#, "ticket:"),
        (r#"{"ticket": ["x"]}"#, "ticket:"),
        (r#"{"ticket": "x", "match_id": 3}"#, "match_id"),
        (r#"{"ticket": "#, "malformed JSON"),
        ("[]", "invalid"),
    ] {
        let r = app.send(redeem_raw(body, "application/json")).await;
        let error = r.assert_error(400);
        assert!(error.contains(field), "{body}: {error}");
    }
    let r = app.send(redeem_raw(r#"{"ticket": "x"}"#, "text/plain")).await;
    r.assert_error(415);

    let never_issued = {
        let r = ask(&app, &bill).await;
        let t = r.body["data"]["ticket"].as_str().unwrap().to_owned();
        // Same form, another value (the first character changed within the alphabet).
        let first = if t.starts_with('A') { "B" } else { "A" };
        format!("{first}{}", &t[1..])
    };
    let padded = format!("{}=", ticket(&app, &bill).await);
    let std_alphabet = format!("+{}", &ticket(&app, &bill).await[1..]);
    for garbage in [
        "",
        "x",
        &"!".repeat(43),
        &"A".repeat(44),
        bill.as_str(),
        padded.as_str(),
        std_alphabet.as_str(),
        never_issued.as_str(),
        &"é".repeat(100),
    ] {
        assert_invalid_ticket(&redeem(&app, &service, garbage).await, garbage);
    }

    // The ask takes no fields.
    let ask_raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/auth/tickets"))
            .bearer_auth(&bill)
            .header("content-type", content_type)
            .body(body)
    };
    let error = app
        .send(ask_raw(r#"{"match_id": 3}"#, "application/json"))
        .await
        .assert_error(400)
        .to_owned();
    assert!(error.contains("match_id"), "{error}");
    app.send(ask_raw("[]", "application/json"))
        .await
        .assert_error(400);
    app.send(ask_raw("hello", "text/plain")).await.assert_error(415);
    assert_eq!(app.send(ask_raw("", "text/plain")).await.status, 200);
}

#[tokio::test]
async fn tickets_are_counted_in_the_metrics() {
    let app = spawn_app().await;
    let service = service_key(&app, "matchmaker").await;
    let bill = app.user("bill").await;
    let t = ticket(&app, &bill).await;
    ticket(&app, &bill).await;
    assert_eq!(redeem(&app, &service, &t).await.status, 200);
    assert_eq!(redeem(&app, &service, &t).await.status, 403);
    assert_eq!(redeem(&app, &service, "nonsense").await.status, 403);
    let text = app.request("GET", "/metrics", None, None).await.text;
    for line in [
        r#"killbill_auth_tickets_total{outcome="issued"} 2"#,
        r#"killbill_auth_tickets_total{outcome="redeemed"} 1"#,
        r#"killbill_auth_tickets_total{outcome="refused"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
}
