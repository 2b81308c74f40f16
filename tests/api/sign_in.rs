//! `POST /auth`.

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
