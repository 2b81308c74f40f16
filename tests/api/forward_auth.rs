//! Forward auth behind a real nginx and a real Caddy (issue 15): Debian's nginx runs
//! `deploy/nginx-forward-auth.conf`, and Debian's Caddy `deploy/caddy-forward-auth.caddy`, as they
//! are, in front of the real service and a tiny back end that echoes what it received. A
//! valid key reaches the back end with `X-Auth-User-Id`/`X-Auth-Username` (the client's own are
//! replaced) and without the key; an invalid key gets the seed's 403 body; a key signed out is
//! refused at once; a SERVICE key is refused; the rate limit's 429 and an unreachable service's
//! 503 come through with `Retry-After`. Needs Debian's `nginx` and `caddy` packages (`./test`
//! installs them): without them these tests fail, saying so.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::helpers::{free_port, installed, spawn_app_with, PASSWORD};

/// The body of every invalid-key answer, as the service writes it (API.md, exactly).
const INVALID_KEY: &str = r#"{"success":false,"data":null,"error":"Invalid access key"}"#;
const FORBIDDEN: &str = r#"{"success":false,"data":null,"error":"Forbidden"}"#;
/// Where the players are: not the proxy's address, so that the service can only know it from
/// the proxy's X-Forwarded-For.
const CLIENT_IP: &str = "127.0.0.2";

