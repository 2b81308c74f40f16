//! The floor for `GET /auth`: a bare axum 0.8 server that answers `GET /auth` with a fixed JSON
//! body of the same size (and the same response header names) as the service's answer, doing no
//! work at all. `bench/run.sh` measures it alternately with the service to tell what the service
//! itself costs on top of axum, hyper and tokio.
//!
//! ```sh
//! cargo run --release --example bare -- --port 18081 --body-bytes 380
//! ```

// A benchmark tool, not service code: failing loudly on a bad argument is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The service's allocator (see `src/main.rs`), so that the two differ only by what the
/// service's handler does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
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
    let port = u16::try_from(arg("--port", 18081)).expect("a port");
    let body = body_of(arg("--body-bytes", 380));
    eprintln!(
        "bare: 127.0.0.1:{port}, GET /auth answers {} bytes of JSON",
        body.len()
    );

    let auth = move || {
        let body = body.clone();
        async move {
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
