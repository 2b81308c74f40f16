//! `GET /`, `GET /health`, unknown routes and methods, common headers.

use crate::helpers::spawn_app;

#[tokio::test]
async fn index_names_the_service_and_version() {
    let app = spawn_app().await;
    let r = app.request("GET", "/", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["success"], true);
    assert!(r.body["error"].is_null());
    assert_eq!(r.body["data"]["name"], "killbill-auth");
    assert_eq!(r.body["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn health_reports_the_database() {
    let app = spawn_app().await;
    let r = app.request("GET", "/health", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        serde_json::json!({"status": "ok", "database": "ok"})
    );
}

#[tokio::test]
async fn a_lost_database_is_503_and_fails_closed() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    app.store.close().await;
    let r = app.request("GET", "/health", None, None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["success"], false);
    assert_eq!(r.body["data"]["database"], "unreachable");
    assert_eq!(r.header("retry-after"), Some("1"));
    // A valid key that is not cached cannot be checked: 503, never 200 and never the 403
    // that would tell the client to throw its key away.
    let r = app.validate(&key).await;
    assert_eq!(
        r.assert_error(503),
        "Service temporarily unavailable, retry later"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    r.header("retry-after").unwrap();
    let r = app.sign_in("bill", crate::helpers::PASSWORD).await;
    r.assert_error(503);
    let r = app.sign_up("bob", crate::helpers::PASSWORD).await;
    r.assert_error(503);
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_envelope() {
    let app = spawn_app().await;
    for path in ["/nope", "/auth/keys/x/y", "/users/you"] {
        let r = app.request("GET", path, None, None).await;
        assert_eq!(r.assert_error(404), "Not found");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let app = spawn_app().await;
    for (method, path) in [
        ("PUT", "/auth"),
        ("PATCH", "/users"),
        ("POST", "/"),
        ("GET", "/users/me/password"),
        ("POST", "/auth/keys"),
    ] {
        let r = app.request(method, path, None, None).await;
        assert_eq!(r.assert_error(405), "Method not allowed", "{method} {path}");
        assert!(r.header("allow").is_some(), "{method} {path}");
    }
}

#[tokio::test]
async fn every_answer_is_not_cached_and_not_sniffed() {
    let app = spawn_app().await;
    for path in ["/", "/nope", "/auth"] {
        let r = app.request("GET", path, None, None).await;
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert!(r.header("server").is_none());
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_proxys_is_kept() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/", "/nope", "/auth", "/", "/auth"] {
        let r = app.request("GET", path, None, None).await;
        let id = r.header("x-request-id").expect("x-request-id").to_owned();
        assert!(!id.is_empty() && seen.insert(id), "{path}: ids are unique");
    }
    for path in ["/", "/auth"] {
        let r = app
            .send(app.client.get(app.url(path)).header("x-request-id", "edge-42"))
            .await;
        assert_eq!(r.header("x-request-id"), Some("edge-42"), "{path}");
    }
}

#[tokio::test]
async fn oversized_headers_are_431_never_500() {
    let app = spawn_app().await;
    let big = "x".repeat(20 * 1024);
    let r = app
        .send(app.client.get(app.url("/")).header("x-junk", &big))
        .await;
    assert_eq!(
        r.assert_error(431),
        "Request headers too large (the limit is 16 KiB)"
    );
    let r = app
        .send(
            app.client
                .get(app.url("/auth"))
                .header("authorization", format!("Bearer {big}")),
        )
        .await;
    r.assert_error(431);
    // Very many headers: refused by the limit or by hyper itself, never a 500.
    let mut req = app.client.get(app.url("/"));
    for i in 0..500 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = app.send(req).await;
    assert!(r.status == 431 || r.status == 400, "{} {}", r.status, r.text);
}

/// `GET /health/ready` (API.md, for load balancers): ready while the database answers; once it
/// does not, ready and validating cached keys for `database.outage_grace` after the revocation
/// feed was last read, then 503 for both (the grace measured on the service's clock).
#[tokio::test]
async fn readiness_follows_the_database_and_the_outage_grace() {
    let app = spawn_app().await;
    let key = app.user("bill").await;
    let r = app.request("GET", "/health/ready", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        serde_json::json!({"ready": true, "database": "ok"})
    );
    assert_eq!(app.validate(&key).await.status, 200, "cached");

    app.store.close().await;
    let r = app.request("GET", "/health/ready", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        serde_json::json!({"ready": true, "database": "unreachable"})
    );
    assert_eq!(app.validate(&key).await.status, 200, "within the grace");
    // Past the grace (30 s by default) on the service's clock: once a read of the feed has
    // failed (every second), cached keys are 503 too.
    app.clock.advance(std::time::Duration::from_secs(31));
    let mut refused = None;
    for _ in 0..40 {
        let r = app.validate(&key).await;
        if r.status != 200 {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = refused.expect("a cached key still validates past the grace");
    assert_eq!(
        r.assert_error(503),
        "Service temporarily unavailable, retry later"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = app.request("GET", "/health/ready", None, None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["success"], false);
    assert_eq!(
        r.body["data"],
        serde_json::json!({"ready": false, "database": "unreachable"})
    );
    assert_eq!(
        r.body["error"],
        "Not ready: the database is unreachable and the outage grace is over"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
}