/// The protected back end: answers every request with what it received, as JSON
/// (`{"method", "uri", "headers": {name: [values]}, "body"}`), and counts the requests.
async fn spawn_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    async fn echo(State(seen): State<Arc<AtomicUsize>>, req: Request) -> Json<Value> {
        seen.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = req.into_parts();
        let mut headers = Map::new();
        for (name, value) in &parts.headers {
            let values = headers
                .entry(name.as_str().to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(values) = values {
                values.push(Value::from(value.to_str().unwrap_or("<not text>")));
            }
        }
        let body = axum::body::to_bytes(body, 1 << 16).await.unwrap_or_default();
        Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(echo).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A reverse proxy in the foreground with its own directory (configuration, logs, temporary
/// files) and port; stopped (SIGTERM, which stops nginx's workers too) when dropped.
struct Proxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The file in `dir` where it logs its errors.
    log: &'static str,
}

/// A directory the proxy's workers can get through when run as root (CI): nginx's workers are
/// `nobody`.
fn proxy_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

impl Proxy {
    /// nginx with `deploy/nginx-forward-auth.conf` included in its server block.
    fn nginx(binary: &Path, auth: SocketAddr, backend: SocketAddr) -> Proxy {
        let dir = proxy_dir();
        let d = dir.path().display();
        let port = free_port();
        let snippet = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx-forward-auth.conf");
        let conf = format!(
            "worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log notice;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
                 access_log {d}/access.log;\n\
                 client_body_temp_path {d}/client_body;\n\
                 proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n\
                 scgi_temp_path {d}/scgi;\n\
                 server_tokens off;\n\
                 upstream killbill_auth {{ server {auth}; keepalive 8; keepalive_timeout 50s; }}\n\
                 upstream game_backend {{ server {backend}; }}\n\
                 server {{\n\
                     listen 127.0.0.1:{port};\n\
                     include {snippet};\n\
                 }}\n\
             }}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let args = |extra: &[&str]| {
            let mut command = Command::new(binary);
            command
                .arg("-p")
                .arg(format!("{d}/"))
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .args(extra)
                .stdin(Stdio::null());
            command
        };
        let test = args(&["-t", "-q"]).output().expect("run nginx -t");
        assert!(
            test.status.success(),
            "nginx rejects the configuration: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = args(&["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Proxy {
            child,
            dir,
            port,
            log: "error.log",
        }
    }

    /// Caddy with `deploy/caddy-forward-auth.caddy` imported as it is, configured by its
    /// environment variables; only the global options (no admin endpoint, no automatic HTTPS)
    /// are the test's.
    fn caddy(binary: &Path, auth: SocketAddr, backend: SocketAddr) -> Proxy {
        let dir = proxy_dir();
        let port = free_port();
        let site = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/caddy-forward-auth.caddy");
        let conf_path = dir.path().join("Caddyfile");
        std::fs::write(
            &conf_path,
            format!("{{\n\tadmin off\n\tauto_https off\n}}\nimport {site}\n"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
        let child = Command::new(binary)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf_path)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("KILLBILL_SITE", format!("http://127.0.0.1:{port}"))
            .env("KILLBILL_AUTH_UPSTREAMS", auth.to_string())
            .env("GAME_BACKEND", backend.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start caddy");
        Proxy {
            child,
            dir,
            port,
            log: "caddy.log",
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Whether the process has ended (a proxy that cannot start stops at once).
    fn stopped(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// What the back end received, from its echo.
    fn received(&self, name: &str) -> Vec<String> {
        match &self.json()["headers"][name] {
            Value::Array(values) => values.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            _ => Vec::new(),
        }
    }

    fn assert_refused(&self, body: &str, what: &str) {
        assert_eq!(self.status, 403, "{what}: {}", self.text);
        assert_eq!(self.text, body, "{what}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{what}");
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("request through the proxy");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

#[tokio::test]
#[cfg_attr(not(feature = "external"), ignore = "needs nginx: ./test runs it")]
async fn nginx_forward_auth_protects_a_back_end_with_killbill_auth() {
    let Some(binary) = installed("nginx", "/usr/sbin/nginx") else {
        panic!(
            "nginx is not installed: run ./test (it installs Debian's nginx package), \
             or apt-get install -y nginx"
        );
    };
    protects_a_back_end(|auth, backend| Proxy::nginx(&binary, auth, backend)).await;
}

#[tokio::test]
#[cfg_attr(not(feature = "external"), ignore = "needs Caddy: ./test runs it")]
async fn caddy_forward_auth_protects_a_back_end_with_killbill_auth() {
    let Some(binary) = installed("caddy", "/usr/bin/caddy") else {
        panic!(
            "caddy is not installed: run ./test (it installs Debian's caddy package), \
             or apt-get install -y caddy"
        );
    };
    protects_a_back_end(|auth, backend| Proxy::caddy(&binary, auth, backend)).await;
}

/// The same checks through either proxy, started by `start(killbill-auth, back end)`.
async fn protects_a_back_end(start: impl Fn(SocketAddr, SocketAddr) -> Proxy) {
    let app = spawn_app_with(|s| {
        // The proxy's address: its X-Forwarded-For is believed.
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.rate_limit.key_per_second = 1;
        s.rate_limit.key_burst = 30;
    })
    .await;
    let (backend, seen) = spawn_echo().await;
    let player = reqwest::Client::builder()
        .local_address(CLIENT_IP.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Up when it answers (no key: refused, without reaching the back end). Its port was free
    // when chosen, but another socket can take it before the proxy binds it (Caddy binds every
    // address, so even a test's outgoing connection on that ephemeral port does): then it
    // stops at once saying so, and starts again on another port.
    let mut attempts = 0;
    let (proxy, started) = loop {
        attempts += 1;
        let mut proxy = start(app.addr, backend);
        let mut started = None;
        for _ in 0..200 {
            if let Ok(r) = player.get(proxy.url("/")).send().await {
                started = Some(r.status().as_u16());
                break;
            }
            if proxy.stopped() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let port_taken = proxy.stopped()
            && proxy
                .error_log()
                .to_lowercase()
                .contains("address already in use");
        if port_taken && attempts < 5 {
            continue;
        }
        break (proxy, started);
    };
    assert_eq!(
        started,
        Some(403),
        "the proxy did not start: {}",
        proxy.error_log()
    );

    // No key, a malformed one, an unknown one: the seed's 403, exactly as the service writes it.
    let unknown = "A".repeat(43) + "=";
    for (what, key) in [
        ("no key", None),
        ("malformed", Some("nope")),
        ("unknown", Some(unknown.as_str())),
    ] {
        let mut req = player.get(proxy.url("/match/42"));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let r = send(req).await;
        r.assert_refused(INVALID_KEY, what);
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#),
            "{what}"
        );
        assert_eq!(
            r.json(),
            json!({"success": false, "data": null, "error": "Invalid access key"})
        );
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing reached the back end");

    // A valid key reaches the back end with who the player is; whatever the client claims under
    // those names, in any spelling, is replaced; the key itself stays out.
    let signed_up = app.sign_up("bill", PASSWORD).await;
    let key = signed_up.key();
    let user_id = signed_up.body["data"]["user"]["id"].as_str().unwrap();
    let r = send(
        player
            .post(proxy.url("/match/42/join?team=red"))
            .bearer_auth(&key)
            .header("X-Auth-User-Id", "00000000-0000-0000-0000-000000000000")
            .header("x-auth-username", "mallory")
            .header("content-type", "application/json")
            .body(r#"{"seat": 3}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let echoed = r.json();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["uri"], "/match/42/join?team=red");
    assert_eq!(
        echoed["body"], r#"{"seat": 3}"#,
        "the body goes to the back end, not to killbill-auth"
    );
    assert_eq!(r.received("x-auth-user-id"), [user_id]);
    assert_eq!(r.received("x-auth-username"), ["bill"]);
    assert!(r.received("authorization").is_empty(), "{echoed}");
    assert_eq!(r.received("x-forwarded-for"), [CLIENT_IP]);
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // killbill-auth saw the player's address through the proxy's X-Forwarded-For (the anomaly
    // rules and the throttles judge players, not the proxy).
    let other = app.sign_in("bill", PASSWORD).await.key();
    let keys = app.keys(&other).await;
    let through_proxy = keys.body["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .cloned()
        .unwrap();
    assert_eq!(through_proxy["last_ip"], CLIENT_IP, "{}", keys.text);

    // Signed out (at the service): refused through the proxy at once, within a second at most.
    assert_eq!(app.request("DELETE", "/auth", Some(&key), None).await.status, 200);
    let signed_out = Instant::now();
    loop {
        let r = send(player.get(proxy.url("/match/42")).bearer_auth(&key)).await;
        if r.status == 403 {
            r.assert_refused(INVALID_KEY, "signed out");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            signed_out.elapsed() < Duration::from_secs(1),
            "a signed-out key still passes the proxy after {:?}",
            signed_out.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "signed-out key refused through the proxy after {:?}",
        signed_out.elapsed()
    );
    let reached = seen.load(Ordering::SeqCst);

    // A SERVICE key is a game server's, not a player's: refused (403 Forbidden).
    let service = crate::services::service_key(&app, "matchmaker").await;
    let r = send(player.get(proxy.url("/match/42")).bearer_auth(&service)).await;
    r.assert_refused(FORBIDDEN, "service key");
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(
        seen.load(Ordering::SeqCst),
        reached,
        "the back end was not reached"
    );

    // The key's rate limit: 429 with Retry-After, not the proxy's own error (the key stays valid).
    let busy = app.sign_in("bill", PASSWORD).await.key();
    let mut limited = None;
    for _ in 0..60 {
        let r = send(player.get(proxy.url("/ping")).bearer_auth(&busy)).await;
        match r.status {
            200 => continue,
            429 => {
                limited = Some(r);
                break;
            }
            other => panic!("{other}: {}", r.text),
        }
    }
    let r = limited.expect("the rate limit answers 429 through the proxy");
    assert_eq!(r.json()["error"], "Too many requests, retry later");
    assert!(r
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));

    // killbill-auth gone: 503 with Retry-After, never the back end and never a 500.
    let reached = seen.load(Ordering::SeqCst);
    app.stop().await;
    let r = send(player.get(proxy.url("/match/42")).bearer_auth(&other)).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["success"], false);
    assert_eq!(seen.load(Ordering::SeqCst), reached);
    drop(proxy);
}
