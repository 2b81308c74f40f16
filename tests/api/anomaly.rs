//! Keys expire on unusual access: many networks, request floods; and the per-key rate limit.
//! Clients connect from different loopback addresses (all of 127.0.0.0/8 is local on Linux).

use std::time::Duration;

use killbill_auth::config::HumanDuration;

use crate::helpers::{spawn_app_with, spawn_in, test_settings, TestApp, PASSWORD};

async fn revocation_reasons(app: &TestApp) -> Vec<String> {
    let key = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&key).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["data"]["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_fourth_network_revokes_when_three_are_allowed() {
    let app = spawn_app_with(|s| s.anomaly.max_networks = 3).await;
    // Issued from 127.0.0.0/24: that is the first network.
    let key = app.user("bill").await;
    assert_eq!(app.validate_from("127.0.1.1", &key).await.status, 200);
    assert_eq!(app.validate_from("127.0.2.1", &key).await.status, 200);
    assert_eq!(app.validate_from("127.0.0.7", &key).await.status, 200);
    // The request that crosses the line already gets the 403, with the seed's body.
    app.validate_from("127.0.3.1", &key).await.assert_invalid_key();
    app.validate_from("127.0.0.1", &key).await.assert_invalid_key();
    assert_eq!(revocation_reasons(&app).await, vec!["ip_changes"]);
    // The owner sees where the key was used from when it was revoked.
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&fresh).await;
    assert_eq!(listed.body["data"]["revoked"][0]["network"], "127.0.3.0/24");
}

#[tokio::test]
async fn fifty_addresses_inside_one_network_are_not_punished() {
    let app = spawn_app_with(|s| s.anomaly.max_networks = 3).await;
    let key = app.user("bill").await;
    for i in 1..=50 {
        let r = app.validate_from(&format!("127.0.9.{i}"), &key).await;
        assert_eq!(r.status, 200, "address {i}: {}", r.text);
    }
    assert_eq!(app.validate(&key).await.status, 200);
}

#[tokio::test]
async fn networks_age_out_of_the_window() {
    let app = spawn_app_with(|s| {
        s.anomaly.max_networks = 3;
        s.anomaly.window = HumanDuration(Duration::from_secs(3600));
    })
    .await;
    let key = app.user("bill").await;
    assert_eq!(app.validate_from("127.0.1.1", &key).await.status, 200);
    assert_eq!(app.validate_from("127.0.2.1", &key).await.status, 200);
    app.clock.advance(Duration::from_secs(3601));
    // A phone moving on: the old networks no longer count.
    for ip in ["127.0.3.1", "127.0.4.1", "127.0.5.1"] {
        assert_eq!(app.validate_from(ip, &key).await.status, 200, "{ip}");
    }
    app.validate_from("127.0.6.1", &key).await.assert_invalid_key();
}

#[tokio::test]
async fn untrusted_forwarded_for_is_ignored() {
    let app = spawn_app_with(|s| s.anomaly.max_networks = 3).await;
    let key = app.user("bill").await;
    for i in 1..=20 {
        let req = app
            .client
            .get(app.url("/auth"))
            .bearer_auth(&key)
            .header("x-forwarded-for", format!("10.{i}.0.1"));
        let r = app.send(req).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["data"]["key"]["last_ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_counts() {
    let app = spawn_app_with(|s| {
        s.anomaly.max_networks = 3;
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let key = app.user("bill").await;
    let via_proxy = |ip: &str| {
        app.client
            .get(app.url("/auth"))
            .bearer_auth(&key)
            .header("x-forwarded-for", ip)
    };
    let r = app.send(via_proxy("198.51.100.7")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["key"]["last_ip"], "198.51.100.7");
    assert_eq!(app.send(via_proxy("203.0.113.9")).await.status, 200);
    app.send(via_proxy("192.0.2.1")).await.assert_invalid_key();
    assert_eq!(revocation_reasons(&app).await, vec!["ip_changes"]);
}

#[tokio::test]
async fn a_flood_revokes_at_its_threshold() {
    let app = spawn_app_with(|s| {
        s.anomaly.flood_max_requests = 30;
        s.rate_limit.key_burst = 1000;
    })
    .await;
    let key = app.user("bill").await;
    for i in 0..30 {
        assert_eq!(app.validate(&key).await.status, 200, "request {i}");
    }
    app.validate(&key).await.assert_invalid_key();
    assert_eq!(revocation_reasons(&app).await, vec!["request_flood"]);
}

/// A burst on a key no request has loaded yet: the concurrent first requests share one read
/// and one counter, so the flood limit holds exactly (each loading its own entry let up to the
/// burst's width through). Several worker threads, as in the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_burst_on_a_fresh_key_passes_no_more_than_the_flood_limit() {
    const FLOOD: u64 = 10;
    let app = spawn_app_with(|s| {
        s.anomaly.flood_max_requests = FLOOD;
        s.rate_limit.key_burst = 1000;
    })
    .await;
    for round in 0..3 {
        let key = app.user(&format!("burst{round}")).await;
        // Each task opens its connection first, so that the requests arrive together.
        let ready = std::sync::Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let client = reqwest::Client::new();
            let (health, url) = (app.url("/health"), app.url("/auth"));
            let (key, ready) = (key.clone(), ready.clone());
            tasks.push(tokio::spawn(async move {
                client.get(health).send().await.unwrap();
                ready.wait().await;
                let r = client.get(url).bearer_auth(key).send().await.unwrap();
                r.status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        let passed = statuses.iter().filter(|s| **s == 200).count() as u64;
        assert_eq!(passed, FLOOD, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 403), "{statuses:?}");
        app.validate(&key).await.assert_invalid_key();
    }
}

#[tokio::test]
async fn the_rate_limit_answers_429_and_recovers_without_revoking() {
    let app = spawn_app_with(|s| {
        s.rate_limit.key_per_second = 1;
        s.rate_limit.key_burst = 3;
    })
    .await;
    let key = app.user("bill").await;
    for _ in 0..3 {
        assert_eq!(app.validate(&key).await.status, 200);
    }
    let r = app.validate(&key).await;
    assert_eq!(r.assert_error(429), "Too many requests, retry later");
    assert_eq!(r.header("retry-after"), Some("1"));
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.validate(&key).await.status, 200);
    assert!(revocation_reasons(&app).await.is_empty());
}

#[tokio::test]
async fn a_restart_does_not_reset_networks_or_floods() {
    let app = spawn_app_with(|s| {
        s.anomaly.max_networks = 3;
        s.anomaly.flood_max_requests = 20;
    })
    .await;
    let roaming = app.user("bill").await;
    let busy = app.sign_in("bill", PASSWORD).await.key();
    assert_eq!(app.validate_from("127.0.1.1", &roaming).await.status, 200);
    assert_eq!(app.validate_from("127.0.2.1", &roaming).await.status, 200);
    for _ in 0..15 {
        assert_eq!(app.validate(&busy).await.status, 200);
    }
    let dir = app.stop().await;

    let mut settings = test_settings(dir.path());
    settings.anomaly.max_networks = 3;
    settings.anomaly.flood_max_requests = 20;
    let app = spawn_in(dir, &settings).await;
    app.validate_from("127.0.3.1", &roaming)
        .await
        .assert_invalid_key();
    for _ in 0..5 {
        assert_eq!(app.validate(&busy).await.status, 200);
    }
    app.validate(&busy).await.assert_invalid_key();
    let mut reasons = revocation_reasons(&app).await;
    reasons.sort();
    assert_eq!(reasons, vec!["ip_changes", "request_flood"]);
}
