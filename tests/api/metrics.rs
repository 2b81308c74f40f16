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

/// Every `killbill_auth_*` name in `text` (the dashboard, the alert rules, the docs).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    const PREFIX: &str = "killbill_auth_";
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        // `killbill_auth_*` in prose names no metric.
        if end > PREFIX.len() {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end.max(PREFIX.len())..];
    }
    names
}

/// The sample names of an exposition (`name{labels} value` or `name value`), and the types
/// declared by `# TYPE` lines.
fn exposed(
    text: &str,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeMap<String, String>,
) {
    let mut samples = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_owned());
        }
    }
    (samples, types)
}

/// The metrics only an instance on PostgreSQL has (its revocation listener).
const POSTGRES_ONLY: [&str; 2] = [
    "killbill_auth_revocation_listener_connected",
    "killbill_auth_revocation_listener_failures_total",
];

/// The Grafana dashboard, the alert rules and book/src/operating/alerting.md query only what a real server
/// exposes: each `killbill_auth_*` name they hold is a sample name in `/metrics` after some
/// traffic (a histogram's `_bucket`, `_sum` and `_count` included), of the type its use needs.
#[tokio::test]
async fn the_dashboard_and_the_alerts_query_only_what_the_server_exposes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |path: &str| {
        std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let dashboard_text = read("deploy/grafana/killbill-auth.json");
    let rules = read("deploy/prometheus/killbill-auth-alerts.yml");
    let alerting = read("book/src/operating/alerting.md");

    // Some of everything: sign-ups, sign-ins right and wrong, validations, a revocation, a
    // ticket, a throttled sign-in.
    let app = spawn_app_with(|s| s.throttle.signin_failures_per_account_network = 2).await;
    let key = app.user("grafana_fan").await;
    assert_eq!(app.validate(&key).await.status, 200);
    for _ in 0..3 {
        app.sign_in("grafana_fan", "not the password at all").await;
    }
    assert_eq!(
        app.request("POST", "/auth/tickets", Some(&key), None)
            .await
            .status,
        200
    );
    assert_eq!(app.request("DELETE", "/auth", Some(&key), None).await.status, 200);
    app.request("GET", "/health", None, None).await;
    let text = scrape(&app).await;
    let (samples, types) = exposed(&text);
    let backend = crate::BACKEND;

    for (what, source) in [
        ("deploy/grafana/killbill-auth.json", &dashboard_text),
        ("deploy/prometheus/killbill-auth-alerts.yml", &rules),
        ("book/src/operating/alerting.md", &alerting),
    ] {
        let names = metric_names(source);
        assert!(names.len() >= 5, "{what}: {names:?}");
        for name in &names {
            if backend == crate::helpers::Backend::Sqlite && POSTGRES_ONLY.contains(&name.as_str()) {
                assert!(!samples.contains(name), "{name} is not PostgreSQL-only after all");
                continue;
            }
            assert!(
                samples.contains(name),
                "{what} queries {name}, which /metrics does not have:\n{text}"
            );
            // A histogram's series are queried by their suffixes, never by the bare name.
            if let Some(base) = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
            {
                if types.get(base).is_some_and(|t| t == "histogram") {
                    continue;
                }
            }
            assert!(
                types.contains_key(name),
                "{what}: {name} is not a declared metric"
            );
        }
    }
    // Every metric the service declares is on the dashboard.
    let on_dashboard = metric_names(&dashboard_text);
    for (name, kind) in &types {
        let shown = if kind == "histogram" {
            on_dashboard.contains(&format!("{name}_bucket"))
        } else {
            on_dashboard.contains(name)
        };
        assert!(shown, "{name} ({kind}) is not on the dashboard");
    }
    // The rules in the docs are the rules file.
    assert!(
        alerting.contains(&rules),
        "book/src/operating/alerting.md must hold deploy/prometheus/killbill-auth-alerts.yml as it is"
    );

    // The dashboard is a Grafana dashboard with the Prometheus data source as a variable, which
    // every panel and query uses.
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables
        .iter()
        .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"));
    let mut ids = std::collections::HashSet::new();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate id: {panel}");
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("killbill_auth_"), "{expr}");
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{}: {expr}",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries}");
}
