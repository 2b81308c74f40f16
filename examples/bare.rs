//! The floor for `GET /auth`: a bare axum 0.8 server that answers `GET /auth` with a fixed JSON
//! body of the same size (and the same response header names) as the service's answer, doing no
//! work at all. `bench/run.sh` measures it alternately with the service to tell what the service
//! itself costs on top of axum, hyper and tokio.
//!
//! ```sh
//! cargo run --release --example bare -- --port 18081 --body-bytes 380
//! ```
//!
//! With `--lookup KEYS_FILE` it is the issue's middle rung instead: the same answer, but only
//! after parsing the `Authorization` header, hashing the key (SHA-256, the service's own
//! `AccessKey`) and finding the digest in an in-memory set of the file's keys (403 otherwise).
//! Between the two rows lies what a key check costs at the least; between it and the service,
//! what the service's own rules, bookkeeping and answer cost.

// A benchmark tool, not service code: failing loudly on a bad argument is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The service's allocator (see `src/main.rs`), so that the two differ only by what the
/// service's handler does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use killbill_auth::domain::{AccessKey, KeyDigest};

#[path = "common/args.rs"]
mod args;

/// The digests of every key of a file (one standard base64 key a line).
fn digests(path: &str) -> HashSet<KeyDigest> {
    std::fs::read_to_string(path)
        .expect("keys file")
        .lines()
        .filter_map(|line| AccessKey::parse(line.trim().as_bytes()))
        .map(|key| key.digest())
        .collect()
}

/// `{"success":true,"data":{"pad":"xxx…"},"error":null}`, exactly `size` bytes (at least 47).
fn body_of(size: usize) -> Bytes {
    let empty = r#"{"success":true,"data":{"pad":""},"error":null}"#;
    let pad = "x".repeat(size.saturating_sub(empty.len()));
    let body = format!(r#"{{"success":true,"data":{{"pad":"{pad}"}},"error":null}}"#);
    Bytes::from(body)
}

#[tokio::main]
async fn main() {
    let port = u16::try_from(args::number("--port", 18081)).expect("a port");
    let body = body_of(args::number("--body-bytes", 380));
    eprintln!(
        "bare: 127.0.0.1:{port}, GET /auth answers {} bytes of JSON",
        body.len()
    );

    let lookup: Option<Arc<HashSet<KeyDigest>>> = args::text("--lookup").map(|path| Arc::new(digests(&path)));
    if let Some(set) = &lookup {
        eprintln!("bare: --lookup, {} digests in memory", set.len());
    }

    let auth = move |headers: HeaderMap| {
        let body = body.clone();
        let lookup = lookup.clone();
        async move {
            if let Some(set) = lookup {
                let known = headers
                    .get(AUTHORIZATION)
                    .and_then(|h| AccessKey::from_authorization(h.as_bytes()))
                    .is_some_and(|key| set.contains(&key.digest()));
                if !known {
                    return StatusCode::FORBIDDEN.into_response();
                }
            }
            (
                [
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                    (
                        HeaderName::from_static("x-request-id"),
                        HeaderValue::from_static("5f0c6d1e-2a8b-4c3d-9e7f-0a1b2c3d4e5f"),
                    ),
                    (
                        HeaderName::from_static("x-auth-user-id"),
                        HeaderValue::from_static("0b6f2e4c-1d3a-4f5b-8c7d-9e0f1a2b3c4d"),
                    ),
                    (
                        HeaderName::from_static("x-auth-username"),
                        HeaderValue::from_static("seed0000001"),
                    ),
                ],
                body,
            )
                .into_response()
        }
    };
    let app = Router::new()
        .route("/", get(|| async { "bare" }))
        .route("/auth", get(auth));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
