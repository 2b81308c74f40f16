//! `GET /account`: the self-service account page, plain HTML, CSS and JavaScript
//! embedded in the binary (`assets/account/`), outside the envelope. The page talks to the same
//! API as any client (`POST /users`, `POST /auth`, `GET /auth/keys`, ...), holding the key in
//! memory and `sessionStorage` only.
//!
//! The page is rendered once at start-up ([`AccountPage::new`]): the settings that its plain-words
//! sentences need (how many networks revoke a key, within how long, ...) are written into `data-*`
//! attributes of `<body>`, escaped, since the Content-Security-Policy allows no inline script. Each
//! of the three files carries a strong `ETag` (a digest of its bytes) and answers 304 to a matching
//! `If-None-Match`; the page names its script and style sheet with that digest (`?v=`), and those
//! versioned URLs are cached for a year.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::http::AppState;

const PAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/account/index.html"));
const SCRIPT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/account/account.js"));
const STYLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/account/account.css"));

/// Everything from this origin only, no inline script or style, no framing, no `<base>`; the
/// forms are never submitted by the browser (the script sends their fields with `fetch`), so a
/// form that the script failed to catch cannot put a password in a URL (`form-action 'none'`);
/// and the DOM's string-to-HTML sinks (`innerHTML`, ...) are closed (Trusted Types with no policy):
/// the page writes API data with `textContent` only.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// The page's own `Cache-Control`: kept, but checked again (`ETag`) before each use.
const REVALIDATE: &str = "no-cache";
/// A versioned script or style sheet (`?v=<its digest>`) never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file, ready to answer.
struct Asset {
    body: Bytes,
    content_type: &'static str,
    /// The strong `ETag`: the first 16 bytes of the SHA-256 of the body, in hex, quoted.
    etag: HeaderValue,
    /// The `v` that names this version in the page's URLs (the digest, unquoted).
    version: String,
}

