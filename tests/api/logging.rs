//! Security events in the structured log of the real binary: one JSON object per line, with
//! escaped names, network and user id, and never a password or a key.

use serde_json::{json, Value};

use crate::helpers::{start_binary, PASSWORD};

fn events(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"))
        })
        .collect()
}

fn find<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

#[tokio::test]
async fn security_events_are_structured_escaped_and_free_of_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_binary(dir.path(), &[("KILLBILL_AUTH_ANOMALY_MAX_NETWORKS", "1")]).await;
    let client = reqwest::Client::new();

    let r = client
        .post(server.url("/users"))
        .json(&json!({"username": "bill", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let key = body["data"]["key"].as_str().unwrap().to_owned();
    let user_id = body["data"]["user"]["id"].as_str().unwrap().to_owned();

    let forged = "x\n{\"level\":\"INFO\",\"event\":\"signed_in\",\"message\":\"forged\"}\u{1b}[2J";
    for _ in 0..6 {
        let r = client
            .post(server.url("/auth"))
            .json(&json!({"username": forged, "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    for _ in 0..6 {
        client
            .post(server.url("/auth"))
            .json(&json!({"username": "bill", "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
    }
    // Used from a second network with max_networks = 1: revoked.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.3.4".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = elsewhere
        .get(server.url("/auth"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    server.child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let all = events(&log);

    let signed_up = find(&all, "signed_up");
    assert_eq!(signed_up.len(), 1);
    assert_eq!(signed_up[0]["user_id"], user_id.as_str());
    assert_eq!(signed_up[0]["network"], "127.0.0.0/24");
    assert_eq!(signed_up[0]["target"], "security");
    assert!(signed_up[0]["timestamp"].as_str().unwrap().ends_with('Z'));

    let failed = find(&all, "sign_in_failed");
    assert!(failed.len() >= 5, "{failed:?}");
    // A name that matches no account is logged only as its keyed digest (it may be a password).
    assert!(failed.iter().any(|e| e["user_id"] == ""
        && e["name_digest"].as_str().unwrap().len() == 32
        && e.get("username").is_none()));
    assert!(
        !log.contains("forged"),
        "a name that matches no account reached the log"
    );
    assert!(failed.iter().any(|e| e["user_id"] == user_id.as_str()));
    assert!(!find(&all, "sign_in_throttled").is_empty());
    // The forged line stayed inside a field: only the real sign-up was logged as such.
    assert!(find(&all, "signed_in").is_empty());

    let revoked = find(&all, "key_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["reason"], "ip_changes");
    assert_eq!(revoked[0]["network"], "127.0.3.0/24");
    assert_eq!(revoked[0]["user_id"], user_id.as_str());
    assert!(revoked[0]["key_id"].is_string());

    for secret in [PASSWORD, key.as_str(), "wrong password here"] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

/// What an attacker can repeat at will is logged at most once a second (throttled sign-ins) or
/// once a minute (`X-Forwarded-For` from an untrusted peer), with a count of what was left out;
/// and a password typed into the username field reaches neither the log nor the database.
#[tokio::test]
async fn repeated_events_are_sampled_and_mistyped_names_stay_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_binary(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let sign_in = |name: &'static str| {
        client
            .post(server.url("/auth"))
            .json(&json!({"username": name, "password": "wrong password here"}))
    };
    // A password typed as a name: once as a valid-looking name, once as an invalid one.
    let (valid, invalid) = ("Hunter2Hunter2x", "Tr0ub4dor&3 horse");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(sign_in(invalid).send().await.unwrap().status().as_u16());
    }
    for _ in 0..60 {
        statuses.push(sign_in(valid).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 8, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 55, "{statuses:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(sign_in(valid).send().await.unwrap().status(), 429);
    let r = client
        .post(server.url("/users"))
        .json(&json!({"username": "bill", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let key = body["data"]["key"].as_str().unwrap().to_owned();
    for _ in 0..20 {
        let r = client
            .get(server.url("/auth"))
            .bearer_auth(&key)
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    server.child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let all = events(&log);

    let throttled = find(&all, "sign_in_throttled");
    assert_eq!(throttled.len(), 2, "{throttled:?}");
    assert_eq!(throttled[0]["suppressed"], 0);
    assert_eq!(throttled[1]["suppressed"], 54);
    assert_eq!(throttled[0]["name_digest"].as_str().unwrap().len(), 32);
    let untrusted = find(&all, "untrusted_forwarded_for");
    assert_eq!(untrusted.len(), 1, "{untrusted:?}");
    assert_eq!(untrusted[0]["peer"], "127.0.0.1");

    let lowered = valid.to_ascii_lowercase();
    for typed in [valid, lowered.as_str(), invalid, "Tr0ub4dor"] {
        assert!(!log.contains(typed), "{typed:?} reached the log");
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(typed.len()).any(|w| w == typed.as_bytes()),
                "{typed:?} reached {}",
                entry.path().display()
            );
        }
    }
}
