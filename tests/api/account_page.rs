//! The account page (`GET /account`, issue 15) in a real browser: Debian's `chromium`, driven by
//! Debian's `chromedriver` through WebDriver (fantoccini), against the real server on its real
//! database. Each test drives flows a player would, with the keyboard or the mouse, and checks
//! what the page shows (every API error in words) and what the service then does (over HTTP).
//! Screenshots of the main views at phone (360x740) and desktop (1280x800) sizes are saved in
//! `target/test-artefacts/account/`, named by database and view.
//!
//! One chromedriver serves the whole test binary (started on first use, on a free port, under a
//! small shell watchdog that stops it when the test process is gone); each test has its own
//! headless browser with a fresh profile, whose session is deleted when the test ends, passed or
//! not. Needs Debian's `chromium` and `chromium-driver` packages (`./test` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::admin::{admin_key, user_id};
use crate::helpers::{
    free_port, installed, spawn_app, spawn_app_with, Backend, TestApp, TestResponse, PASSWORD,
};
use killbill_auth::clock::Clock;
use killbill_auth::http::routes::account::CONTENT_SECURITY_POLICY_VALUE;

const STORAGE: &str = "killbill-auth.key";
/// How long the page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// The test binary's chromedriver (started on first use) and the browser it drives.
struct Driver {
    port: u16,
    chromium: PathBuf,
}

