//! `GET /` and `GET /health`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::envelope::Envelope;
use crate::http::AppState;
use crate::metrics::{DatabaseState, Gauges};

pub async fn index() -> Envelope<serde_json::Value> {
    Envelope::ok(json!({"name": "killbill-auth", "version": env!("CARGO_PKG_VERSION")}))
}

/// 200 when the database answers and takes writes; 503 with `Retry-After` when it is
/// unreachable, or while writes fail (a full disk): then this makes a probe write, so that it
/// says 200 again as soon as a write would succeed.
pub async fn health(State(state): State<AppState>) -> Response {
    let database = match state.store.ping().await {
        Ok(()) => match state.store.check_writes().await {
            Ok(()) => return Envelope::ok(json!({"status": "ok", "database": "ok"})).into_response(),
            Err(e) => {
                tracing::warn!(error = %e, "health check: database writes fail");
                "writes_failing"
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            "unreachable"
        }
    };
    let body = Envelope {
        success: false,
        data: Some(json!({"status": "unavailable", "database": database})),
        error: Some("Database unavailable".to_owned()),
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Prometheus text, outside the envelope (API.md); see `crate::metrics` for what is counted.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (hash_queued, hash_waiting) = state.accounts.hashing_load();
    // A ping bounded by a second (a scrape must not hang on a database that does not answer);
    // no probe write: the background loop makes one every second while writes fail.
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) if state.store.writes_failing() => DatabaseState::WritesFailing,
        Ok(Ok(())) => DatabaseState::Ok,
        Ok(Err(_)) | Err(_) => DatabaseState::Unreachable,
    };
    let text = state.metrics.render(Gauges {
        cached_keys: state.keys.cached(),
        pending_usage_writes: state.keys.pending_usage_writes(),
        hash_queued,
        hash_waiting,
        database,
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
