//! `GET /`, `GET /health`, `GET /health/ready` and `GET /metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::envelope::Envelope;
use crate::http::AppState;
use crate::metrics::{DatabaseState, Gauges};

/// `error` of `GET /health`'s 503.
pub const DATABASE_UNAVAILABLE: &str = "Database unavailable";

/// `error` of `GET /health/ready`'s 503.
pub const NOT_READY: &str = "Not ready: the database is unreachable and the outage grace is over";

/// What `GET /health/ready` says.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// Whether this instance can answer validations now.
    ready: bool,
    /// `ok` or `unreachable`.
    database: ReadyDatabase,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyDatabase {
    Ok,
    Unreachable,
}

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

/// For load balancers: 200 while this instance can answer validations (the database answers,
/// or it does not but the revocation feed was read within `database.outage_grace`), else 503.
/// A ping bounded by a second; no write.
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "ready",
    summary = "Whether this instance can answer validations (for load balancers)",
    description = "200 while the database answers, or while it does not but this instance read the \
                   revocation feed within `database.outage_grace` (its cached keys still validate); then \
                   `database` says `unreachable`. 503 once the grace is over. Unlike `GET /health`, a \
                   database that refuses writes (a full disk) does not make an instance unready.",
    responses((status = 200, description = "Ready: `{\"ready\": true, \"database\": \"ok\"}` (or `\"unreachable\"` within the grace)", body = Readiness))
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => ReadyDatabase::Ok,
        Ok(Err(_)) | Err(_) => ReadyDatabase::Unreachable,
    };
    let ready = matches!(database, ReadyDatabase::Ok) || state.keys.cache_trusted();
    if ready {
        return Envelope::ok(Readiness { ready, database }).into_response();
    }
    let body = Envelope {
        success: false,
        data: Some(Readiness { ready, database }),
        error: Some(NOT_READY.to_owned()),
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