async fn chromedriver() -> &'static Driver {
    static DRIVER: OnceCell<Driver> = OnceCell::const_new();
    static WATCHDOG: std::sync::OnceLock<std::sync::Mutex<std::process::Child>> = std::sync::OnceLock::new();
    DRIVER
        .get_or_init(|| async {
            let missing = |what: &str| -> ! {
                panic!(
                    "{what} is not installed: the account page's browser tests need Debian's chromium and \
                     chromedriver; run `apt-get install -y chromium chromium-driver` (./test does)"
                )
            };
            let chromedriver =
                installed("chromedriver", "/usr/bin/chromedriver").unwrap_or_else(|| missing("chromedriver"));
            let chromium = installed("chromium", "/usr/bin/chromium").unwrap_or_else(|| missing("chromium"));
            let port = free_port();
            // chromedriver in the background of a shell that stops it once this process is gone
            // (a static is never dropped, and a panicking test binary must leave nothing behind).
            let script = r#"
                "$0" --port="$1" --allowed-ips=127.0.0.1 --silent >/dev/null 2>&1 &
                driver=$!
                trap 'kill $driver 2>/dev/null' EXIT
                while kill -0 "$2" 2>/dev/null && kill -0 "$driver" 2>/dev/null; do sleep 0.5; done
            "#;
            let watchdog = Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(&chromedriver)
                .arg(port.to_string())
                .arg(std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            // Kept for as long as the process lives: it ends by itself once the process is gone.
            let _ = WATCHDOG.set(std::sync::Mutex::new(watchdog));
            let status = format!("http://127.0.0.1:{port}/status");
            let client = reqwest::Client::new();
            for _ in 0..200 {
                if let Ok(r) = client.get(&status).send().await {
                    if r.status().is_success() {
                        return Driver { port, chromium };
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("chromedriver did not start on port {port}");
        })
        .await
}

/// Where screenshots go: `target/test-artefacts/account/`.
fn artefacts() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artefacts").join("account");
    std::fs::create_dir_all(&dir).expect("the artefacts directory");
    dir
}

fn backend_name() -> &'static str {
    match crate::BACKEND {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A headless Chromium with a fresh profile, on the account page of `app`.
struct Browser {
    client: Client,
    base: String,
    driver: u16,
    session: String,
    _profile: TempDir,
}

impl Drop for Browser {
    /// Ends the browser even when the test failed: the session is deleted with a plain blocking
    /// request (the test's runtime may be going away with the panic).
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.driver)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session, self.driver
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // Until the whole answer is in (chromedriver answers once the browser has quit), without
        // waiting for the connection to close.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .unwrap_or(0);
                if answer.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }
}

impl Browser {
    async fn open(app: &TestApp) -> Browser {
        let driver = chromedriver().await;
        let (chromium, driver) = (&driver.chromium, driver.port);
        let profile = tempfile::tempdir().expect("a profile directory");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-sync",
                    "--lang=en-GB",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{driver}"))
            .await
            .expect("a browser session from chromedriver");
        let session = client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session");
        let browser = Browser {
            client,
            base: app.url(""),
            driver,
            session,
            _profile: profile,
        };
        browser.desktop().await;
        browser
    }

    async fn goto_account(&self) {
        self.client
            .goto(&format!("{}/account", self.base))
            .await
            .expect("open /account");
        self.wait_js("return document.getElementById('view-loading').hidden")
            .await;
    }

    /// Runs `script` (a function body) in the page.
    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    async fn js_str(&self, script: &str) -> String {
        match self.js(script).await {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// Waits until `script` returns something truthy.
    async fn wait_js(&self, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.js(script).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let alert = self.text("#alert").await;
                panic!("waited {PATIENCE:?} for `{script}`; the page's alert says {alert:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent.trim() : null",
            json!(css)
        );
        self.js_str(&script).await
    }

    async fn view(&self) -> String {
        self.js_str(
            "return [...document.querySelectorAll('section.view')].filter(v => !v.hidden).map(v => v.id).join(',')",
        )
        .await
    }

    async fn wait_view(&self, id: &str) {
        let script = format!("return !document.getElementById({}).hidden", json!(id));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.js(&script).await != Value::Bool(true) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the page shows {} and not {id}; its alert says {:?}",
                    self.view().await,
                    self.text("#alert").await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the alert region to say something, and returns it.
    async fn alert(&self) -> String {
        self.wait_js("return document.getElementById('alert').textContent.trim()")
            .await;
        self.text("#alert").await
    }

    async fn notice(&self) -> String {
        self.wait_js("return document.getElementById('notice').textContent.trim()")
            .await;
        self.text("#notice").await
    }

    async fn clear_messages(&self) {
        self.js("document.getElementById('alert').textContent = ''; document.getElementById('notice').textContent = ''")
            .await;
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear a field");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks `css`, which asks `confirm()`, and accepts.
    async fn click_and_confirm(&self, css: &str) -> String {
        self.click(css).await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.client.get_alert_text().await {
                Ok(text) => {
                    self.client.accept_alert().await.expect("accept the confirmation");
                    return text;
                }
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("no confirmation after clicking {css}: {e}"),
            }
        }
    }

    /// Keys pressed on the keyboard, into whatever has the focus (Tab moves the focus, Enter
    /// submits a form).
    async fn keyboard(&self, keys: &str) {
        let mut actions = KeyActions::new("keyboard".to_owned());
        for key in keys.chars() {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client.perform_actions(actions).await.expect("keys");
    }

    async fn focused_id(&self) -> String {
        self.js_str("return document.activeElement ? document.activeElement.id : ''")
            .await
    }

    async fn stored_key(&self) -> Option<String> {
        match self
            .js(&format!("return sessionStorage.getItem({})", json!(STORAGE)))
            .await
        {
            Value::String(key) => Some(key),
            _ => None,
        }
    }

    /// The key is in this tab's sessionStorage only: not in localStorage, a cookie or the URL.
    async fn assert_key_kept_in_session_storage_only(&self) -> String {
        let key = self.stored_key().await.expect("the key in sessionStorage");
        assert_eq!(key.len(), 44, "{key}");
        assert_eq!(self.js("return localStorage.length").await, json!(0));
        assert_eq!(self.js("return document.cookie").await, json!(""));
        let cookies = self.client.get_all_cookies().await.expect("cookies");
        assert!(cookies.is_empty(), "{cookies:?}");
        let url = self.client.current_url().await.expect("url");
        assert!(!url.as_str().contains(&key), "{url}");
        assert_eq!(url.path(), "/account");
        key
    }

    /// Sets the size of the viewport (not the window) to `width` x `height`.
    async fn viewport(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("window size");
        let inner = self.js("return [window.innerWidth, window.innerHeight]").await;
        let (w, h) = (inner[0].as_u64().unwrap_or(0), inner[1].as_u64().unwrap_or(0));
        if (w, h) != (u64::from(width), u64::from(height)) {
            let outer_w = u64::from(width) * 2 - w;
            let outer_h = u64::from(height) * 2 - h;
            self.client
                .set_window_size(outer_w as u32, outer_h as u32)
                .await
                .expect("window size");
        }
        let inner = self.js("return window.innerWidth").await;
        assert_eq!(
            inner,
            json!(width),
            "the viewport could not be made {width} px wide"
        );
    }

    async fn desktop(&self) {
        self.viewport(1280, 800).await;
    }

    /// Nothing is wider than the screen: no horizontal scrolling.
    async fn assert_no_horizontal_scroll(&self, what: &str) {
        let widths = self
            .js("return [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]")
            .await;
        let (scroll, inner, body) = (widths[0].as_u64(), widths[1].as_u64(), widths[2].as_u64());
        assert!(
            scroll <= inner && body <= inner,
            "{what} scrolls sideways: scrollWidth {scroll:?} / {body:?} > innerWidth {inner:?}"
        );
    }

    /// Screenshots of the page as it is, at phone size (checking it fits) and desktop size, saved
    /// as `<database>-<view>-phone.png` and `-desktop.png`.
    async fn screenshots(&self, view: &str) {
        let dir = artefacts();
        for (size, width, height) in [("phone", 360, 740), ("desktop", 1280, 800)] {
            self.viewport(width, height).await;
            // The layout settles before the picture.
            self.js("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                .await;
            if size == "phone" {
                self.assert_no_horizontal_scroll(view).await;
            }
            let png = self.full_page_screenshot().await;
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            let path = dir.join(format!("{}-{view}-{size}.png", backend_name()));
            std::fs::write(&path, png).expect("write the screenshot");
        }
    }

    /// The whole page, not only what the viewport shows (Chrome's DevTools protocol, through
    /// chromedriver), at the viewport's width.
    async fn full_page_screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let url = format!(
            "http://127.0.0.1:{}/session/{}/goog/cdp/execute",
            self.driver, self.session
        );
        let command = json!({
            "cmd": "Page.captureScreenshot",
            "params": {"format": "png", "captureBeyondViewport": true},
        });
        let r = reqwest::Client::new()
            .post(url)
            .json(&command)
            .send()
            .await
            .expect("a screenshot");
        let body: Value = r.json().await.expect("the screenshot as JSON");
        let data = body["value"]["data"]
            .as_str()
            .unwrap_or_else(|| panic!("no screenshot: {body}"));
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64")
    }

    /// The browser's console since the last call (chromedriver keeps it: `goog:loggingPrefs`).
    async fn console(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/session/{}/se/log", self.driver, self.session);
        let r = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("the browser's log");
        let body: Value = r.json().await.expect("the log as JSON");
        body["value"].as_array().cloned().unwrap_or_default()
    }

    /// No message of the Content-Security-Policy or Trusted Types, and no uncaught error.
    async fn assert_clean_console(&self) {
        let log = self.console().await;
        let bad: Vec<&Value> = log
            .iter()
            .filter(|entry| {
                let message = entry["message"].as_str().unwrap_or_default();
                message.contains("Content Security Policy")
                    || message.contains("Trusted Type")
                    || message.contains("Refused to")
                    || message.contains("Uncaught")
            })
            .collect();
        assert!(bad.is_empty(), "the browser complained: {bad:#?}");
    }

    async fn sign_in(&self, username: &str, password: &str) {
        self.wait_view("view-sign-in").await;
        self.fill("#sign-in-username", username).await;
        self.fill("#sign-in-password", password).await;
        self.click("#sign-in-form button[type=submit]").await;
    }

    async fn sign_up(&self, username: &str, password: &str) {
        if self.view().await != "view-sign-up" {
            self.click("#to-sign-up").await;
            self.wait_view("view-sign-up").await;
        }
        self.fill("#sign-up-username", username).await;
        self.fill("#sign-up-password", password).await;
        self.click("#sign-up-form button[type=submit]").await;
    }

    async fn wait_signed_in_as(&self, name: &str) {
        self.wait_view("view-account").await;
        assert_eq!(self.text("#account-name").await, name);
    }

    /// The ids of the keys listed under "Your keys" or "Revoked keys".
    async fn listed(&self, list: &str) -> Vec<String> {
        let script =
            format!("return [...document.querySelectorAll('#{list} > li')].map(li => li.dataset.keyId)");
        self.js(&script)
            .await
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    async fn click_refresh(&self) {
        self.click("#refresh").await;
    }
}

/// The `error` sentence the service gives for `body` on `POST path` (to compare with the page).
async fn sentence_of(app: &TestApp, path: &str, body: Value) -> String {
    let r = app.request("POST", path, None, Some(body)).await;
    assert!(!r.body["success"].as_bool().unwrap_or(true), "{}", r.text);
    r.body["error"].as_str().expect("an error sentence").to_owned()
}

/// A client of the page's user on another device, with a user agent: its key and the key's id.
async fn other_device(app: &TestApp, username: &str, password: &str, agent: &str) -> (String, String) {
    let r = app
        .send(
            app.client
                .post(app.url("/auth"))
                .header("user-agent", agent)
                .json(&json!({"username": username, "password": password})),
        )
        .await;
    let key = r.key();
    // A use of the key, from that device (a key shows the user agent of its last use).
    let r = app
        .send(
            app.client
                .get(app.url("/auth"))
                .header("user-agent", agent)
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["data"]["key"]["id"].as_str().unwrap().to_owned();
    (key, id)
}

async fn key_id(app: &TestApp, key: &str) -> String {
    let r = app.validate(key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["key"]["id"].as_str().unwrap().to_owned()
}

fn assert_page_headers(r: &TestResponse, content_type: &str) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some(content_type));
    assert_eq!(
        r.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY_VALUE)
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let etag = r.header("etag").expect("an ETag");
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "a strong ETag: {etag}"
    );
}

/// The page and its files over plain HTTP: types, security headers, caching (a strong ETag and
/// 304, a year for the versioned files), `HEAD`, and no inline script (each answer is checked
/// against the OpenAPI document by `TestApp::send`).
#[tokio::test]
async fn the_page_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app_with(|s| s.anomaly.max_networks = 5).await;
    let page = app.request("GET", "/account", None, None).await;
    assert_page_headers(&page, "text/html; charset=utf-8");
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let policy = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let html = &page.text;
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains(r#"name="viewport""#));
    // The settings the page's sentences need, rendered in: 5 + 1 networks revoke a key.
    assert!(html.contains(r#"data-anomaly-networks="6""#), "{html}");
    assert!(!html.contains("{{"));
    assert!(!html.contains("<style") && !html.contains(" style="));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );

    // The script and the style sheet, as the page names them (versioned), and unversioned.
    let url_of = |name: &str| -> String {
        let start = html.find(&format!("\"/account/{name}?v=")).expect(name) + 1;
        let end = start + html[start..].find('"').unwrap();
        html[start..end].to_owned()
    };
    let script = url_of("account.js");
    let style = url_of("account.css");
    assert!(script.starts_with("/account/account.js?v="), "{script}");
    for (path, content_type) in [
        (script.as_str(), "text/javascript; charset=utf-8"),
        (style.as_str(), "text/css; charset=utf-8"),
    ] {
        let r = app.request("GET", path, None, None).await;
        assert_page_headers(&r, content_type);
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let bare = path.split('?').next().unwrap();
        let r2 = app.request("GET", bare, None, None).await;
        assert_page_headers(&r2, content_type);
        assert_eq!(r2.header("cache-control"), Some("no-cache"));
        assert_eq!(r2.text, r.text);
        let stale = app.request("GET", &format!("{bare}?v=old"), None, None).await;
        assert_eq!(stale.header("cache-control"), Some("no-cache"));
    }
    let js = app.request("GET", "/account/account.js", None, None).await.text;
    assert!(
        !js.contains("innerHTML")
            && !js.contains("localStorage.setItem")
            && !js.contains("document.cookie =")
    );

    // A client that holds the version gets 304, without a body; another version, the page.
    let etag = page.header("etag").unwrap().to_owned();
    for tag in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
        let r = app
            .send(
                app.client
                    .get(app.url("/account"))
                    .header("if-none-match", tag.as_str()),
            )
            .await;
        assert_eq!(r.status, 304, "{tag}");
        assert!(r.text.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(
            r.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY_VALUE)
        );
    }
    let r = app
        .send(
            app.client
                .get(app.url("/account"))
                .header("if-none-match", "\"old\""),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, page.text);

    let head = app.request("HEAD", "/account", None, None).await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    // Only GET (and HEAD); the forms are never posted to the page.
    let r = app.request("POST", "/account", None, Some(json!({}))).await;
    assert_eq!(r.status, 405);
    let r = app.request("GET", "/account/other.js", None, None).await;
    assert_eq!(r.assert_error(404), "Not found");
}

/// Sign up (with the errors of a taken name and a weak password shown in words), the key kept in
/// `sessionStorage` only and listed as "This device" with the browser's user agent, a reload, a
/// new tab, signing out, a wrong password and a throttled account in words, signing in with the
/// keyboard only; the policy enforced and never breached; phone and desktop screenshots.
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs Debian's chromium and chromium-driver: ./test runs it"
)]
async fn sign_up_sign_out_and_sign_in_with_errors_in_words() {
    let app = spawn_app_with(|s| s.throttle.signin_failures_per_account_network = 2).await;
    app.user("taken_name").await;
    app.user("throttled").await;
    let browser = Browser::open(&app).await;
    browser.goto_account().await;
    assert_eq!(browser.view().await, "view-sign-in");
    assert_eq!(
        browser.js("return document.documentElement.lang").await,
        json!("en")
    );
    browser.screenshots("sign-in").await;

    // Every field has a label and says what it is for, for password managers.
    let unlabelled = browser
        .js("return [...document.querySelectorAll('input')].filter(i => !i.hidden && i.labels.length === 0).map(i => i.id)")
        .await;
    assert_eq!(unlabelled, json!([]));
    let autocomplete = browser
        .js("return Object.fromEntries([...document.querySelectorAll('input')].map(i => [i.id, i.autocomplete]))")
        .await;
    assert_eq!(autocomplete["sign-in-username"], "username");
    assert_eq!(autocomplete["sign-in-password"], "current-password");
    assert_eq!(autocomplete["sign-up-password"], "new-password");
    assert_eq!(autocomplete["current-password"], "current-password");
    assert_eq!(autocomplete["new-password"], "new-password");
    assert_eq!(autocomplete["delete-password"], "current-password");

    // The sign-up form, its refusals in the service's words.
    browser.click("#to-sign-up").await;
    browser.wait_view("view-sign-up").await;
    assert_eq!(
        browser.focused_id().await,
        "sign-up-title",
        "the focus follows the view"
    );
    browser.sign_up("Taken_Name", PASSWORD).await;
    assert_eq!(
        browser.alert().await,
        "Could not create the account: Username already taken."
    );
    browser.clear_messages().await;
    let weak = sentence_of(
        &app,
        "/users",
        json!({"username": "somebody_else", "password": "password"}),
    )
    .await;
    assert!(weak.starts_with("password:"), "{weak}");
    browser.sign_up("alice", "password").await;
    assert_eq!(
        browser.alert().await,
        format!(
            "Could not create the account: {}",
            weak.trim_end_matches('.').to_owned() + "."
        )
    );
    browser.clear_messages().await;
    browser.sign_up("a!", PASSWORD).await;
    assert!(
        browser
            .alert()
            .await
            .starts_with("Could not create the account: username:"),
        "{}",
        browser.text("#alert").await
    );
    browser.screenshots("sign-up-error").await;

    browser.sign_up("alice", PASSWORD).await;
    browser.wait_signed_in_as("alice").await;
    assert_eq!(browser.focused_id().await, "account-title");
    assert!(browser.notice().await.contains("Welcome, alice"));
    let key = browser.assert_key_kept_in_session_storage_only().await;
    let me = app.validate(&key).await;
    assert_eq!(me.status, 200, "the page's key is a working key");
    assert_eq!(me.body["data"]["user"]["name"], "alice");

    // The key is listed as this device, with the browser's user agent.
    let agent = browser.js_str("return navigator.userAgent").await;
    assert_eq!(browser.listed("keys").await.len(), 1);
    assert_eq!(browser.text("#keys li.current .badge").await, "This device");
    let title = browser.text("#keys li.current .card-title").await;
    assert_eq!(title, format!("This device{agent}"));
    assert!(browser
        .text("#keys li.current dl")
        .await
        .contains("Last used from127.0.0.1"));
    assert!(!browser.text("#events li[data-kind=signed_up]").await.is_empty());
    browser.screenshots("account-new").await;

    // A reload of the tab keeps the session; a new tab does not have it.
    browser.client.refresh().await.expect("reload");
    browser.wait_view("view-account").await;
    assert_eq!(browser.stored_key().await.as_deref(), Some(key.as_str()));
    let first = browser.client.window().await.expect("this tab");
    let tab = browser.client.new_window(true).await.expect("a new tab");
    browser
        .client
        .switch_to_window(tab.handle)
        .await
        .expect("to the new tab");
    browser.goto_account().await;
    assert_eq!(browser.view().await, "view-sign-in");
    assert_eq!(browser.stored_key().await, None);
    browser.client.close_window().await.expect("close the tab");
    browser.client.switch_to_window(first).await.expect("back");

    // Sign out: the key stops working and leaves the tab.
    browser.clear_messages().await;
    browser.click("#sign-out").await;
    browser.wait_view("view-sign-in").await;
    assert!(browser.notice().await.starts_with("Signed out"));
    assert_eq!(browser.stored_key().await, None);
    app.validate(&key).await.assert_invalid_key();

    // A wrong password, and a throttled account, in words.
    browser.sign_in("alice", "not the password at all").await;
    assert_eq!(
        browser.alert().await,
        "Could not sign in: Invalid username or password."
    );
    browser.clear_messages().await;
    let mut throttled = String::new();
    for _ in 0..3 {
        browser.sign_in("throttled", "not the password at all").await;
        throttled = browser.alert().await;
        browser.clear_messages().await;
    }
    let r = app.sign_in("throttled", "not the password at all").await;
    assert_eq!(r.status, 429, "{}", r.text);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    let said = r.body["error"].as_str().unwrap();
    assert!(
        throttled.starts_with(&format!("Could not sign in: {said}"))
            && throttled.contains(" Try again in ")
            && throttled.ends_with(" seconds."),
        "{throttled} (the service: {said}, Retry-After {retry})"
    );

    // Sign in with the keyboard only: Tab to the fields, Enter to submit.
    browser.goto_account().await;
    browser.keyboard("\u{E004}").await;
    assert_eq!(browser.focused_id().await, "sign-in-username");
    browser.keyboard("alice\u{E004}").await;
    assert_eq!(browser.focused_id().await, "sign-in-password");
    browser.keyboard(&format!("{PASSWORD}\u{E007}")).await;
    browser.wait_signed_in_as("alice").await;
    assert_eq!(browser.focused_id().await, "account-title");
    let second = browser.assert_key_kept_in_session_storage_only().await;
    assert_ne!(second, key);
    assert_eq!(app.validate(&second).await.status, 200);

    // The policy holds in the browser: the page worked with it and nothing was refused; what it
    // forbids is refused (an image and a request to elsewhere, HTML written from a string).
    browser.assert_clean_console().await;
    let refused = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const seen = [];
               document.addEventListener('securitypolicyviolation', e => seen.push(e.effectiveDirective));
               let html = 'written';
               try { document.getElementById('notice').innerHTML = '<b>x</b>'; } catch (e) { html = e.name; }
               const image = new Image();
               image.src = 'http://127.0.0.2:9/x.png';
               fetch('http://127.0.0.2:9/x').catch(() => {});
               setTimeout(() => done({html, seen: [...new Set(seen)].sort()}), 500);"#,
            Vec::new(),
        )
        .await
        .expect("the refusals");
    assert_eq!(refused["html"], "TypeError", "{refused}");
    let seen = refused["seen"].as_array().unwrap();
    for directive in ["connect-src", "img-src", "require-trusted-types-for"] {
        assert!(seen.contains(&json!(directive)), "{refused}");
    }
}

/// Keys made elsewhere: one revoked by the anomaly rule (shown with the configured numbers in
/// words), one signed out, one live on another device; the events in words; revoking the other
/// device's key from the page; a network failure in words.
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs Debian's chromium and chromium-driver: ./test runs it"
)]
async fn keys_revoked_keys_and_events_in_plain_words() {
    let app = spawn_app_with(|s| s.anomaly.max_networks = 2).await;
    let browser = Browser::open(&app).await;
    browser.goto_account().await;
    browser.sign_up("bob", PASSWORD).await;
    browser.wait_signed_in_as("bob").await;
    let own = browser.assert_key_kept_in_session_storage_only().await;

    // A key replayed from three networks (max_networks = 2): revoked with ip_changes.
    let stolen = app.sign_in("bob", PASSWORD).await.key();
    let stolen_id = key_id(&app, &stolen).await;
    assert_eq!(app.validate_from("127.0.1.1", &stolen).await.status, 200);
    app.validate_from("127.0.2.1", &stolen).await.assert_invalid_key();
    // One signed out, one live on a phone.
    let old = app.sign_in("bob", PASSWORD).await.key();
    let old_id = key_id(&app, &old).await;
    assert_eq!(app.request("DELETE", "/auth", Some(&old), None).await.status, 200);
    let phone_agent = "KillBill2/1.4 (Android 14; Pixel 8)";
    let (phone, phone_id) = other_device(&app, "bob", PASSWORD, phone_agent).await;

    browser.click_refresh().await;
    browser
        .wait_js(&format!(
            "return document.querySelector('#revoked li[data-key-id=\"{stolen_id}\"]')"
        ))
        .await;
    let keys = browser.listed("keys").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&phone_id));
    let phone_card = browser
        .text(&format!("#keys li[data-key-id=\"{phone_id}\"] .card-title"))
        .await;
    assert_eq!(phone_card, phone_agent);
    let stolen_card = browser
        .text(&format!("#revoked li[data-key-id=\"{stolen_id}\"]"))
        .await;
    assert!(
        stolen_card.starts_with("Revoked because it was used from 3 networks within 24 hours."),
        "{stolen_card}"
    );
    assert!(stolen_card.contains("From network127.0.2.0/24"), "{stolen_card}");
    let old_card = browser
        .text(&format!("#revoked li[data-key-id=\"{old_id}\"] .reason"))
        .await;
    assert_eq!(old_card, "Revoked because it was signed out.");

    // The account's events, newest first, in words.
    let events = browser
        .js("return [...document.querySelectorAll('#events li')].map(li => li.dataset.kind + ': ' + li.lastChild.textContent)")
        .await;
    let events: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events.last(),
        Some(&"signed_up: Account created (network 127.0.0.0/24)."),
        "{events:#?}"
    );
    assert!(
        events.contains(&"key_revoked: Key revoked because it was used from 3 networks within 24 hours (network 127.0.2.0/24)."),
        "{events:#?}"
    );
    assert!(
        events.contains(&format!("signed_in: Signed in with {phone_agent} (network 127.0.0.0/24).").as_str()),
        "{events:#?}"
    );
    browser.screenshots("account").await;

    // Revoke the phone's key from the page: it moves to the revoked keys, and stops working.
    browser.clear_messages().await;
    let asked = browser
        .click_and_confirm(&format!("#keys li[data-key-id=\"{phone_id}\"] button"))
        .await;
    assert!(asked.contains(phone_agent), "{asked}");
    browser
        .wait_js(&format!(
        "return document.querySelector('#revoked li[data-key-id=\"{phone_id}\"][data-reason=signed_out]')"
    ))
        .await;
    assert!(browser.notice().await.contains("is revoked"));
    assert_eq!(browser.listed("keys").await.len(), 1);
    assert_eq!(browser.focused_id().await, "keys-title");
    app.validate(&phone).await.assert_invalid_key();
    assert_eq!(
        app.validate(&own).await.status,
        200,
        "this device's key still works"
    );
    browser.assert_clean_console().await;

    // The service gone: the page says so in words.
    drop(app.stop().await);
    browser.click_refresh().await;
    assert_eq!(
        browser.alert().await,
        "Could not refresh: The service could not be reached. Check your connection and try again."
    );
}

