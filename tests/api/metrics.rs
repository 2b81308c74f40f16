//! `GET /metrics`: Prometheus text, outside the envelope, counting what clients see.

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};

async fn scrape(app: &TestApp) -> String {
    let r = app.request("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.body.is_null(), "not the JSON envelope: {}", r.text);
    r.text
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(r#"killbill_auth_http_requests_total{{route="{route}",method="{method}",status="{status}"}}"#)
}

#[tokio::test]
async fn requests_are_counted_by_route_method_and_status() {
    let app = spawn_app().await;
    let key = app.user("oren_ishii").await;
    for _ in 0..3 {
        assert_eq!(app.validate(&key).await.status, 200);
    }
    app.validate("not-a-key").await.assert_invalid_key();
    assert_eq!(
        app.sign_in("oren_ishii", "wrong password, surely").await.status,
        401
    );
    assert_eq!(
        app.request(
            "DELETE",
            "/auth/keys/00000000-0000-0000-0000-000000000000",
            Some(&key),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        app.request("GET", "/wp-admin/setup.php", None, None).await.status,
        404
    );
    assert_eq!(app.request("PATCH", "/auth", None, None).await.status, 405);

    let text = scrape(&app).await;
    for (series, expected) in [
        (requests("/auth", "GET", 200), 3.0),
        (requests("/auth", "GET", 403), 1.0),
        (requests("/users", "POST", 200), 1.0),
        (requests("/auth", "POST", 401), 1.0),
        (requests("/auth/keys/{id}", "DELETE", 404), 1.0),
        (requests("unmatched", "GET", 404), 1.0),
        (requests("/auth", "PATCH", 405), 1.0),
        ("killbill_auth_cached_keys".to_owned(), 1.0),
    ] {
        assert_eq!(sample(&text, &series), Some(expected), "{series} in:\n{text}");
    }
    // Paths of unknown routes, keys, names and addresses never become labels.
    assert!(
        !text.contains("wp-admin") && !text.contains(&key) && !text.contains("oren_ishii"),
        "{text}"
    );
    // The scrape itself is counted once it is answered.
    assert_eq!(
        sample(&scrape(&app).await, &requests("/metrics", "GET", 200)),
        Some(1.0)
    );
}

#[tokio::test]
async fn revocations_are_counted_by_reason() {
    let app = spawn_app_with(|s| s.anomaly.max_networks = 1).await;
    let key = app.user("bill").await;
    assert_eq!(app.request("DELETE", "/auth", Some(&key), None).await.status, 200);
    let key = app.sign_in("bill", PASSWORD).await.key();
    app.validate_from("127.0.9.1", &key).await.assert_invalid_key();

    let text = scrape(&app).await;
    let revoked = |reason: &str| {
        sample(
            &text,
            &format!(r#"killbill_auth_keys_revoked_total{{reason="{reason}"}}"#),
        )
    };
    assert_eq!(revoked("signed_out"), Some(1.0), "{text}");
    assert_eq!(revoked("ip_changes"), Some(1.0), "{text}");
    assert_eq!(revoked("request_flood"), Some(0.0), "{text}");
    assert!(text.contains("# HELP killbill_auth_keys_revoked_total"), "{text}");
}
