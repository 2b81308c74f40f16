//! `GET /`, `GET /health` and `GET /metrics`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::envelope::Envelope;
use crate::http::AppState;
use crate::metrics::Gauges;

/// `error` of `GET /health`'s 503.
pub const DATABASE_UNAVAILABLE: &str = "Database unavailable";

/// What `GET /` says.
#[derive(Serialize, ToSchema)]
pub struct About {
    /// Always `killbill-auth`.
    name: &'static str,
    /// The service's version.
    version: &'static str,
}

/// What `GET /health` says.
#[derive(Serialize, ToSchema)]
pub struct Health {
    status: HealthStatus,
    database: DatabaseStatus,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// `unreachable`: no answer; `writes_failing`: it answers but refuses writes (a full disk).
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseStatus {
    Ok,
    Unreachable,
    WritesFailing,
}

#[utoipa::path(
    get,
    path = "/",
    operation_id = "about",
    summary = "The service's name and version",
    responses((status = 200, description = "The service's name and version", body = About))
)]
pub async fn index() -> Envelope<About> {
    Envelope::ok(About {
        name: "killbill-auth",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// 200 when the database answers and takes writes; 503 with `Retry-After` when it is
/// unreachable, or while writes fail (a full disk): then this makes a probe write, so that it
/// says 200 again as soon as a write would succeed.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    summary = "Whether the service and its database work",
    description = "200 when the database answers and takes writes. 503 while it is unreachable or \
                   refuses writes (a full disk); this request then makes a probe write, so it says 200 \
                   again as soon as a write succeeds.",
    responses((status = 200, description = "The service and its database work: `{\"status\": \"ok\", \"database\": \"ok\"}`", body = Health))
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let database = match state.store.ping().await {
        Ok(()) => match state.store.check_writes().await {
            Ok(()) => {
                return Envelope::ok(Health {
                    status: HealthStatus::Ok,
                    database: DatabaseStatus::Ok,
                })
                .into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e, "health check: database writes fail");
                DatabaseStatus::WritesFailing
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            DatabaseStatus::Unreachable
        }
    };
    let body = Envelope {
        success: false,
        data: Some(Health {
            status: HealthStatus::Unavailable,
            database,
        }),
        error: Some(DATABASE_UNAVAILABLE.to_owned()),
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Prometheus text, outside the envelope (API.md); see `crate::metrics` for what is counted.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Counters and gauges for Prometheus",
    description = "Prometheus text format (outside the envelope); the README lists every metric.",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (hash_queued, hash_waiting) = state.accounts.hashing_load();
    let text = state.metrics.render(Gauges {
        cached_keys: state.keys.cached(),
        pending_usage_writes: state.keys.pending_usage_writes(),
        hash_queued,
        hash_waiting,
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