/// Sign out everywhere, change the password (a wrong one and a weak one refused in words), delete
/// the account (refused without the password or the tick).
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs Debian's chromium and chromium-driver: ./test runs it"
)]
async fn sign_out_everywhere_change_password_and_delete_the_account() {
    let app = spawn_app().await;
    app.user("carol").await;
    let browser = Browser::open(&app).await;
    browser.goto_account().await;
    browser.sign_in("carol", PASSWORD).await;
    browser.wait_signed_in_as("carol").await;
    let (other, _) = other_device(&app, "carol", PASSWORD, "KillBill2 desktop").await;

    // Everywhere: every key, this one and the other device's.
    let own = browser.stored_key().await.unwrap();
    let asked = browser.click_and_confirm("#sign-out-all").await;
    assert!(asked.contains("Sign out everywhere?"), "{asked}");
    browser.wait_view("view-sign-in").await;
    assert!(browser.notice().await.starts_with("Signed out everywhere"));
    assert_eq!(browser.stored_key().await, None);
    app.validate(&own).await.assert_invalid_key();
    app.validate(&other).await.assert_invalid_key();

    // The password: a wrong current one, a weak new one, then a change.
    browser.sign_in("carol", PASSWORD).await;
    browser.wait_signed_in_as("carol").await;
    let (other, _) = other_device(&app, "carol", PASSWORD, "KillBill2 desktop").await;
    let new_password = "a brand new passphrase, quite long";
    browser.fill("#current-password", "not my password").await;
    browser.fill("#new-password", new_password).await;
    browser.click("#password-form button[type=submit]").await;
    assert_eq!(
        browser.alert().await,
        "Could not change the password: Invalid password."
    );
    browser.clear_messages().await;
    browser.fill("#current-password", PASSWORD).await;
    browser.fill("#new-password", "carolcarol").await;
    browser.click("#password-form button[type=submit]").await;
    let weak = browser.alert().await;
    let own = browser.stored_key().await.unwrap();
    let said = app
        .request(
            "PUT",
            "/users/me/password",
            Some(&own),
            Some(json!({"current_password": PASSWORD, "new_password": "carolcarol"})),
        )
        .await;
    let said = said.assert_error(400).to_owned();
    assert!(said.contains("at least 12 characters"), "{said}");
    assert_eq!(weak, format!("Could not change the password: {said}."));
    browser.clear_messages().await;
    browser.fill("#current-password", PASSWORD).await;
    browser.fill("#new-password", new_password).await;
    browser.screenshots("change-password").await;
    browser.click("#password-form button[type=submit]").await;
    assert!(browser.notice().await.starts_with("Password changed."));
    let key = browser.assert_key_kept_in_session_storage_only().await;
    assert_eq!(app.validate(&key).await.status, 200);
    app.validate(&other).await.assert_invalid_key();
    assert_eq!(app.sign_in("carol", PASSWORD).await.status, 401);
    assert_eq!(app.sign_in("carol", new_password).await.status, 200);
    assert!(!browser
        .text("#events li[data-kind=password_changed]")
        .await
        .is_empty());
    assert!(browser
        .text("#revoked li[data-reason=password_changed] .reason")
        .await
        .starts_with("Revoked because the password was changed."));

    // Delete: the tick and the password are both needed.
    browser.fill("#delete-password", new_password).await;
    browser.click("#delete-form button[type=submit]").await;
    assert!(browser.alert().await.contains("tick the box"));
    assert_eq!(browser.focused_id().await, "delete-confirm");
    browser.clear_messages().await;
    browser.click("#delete-confirm").await;
    browser.fill("#delete-password", "not my password").await;
    browser.click("#delete-form button[type=submit]").await;
    assert_eq!(
        browser.alert().await,
        "Could not delete the account: Invalid password."
    );
    browser.clear_messages().await;
    assert_eq!(app.validate(&key).await.status, 200, "nothing deleted yet");
    browser.fill("#delete-password", new_password).await;
    if browser
        .js("return document.getElementById('delete-confirm').checked")
        .await
        != json!(true)
    {
        browser.click("#delete-confirm").await;
    }
    browser.click("#delete-form button[type=submit]").await;
    browser.wait_view("view-sign-in").await;
    assert!(browser.notice().await.contains("deleted"));
    assert_eq!(browser.stored_key().await, None);
    app.validate(&key).await.assert_invalid_key();
    assert_eq!(app.sign_in("carol", new_password).await.status, 401);
    browser.sign_in("carol", new_password).await;
    assert_eq!(
        browser.alert().await,
        "Could not sign in: Invalid username or password."
    );
    browser.assert_clean_console().await;
}