impl Asset {
    fn new(body: String, content_type: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let version: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        // Hex digits between quotes: always a valid header value.
        let etag =
            HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""));
        Self {
            body: Bytes::from(body),
            content_type,
            etag,
            version,
        }
    }

    /// 200 with the body, or 304 when the client holds this version; `cache` is the
    /// `Cache-Control` of the answer.
    fn answer(&self, request: &HeaderMap, cache: &'static str) -> Response {
        let mut headers = HeaderMap::with_capacity(12);
        headers.insert(ETAG, self.etag.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
        security_headers(&mut headers);
        if holds(request, &self.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        (headers, self.body.clone()).into_response()
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`). A weak tag matches too: RFC 9110 compares
/// `If-None-Match` weakly.
fn holds(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let wanted = etag.as_bytes();
    request.get_all(IF_NONE_MATCH).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|tag| {
            let tag = tag.trim_ascii();
            tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == wanted
        })
    })
}

/// What every answer of the page carries besides `X-Content-Type-Options: nosniff` and
/// `X-Request-Id` (set for every route by the middleware).
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// The page, its script and its style sheet, rendered for the settings in force.
pub struct AccountPage {
    page: Asset,
    script: Asset,
    style: Asset,
}

impl AccountPage {
    pub fn new(settings: &Settings) -> Self {
        let script = Asset::new(SCRIPT.to_owned(), "text/javascript; charset=utf-8");
        let style = Asset::new(STYLE.to_owned(), "text/css; charset=utf-8");
        let keys = &settings.keys;
        let anomaly = &settings.anomaly;
        let idle = keys.idle_timeout.0;
        let values: [(&str, String); 11] = [
            ("script_version", script.version.clone()),
            ("style_version", style.version.clone()),
            // The request that crosses `max_networks` is the one revoked: it is the one more.
            (
                "anomaly_networks",
                (u64::from(anomaly.max_networks) + 1).to_string(),
            ),
            ("anomaly_window", duration_words(anomaly.window.0)),
            ("flood_requests", digits(anomaly.flood_max_requests)),
            ("flood_window", duration_words(anomaly.flood_window.0)),
            ("key_lifetime", duration_words(keys.lifetime.0)),
            ("key_lifetime_ms", keys.lifetime.0.as_millis().to_string()),
            (
                "idle_timeout",
                if idle.is_zero() {
                    String::new()
                } else {
                    duration_words(idle)
                },
            ),
            ("max_keys", keys.max_per_user.to_string()),
            ("min_password", settings.password.min_length.to_string()),
        ];
        let mut html = PAGE.to_owned();
        for (name, value) in values {
            html = html.replace(&format!("{{{{{name}}}}}"), &escape(&value));
        }
        Self {
            page: Asset::new(html, "text/html; charset=utf-8"),
            script,
            style,
        }
    }

    /// The page's HTML as served (for tests).
    pub fn html(&self) -> &[u8] {
        &self.page.body
    }

    /// Whether `uri` asks for the version `asset` has (`?v=<digest>`, as the page names it).
    fn versioned(asset: &Asset, uri: &Uri) -> bool {
        uri.query()
            .and_then(|q| q.strip_prefix("v="))
            .is_some_and(|v| v == asset.version)
    }

    fn asset_cache(asset: &Asset, uri: &Uri) -> &'static str {
        if Self::versioned(asset, uri) {
            IMMUTABLE
        } else {
            REVALIDATE
        }
    }
}

/// Escapes text for an HTML attribute value in double quotes (or for text content).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `100000` as `100,000`.
fn digits(n: u64) -> String {
    let raw = n.to_string();
    let mut out = String::with_capacity(raw.len() + raw.len() / 3);
    for (i, c) in raw.chars().enumerate() {
        if i > 0 && (raw.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in words, in the largest unit that says it exactly: `24 hours`, `180 days`,
/// `15 minutes`, `1 hour`. Days only from two on: a day's window reads better as `24 hours`.
fn duration_words(d: Duration) -> String {
    let ms = d.as_millis();
    let units: [(u128, &str); 5] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
        (1, "millisecond"),
    ];
    for (size, unit) in units {
        if ms >= size && ms.is_multiple_of(size) && !(unit == "day" && ms / size < 2) {
            let n = ms / size;
            return format!("{} {unit}{}", digits(n as u64), if n == 1 { "" } else { "s" });
        }
    }
    "0 seconds".to_owned()
}

#[utoipa::path(
    get,
    path = "/account",
    operation_id = "account_page",
    summary = "The self-service account page",
    description = "HTML served from the binary (outside the envelope): sign up, sign in, your keys and \
                   revoked keys with their reasons, your recent account events, revoke a key, sign out \
                   everywhere, change the password, delete the account, the suspension notice. It uses the \
                   routes of this document with `fetch`, keeping the key in `sessionStorage` only. Served \
                   with a strict `Content-Security-Policy` (no inline script), `Cache-Control: no-cache` and \
                   a strong `ETag` (304 to a matching `If-None-Match`).",
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Not modified: the client's copy (`If-None-Match`) is this version")
    )
)]
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    state.account_page.page.answer(&headers, REVALIDATE)
}

#[utoipa::path(
    get,
    path = "/account/account.js",
    operation_id = "account_script",
    summary = "The account page's script",
    description = "Plain JavaScript served from the binary. Requested as `?v=<digest>` (the page names its \
                   version so) it is cached for a year; otherwise revalidated by its strong `ETag`.",
    responses(
        (status = 200, description = "The script", content_type = "text/javascript; charset=utf-8", body = String),
        (status = 304, description = "Not modified: the client's copy (`If-None-Match`) is this version")
    )
)]
pub async fn script(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = &state.account_page;
    page.script
        .answer(&headers, AccountPage::asset_cache(&page.script, &uri))
}

#[utoipa::path(
    get,
    path = "/account/account.css",
    operation_id = "account_style",
    summary = "The account page's style sheet",
    description = "Plain CSS served from the binary. Requested as `?v=<digest>` (the page names its version \
                   so) it is cached for a year; otherwise revalidated by its strong `ETag`.",
    responses(
        (status = 200, description = "The style sheet", content_type = "text/css; charset=utf-8", body = String),
        (status = 304, description = "Not modified: the client's copy (`If-None-Match`) is this version")
    )
)]
pub async fn style(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = &state.account_page;
    page.style
        .answer(&headers, AccountPage::asset_cache(&page.style, &uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        let words = |s: u64| duration_words(Duration::from_secs(s));
        assert_eq!(words(86_400), "24 hours");
        assert_eq!(words(3_600), "1 hour");
        assert_eq!(words(180 * 86_400), "180 days");
        assert_eq!(words(2 * 86_400), "2 days");
        assert_eq!(words(15 * 60), "15 minutes");
        assert_eq!(words(90), "90 seconds");
        assert_eq!(words(1), "1 second");
        assert_eq!(duration_words(Duration::from_millis(1500)), "1,500 milliseconds");
        assert_eq!(words(0), "0 seconds");
    }

    #[test]
    fn numbers_with_separators() {
        assert_eq!(digits(0), "0");
        assert_eq!(digits(999), "999");
        assert_eq!(digits(1000), "1,000");
        assert_eq!(digits(100_000), "100,000");
        assert_eq!(digits(1_234_567), "1,234,567");
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape(r#"a"b<c>&'d"#), "a&quot;b&lt;c&gt;&amp;&#39;d");
    }

    #[test]
    fn the_page_is_rendered_from_the_settings() {
        let mut settings = Settings::default();
        settings.anomaly.max_networks = 4;
        settings.anomaly.flood_max_requests = 2_500;
        let page = AccountPage::new(&settings);
        let html = std::str::from_utf8(page.html()).unwrap();
        assert!(!html.contains("{{"), "every placeholder is filled");
        assert!(html.contains(r#"data-anomaly-networks="5""#), "{html}");
        assert!(html.contains(r#"data-anomaly-window="24 hours""#));
        assert!(html.contains(r#"data-flood-requests="2,500""#));
        assert!(html.contains(&format!("account.js?v={}", page.script.version)));
        assert!(html.contains(&format!("account.css?v={}", page.style.version)));
        // No inline script or style: the policy would refuse them.
        assert!(!html.contains("<style"));
        assert!(!html.contains(" style="));
        for script in html.split("<script").skip(1) {
            assert!(script.trim_start().starts_with("src="), "{script}");
        }
        let lower = html.to_ascii_lowercase();
        for (at, _) in lower.match_indices(" on") {
            let name: String = lower[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !lower[at + 1 + name.len()..].starts_with('='),
                "an inline event handler: {name}"
            );
        }
    }

    #[test]
    fn if_none_match_is_compared_weakly() {
        let asset = Asset::new("body".into(), "text/plain");
        let mut request = HeaderMap::new();
        assert!(!holds(&request, &asset.etag));
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!holds(&request, &asset.etag));
        let listed = format!("\"other\", W/{}", asset.etag.to_str().unwrap());
        request.insert(IF_NONE_MATCH, HeaderValue::from_str(&listed).unwrap());
        assert!(holds(&request, &asset.etag));
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(holds(&request, &asset.etag));
    }
}
