//! The HTTP face of the service: the router, the envelope, error mapping, extractors, routes.

pub mod envelope;
pub mod error;
pub mod extract;
pub mod routes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use ipnet::IpNet;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Instrument;

use crate::service::{AccountService, KeyService};
use crate::store::Store;
use error::ApiError;

/// Largest request body accepted (API.md: 64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest total size of a request's header names and values.
pub const HEADERS_LIMIT: usize = 16 * 1024;
/// A request that takes longer is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share; passed explicitly, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<AccountService>,
    pub keys: Arc<KeyService>,
    pub store: Arc<dyn Store>,
    pub trusted_proxies: Arc<[IpNet]>,
}

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(routes::meta::index))
        .route("/health", get(routes::meta::health))
        .route("/users", post(routes::users::sign_up))
        .route(
            "/users/me",
            get(routes::users::me).delete(routes::users::delete_me),
        )
        .route("/users/me/password", put(routes::users::change_password))
        .route(
            "/auth",
            post(routes::auth::sign_in)
                .get(routes::auth::validate)
                .delete(routes::auth::sign_out),
        )
        .route("/auth/keys", get(routes::auth::list_keys))
        .route("/auth/keys/{id}", delete(routes::auth::revoke_key))
        .route("/admin/users", get(routes::admin::list_users))
        .route("/admin/users/{id}", delete(routes::admin::delete_user))
        .route("/admin/users/{id}/keys", delete(routes::admin::revoke_keys))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);

    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(x_request_id.clone(), RequestIds::new()))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    // Debug level: at the default `info` nothing formats it, which the hot path
                    // notices (about a fifth of a validation's instructions). The path only, never
                    // headers (they carry keys).
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                // 5xx answers are not errors of the service's own to log one by one: a flood of
                // 503s would become a flood of log lines. Failures worth a line are logged where
                // they happen (database errors, internal errors).
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::new(x_request_id))
            .layer(SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .layer(SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
            .layer(middleware::from_fn(guard))
            .layer(DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

/// Request ids: a random prefix per process and a counter, unique without a system call per
/// request (a UUID v4 per request costs one).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().simple().to_string()[..12].into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// The one middleware around every handler:
/// - refuses headers over [`HEADERS_LIMIT`] bytes (431): hyper bounds what it buffers per
///   connection, this bounds what the handlers look at;
/// - runs every handler but key validation as its own task, so that a client hanging up cannot
///   cancel a write half-way, and under the [`REQUEST_TIMEOUT`] (408). Validation (`GET /auth`,
///   the hot path) only reads, and revokes through a detached task of its own; its database
///   calls are bounded by the store's own timeouts;
/// - gives the envelope to error answers that axum or tower produced themselves (405 with its
///   `Allow` header, plain-text extractor rejections), keeping their headers.
async fn guard(req: Request, next: Next) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > HEADERS_LIMIT {
        return ApiError::HeadersTooLarge.into_response();
    }
    let hot = req.method() == Method::GET && req.uri().path() == "/auth";
    let response = if hot {
        next.run(req).await
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, tokio::spawn(next.run(req).in_current_span())).await {
            Ok(Ok(response)) => response,
            Ok(Err(join)) => {
                tracing::error!(error = %join, "request handler failed");
                ApiError::Internal.into_response()
            }
            // The task goes on (and finishes its writes); the client hears 408.
            Err(_) => ApiError::RequestTimeout.into_response(),
        }
    };
    envelope_bare_errors(response)
}

/// Gives the envelope to error answers that axum or tower produced themselves (405 with its
/// `Allow` header, 408 from the timeout, plain-text extractor rejections), keeping their headers.
fn envelope_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::for_status(status).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    for (name, value) in fresh_parts.headers.iter() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}