/// A suspension: the page's session ends (back to the sign-in form, saying why), and signing in
/// shows the reason and the end, or that it is permanent.
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs Debian's chromium and chromium-driver: ./test runs it"
)]
async fn a_suspension_is_shown_with_its_reason_and_end() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let dave = app.user("dave").await;
    let dave_id = user_id(&app, &dave).await;
    let erin = app.user("erin").await;
    let erin_id = user_id(&app, &erin).await;
    let browser = Browser::open(&app).await;
    browser.goto_account().await;
    browser.sign_in("dave", PASSWORD).await;
    browser.wait_signed_in_as("dave").await;

    let until = app.clock.now().plus(Duration::from_secs(7 * 86_400)).to_rfc3339();
    let r = app
        .request(
            "PUT",
            &format!("/admin/users/{dave_id}/suspension"),
            Some(&admin),
            Some(json!({"reason": "aimbot <b>in</b> ranked games", "until": until})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let until = r.body["data"]["suspension"]["until"].as_str().unwrap().to_owned();

    // The page's key was revoked: its next call ends the session, saying so.
    browser.click_refresh().await;
    browser.wait_view("view-sign-in").await;
    assert!(
        browser.alert().await.starts_with("Your session has ended"),
        "{}",
        browser.text("#alert").await
    );
    assert_eq!(browser.stored_key().await, None);

    browser.sign_in("dave", PASSWORD).await;
    browser.wait_view("view-suspended").await;
    assert_eq!(browser.focused_id().await, "suspended-title");
    // The reason as text, never as markup.
    assert_eq!(
        browser.text("#suspension-reason").await,
        "aimbot <b>in</b> ranked games"
    );
    assert_eq!(
        browser
            .js("return document.querySelector('#suspension-reason b')")
            .await,
        Value::Null
    );
    let shown = browser
        .js("return document.querySelector('#suspension-until time').dateTime")
        .await;
    assert_eq!(shown, json!(until));
    assert_eq!(browser.stored_key().await, None);
    browser.screenshots("suspended").await;

    // A permanent one.
    let r = app
        .request(
            "PUT",
            &format!("/admin/users/{erin_id}/suspension"),
            Some(&admin),
            Some(json!({"reason": "fraud", "until": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    browser.click("#suspended-back").await;
    browser.sign_in("erin", PASSWORD).await;
    browser.wait_view("view-suspended").await;
    assert_eq!(browser.text("#suspension-reason").await, "fraud");
    assert_eq!(
        browser.text("#suspension-until").await,
        "Never: the suspension is permanent."
    );
    // A wrong password tells nothing of it.
    browser.click("#suspended-back").await;
    browser.sign_in("erin", "not the password at all").await;
    assert_eq!(
        browser.alert().await,
        "Could not sign in: Invalid username or password."
    );
    browser.assert_clean_console().await;
}

/// Every other reason a key ends, in the words of the page with the numbers in force
/// (`request_flood`, `evicted`, `admin`, `suspended`, an idle `expired`, `password_changed`),
/// and the account's activity a page at a time ("Show older activity").
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs Debian's chromium and chromium-driver: ./test runs it"
)]
async fn every_reason_in_words_and_older_activity_a_page_at_a_time() {
    let app = spawn_app_with(|s| {
        s.anomaly.flood_max_requests = 5;
        s.keys.max_per_user = 3;
        s.keys.idle_timeout = killbill_auth::config::HumanDuration(Duration::from_secs(3600));
    })
    .await;
    let admin = admin_key(&app).await;
    let first = app.sign_up("dan", PASSWORD).await.key();
    let dan = user_id(&app, &first).await;

    // A flood: more than 5 requests within the hour.
    let flooded = app.sign_in("dan", PASSWORD).await.key();
    let mut refused = false;
    for _ in 0..10 {
        if app.validate(&flooded).await.status == 403 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the flood rule revokes the key");
    // Some comings and goings: more activity than one page of the page's (20).
    for _ in 0..6 {
        let key = app.sign_in("dan", PASSWORD).await.key();
        assert_eq!(app.request("DELETE", "/auth", Some(&key), None).await.status, 200);
    }
    // Evicted: a fourth live key pushes out the least recently used (the sign-up's, never used
    // since; the others were signed out).
    let mut live: Vec<String> = Vec::new();
    for _ in 0..3 {
        live.push(app.sign_in("dan", PASSWORD).await.key());
    }
    app.validate(&first).await.assert_invalid_key();
    // By an administrator.
    let r = app
        .request("DELETE", &format!("/admin/users/{dan}/keys"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for key in &live {
        app.validate(key).await.assert_invalid_key();
    }
    // Suspended, then lifted.
    let before_suspension = app.sign_in("dan", PASSWORD).await.key();
    let r = app
        .request(
            "PUT",
            &format!("/admin/users/{dan}/suspension"),
            Some(&admin),
            Some(json!({"reason": "cooling off", "until": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&before_suspension).await.assert_invalid_key();
    let r = app
        .request(
            "DELETE",
            &format!("/admin/users/{dan}/suspension"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Expired: unused for longer than keys.idle_timeout (1 hour).
    let idle = app.sign_in("dan", PASSWORD).await.key();
    app.clock.advance(Duration::from_secs(2 * 3600));
    app.validate(&idle).await.assert_invalid_key();
    // Password changed: every earlier key ends.
    let other = app.sign_in("dan", PASSWORD).await.key();
    let new_password = "the second passphrase of dan";
    let r = app
        .request(
            "PUT",
            "/users/me/password",
            Some(&other),
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&other).await.assert_invalid_key();

    let browser = Browser::open(&app).await;
    browser.goto_account().await;
    browser.sign_in("dan", new_password).await;
    browser.wait_signed_in_as("dan").await;
    let cards = browser
        .js("return [...document.querySelectorAll('#revoked li')].map(li => [li.dataset.reason, li.querySelector('.reason').textContent])")
        .await;
    let cards: Vec<(String, String)> = cards
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_owned(),
                c[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (reason, words) in [
        (
            "request_flood",
            "Revoked because it made more than 5 requests within 1 hour.",
        ),
        (
            "evicted",
            "Revoked to make room: an account holds at most 3 keys, and this one was the least \
             recently used when another device signed in.",
        ),
        ("admin", "Revoked by an administrator."),
        ("suspended", "Revoked because the account was suspended."),
        ("expired", "Expired after 1 hour without use."),
        ("password_changed", "Revoked because the password was changed."),
    ] {
        let shown: Vec<&str> = cards
            .iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, w)| w.as_str())
            .collect();
        assert!(!shown.is_empty(), "no {reason} key listed: {cards:#?}");
        assert!(shown.iter().all(|w| *w == words), "{reason}: {shown:?}");
    }

    // More activity than a page (20): the oldest arrive with "Show older activity", once.
    let kinds = "return [...document.querySelectorAll('#events li')].map(li => li.dataset.kind)";
    let first_page = browser.js(kinds).await.as_array().unwrap().len();
    assert_eq!(first_page, 20);
    assert!(!browser
        .js(kinds)
        .await
        .as_array()
        .unwrap()
        .contains(&json!("signed_up")));
    assert_eq!(
        browser
            .js("return document.querySelector('#events-more').hidden")
            .await,
        json!(false)
    );
    let mut pages = 1;
    while browser
        .js("return document.querySelector('#events-more').hidden")
        .await
        == json!(false)
    {
        let before = browser.js(kinds).await.as_array().unwrap().len();
        browser.click("#events-more").await;
        browser
            .wait_js(&format!(
                "return document.querySelectorAll('#events li').length > {before} || null"
            ))
            .await;
        pages += 1;
        assert!(pages < 10, "the activity never ends");
    }
    let all = browser.js(kinds).await;
    let all = all.as_array().unwrap();
    assert!(all.len() > 20, "{all:?}");
    assert_eq!(all.last(), Some(&json!("signed_up")), "oldest last: {all:?}");
    // The same as the API's, in the same order, each once.
    let mut api = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/users/me/events?limit=100".to_owned(),
            Some(a) => format!("/users/me/events?limit=100&after={a}"),
        };
        let key = browser.stored_key().await.expect("the page's key");
        let r = app.request("GET", &path, Some(&key), None).await;
        api.extend(
            r.body["data"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].clone()),
        );
        match r.body["data"]["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(all, &api);
    browser.assert_clean_console().await;
}

/// Account recovery on the page: "Forgot your password?" opens the reset form; a wrong code is
/// said in the service's words, the right one sets the new password, signs this browser in and
/// every other device out, and the activity says so in words.
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs Debian's chromium and chromium-driver: ./test runs it"
)]
async fn a_forgotten_password_is_reset_with_a_code() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let frank = app.user("frank").await;
    let frank_id = user_id(&app, &frank).await;
    let r = app
        .request(
            "POST",
            &format!("/admin/users/{frank_id}/reset-code"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let code = r.body["data"]["code"].as_str().unwrap().to_owned();

    let browser = Browser::open(&app).await;
    browser.goto_account().await;
    browser.wait_view("view-sign-in").await;
    browser.click("#to-reset").await;
    browser.wait_view("view-reset").await;
    assert_eq!(browser.focused_id().await, "reset-title");
    browser.screenshots("reset").await;
    // Nothing filled in: said, nothing sent.
    browser.click("#reset-form button[type=submit]").await;
    assert_eq!(browser.alert().await, "Please fill in the username.");
    // A wrong code, in the service's words.
    browser.clear_messages().await;
    browser.fill("#reset-username", "frank").await;
    browser.fill("#reset-code", "0000-0000-0000-0000").await;
    browser.fill("#reset-password", "a brand new passphrase 42").await;
    browser.click("#reset-form button[type=submit]").await;
    let wrong = sentence_of(
        &app,
        "/users/reset",
        json!({"username": "nobody_at_all", "code": "0000-0000-0000-0000", "new_password": "x"}),
    )
    .await;
    assert_eq!(wrong, "Invalid username or code");
    assert_eq!(
        browser.alert().await,
        format!("Could not set the new password: {wrong}.")
    );
    // The right one, typed as a person would.
    browser.clear_messages().await;
    browser.fill("#reset-username", "frank").await;
    browser.fill("#reset-code", &code.to_lowercase()).await;
    browser.fill("#reset-password", "a brand new passphrase 42").await;
    browser.click("#reset-form button[type=submit]").await;
    browser.wait_signed_in_as("frank").await;
    assert_eq!(
        browser.notice().await,
        "Your new password is set. Every other device has been signed out."
    );
    browser.assert_key_kept_in_session_storage_only().await;
    app.validate(&frank).await.assert_invalid_key();
    let events = browser
        .js("return [...document.querySelectorAll('#events > li')].map(li => li.textContent)")
        .await;
    let events: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.iter().any(|e| e.contains("Password reset with a code")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("Support issued a password reset code") && e.contains("by an administrator")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("A password reset failed: wrong or expired code")),
        "{events:?}"
    );
    assert_eq!(
        app.sign_in("frank", "a brand new passphrase 42").await.status,
        200
    );
    browser.assert_clean_console().await;
}
