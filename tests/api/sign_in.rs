//! `POST /auth`.

use killbill_auth::service::hasher;

use crate::helpers::{spawn_app, PASSWORD};

#[tokio::test]
async fn sign_in_issues_a_fresh_key_each_time() {
    let app = spawn_app().await;
    app.user("Bill").await;
    let a = app.sign_in("Bill", PASSWORD).await.key();
    let b = app.sign_in("bill", PASSWORD).await.key();
    assert_ne!(a, b);
    assert_eq!(a.len(), 44);
    assert_eq!(app.validate(&a).await.status, 200);
    assert_eq!(app.validate(&b).await.status, 200);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_answer_the_same() {
    let app = spawn_app().await;
    app.user("bill").await;
    let wrong = app.sign_in("bill", "not the password at all").await;
    let unknown = app.sign_in("nobody_here", "not the password at all").await;
    let invalid_name = app.sign_in("no such name!", "not the password at all").await;
    for r in [&wrong, &unknown, &invalid_name] {
        assert_eq!(r.assert_error(401), "Invalid username or password");
        assert_eq!(r.text, wrong.text);
    }
    let mut a: Vec<_> = wrong
        .headers
        .keys()
        .filter(|k| !["date", "x-request-id"].contains(&k.as_str()))
        .collect();
    let mut b: Vec<_> = unknown
        .headers
        .keys()
        .filter(|k| !["date", "x-request-id"].contains(&k.as_str()))
        .collect();
    a.sort_by_key(|k| k.as_str().to_owned());
    b.sort_by_key(|k| k.as_str().to_owned());
    assert_eq!(a, b);
}

#[tokio::test]
async fn passwords_are_kept_as_typed_but_unicode_normalised() {
    let app = spawn_app().await;
    let spaced = "  correct horse 🐎 ステープル  ";
    app.sign_up("spaces", spaced).await.key();
    assert_eq!(app.sign_in("spaces", spaced).await.status, 200);
    assert_eq!(app.sign_in("spaces", spaced.trim()).await.status, 401);

    let nfc = "caf\u{e9} au lait, s'il vous pla\u{ee}t";
    let nfd = "cafe\u{301} au lait, s'il vous plai\u{302}t";
    app.sign_up("cafe", nfc).await.key();
    assert_eq!(app.sign_in("cafe", nfd).await.status, 200);
}

#[tokio::test]
async fn passwords_are_never_truncated() {
    let app = spawn_app().await;
    let long: String = (0..100).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
    app.sign_up("longpw", &long).await.key();
    assert_eq!(app.sign_in("longpw", &long).await.status, 200);
    for attempt in [&long[..72], &long[..99], &format!("{long}x")] {
        assert_eq!(app.sign_in("longpw", attempt).await.status, 401);
    }
    // An oversized password is just a wrong password at sign-in.
    assert_eq!(
        app.sign_in("longpw", &"x".repeat(10_000)).await.assert_error(401),
        "Invalid username or password"
    );
}

#[tokio::test]
async fn a_sign_in_flood_gets_503_with_retry_after_and_validation_keeps_working() {
    // Costly enough that the hashing queue fills before it drains.
    let app = crate::helpers::spawn_app_with(|s| {
        s.password.argon2_memory_kib = 8192;
        s.password.argon2_iterations = 8;
        crate::helpers::hashing_only(s);
    })
    .await;
    let key = app.user("bill").await;
    // More sign-ins at once than the hashing queue and its waiting room hold: the excess is
    // refused at once, some waiting ones are refused after waiting, the rest are checked.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let room = cores * (hasher::QUEUE_PER_WORKER + hasher::WAITING_PER_WORKER);
    let mut flood = Vec::new();
    for i in 0..room + 60 {
        let client = app.client.clone();
        let url = app.url("/auth");
        flood.push(tokio::spawn(async move {
            let body =
                serde_json::json!({"username": "bill", "password": format!("guess number {i} of many")});
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap();
            (status, retry_after, body)
        }));
    }
    // Validation does not queue behind hashing.
    let r = app.validate(&key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (mut refused, mut wrong) = (0, 0);
    for f in flood {
        let (status, retry_after, body) = f.await.unwrap();
        match status {
            503 => {
                refused += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert_eq!(body["success"], false);
            }
            401 => wrong += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0, "the bounded queue refused the excess");
    assert!(wrong > 0, "the rest were checked");
    // Once the flood is over, sign-in works again.
    assert_eq!(app.sign_in("bill", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn clients_hanging_up_mid_request_leave_the_database_working() {
    let app = crate::helpers::spawn_app_with(|s| {
        crate::helpers::hashing_only(s);
        // Up to 800 sign-ups reach the service: the throttle is not what this test is about.
        s.throttle.signups_per_network = 10_000;
    })
    .await;
    app.user("bill").await;
    for round in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..40 {
            let client = app.client.clone();
            let (auth, users) = (app.url("/auth"), app.url("/users"));
            tasks.push(tokio::spawn(async move {
                let body = serde_json::json!({"username": "bill", "password": PASSWORD});
                let _ = client.post(auth).json(&body).send().await;
                let body = serde_json::json!({"username": format!("u{round}x{i}"), "password": PASSWORD});
                let _ = client.post(users).json(&body).send().await;
            }));
        }
        // Hang up while sign-ins and sign-ups are in their transactions.
        tokio::time::sleep(std::time::Duration::from_millis(1 + round)).await;
        for t in &tasks {
            t.abort();
        }
    }
    // The handlers of the hung-up requests finish their work (it is not cancelled): the service
    // may answer 503 while that backlog drains, and must then work again.
    let drained = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = app.sign_in("bill", PASSWORD).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(
            std::time::Instant::now() < drained,
            "still 503 a minute after the storm"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A fresh account (bill's keys may still be evicted by the storm's last sign-ins).
    let key = loop {
        let r = app.sign_up("after_the_storm", PASSWORD).await;
        if r.status == 200 {
            break r.key();
        }
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(
            std::time::Instant::now() < drained,
            "still 503 a minute after the storm"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(app.validate(&key).await.status, 200);
    assert_eq!(app.request("DELETE", "/auth", Some(&key), None).await.status, 200);
    app.validate(&key).await.assert_invalid_key();
}
