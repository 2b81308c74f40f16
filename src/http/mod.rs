//! The HTTP face of the service: the router, the envelope, error mapping, extractors, routes.

pub mod connection;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod render;
pub mod routes;
pub mod server;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::{Frame, SizeHint};
use ipnet::IpNet;
use tracing::Instrument;

use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::service::tickets::TicketService;
use crate::service::{AccountService, KeyService, RevocationHub};
use crate::store::Store;
use error::ApiError;

/// Largest request body accepted (API.md: 64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest total size of a request's header names and values.
pub const HEADERS_LIMIT: usize = 16 * 1024;

/// What the handlers share; passed explicitly. axum clones it for every request, so it is one
/// `Arc` (one reference count to touch, not one per service).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub accounts: Arc<AccountService>,
    pub keys: Arc<KeyService>,
    pub store: Arc<dyn Store>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub metrics: Arc<Metrics>,
    /// A request that takes longer is answered 408 (`server.request_timeout`).
    pub request_timeout: Duration,
    /// Join tickets.
    pub tickets: Arc<TicketService>,
    /// The revocation stream's hub (`GET /revocations`).
    pub revocations: Arc<RevocationHub>,
    /// The account page (`GET /account`), rendered at start-up.
    pub account_page: Arc<routes::account::AccountPage>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The router: every route of [`routes::api`] (the table that the OpenAPI document is made
/// from too), a 404 for any other path, and the [`guard`] middleware around all.
pub fn router(state: AppState) -> Router {
    // Made now rather than at the first `GET /openapi.json`: start-up pays for it, not a client.
    openapi::document();
    let routes = routes::api()
        .into_router()
        .fallback(|| async { ApiError::NotFound });
    let guard_state = Guard {
        ids: RequestIds::new(),
        metrics: state.metrics.clone(),
        request_timeout: state.request_timeout,
    };
    // One middleware for everything that concerns every request (see `guard`): each tower
    // layer is a future and a boxed clone per request, which the validation path notices.
    routes
        .with_state(state)
        .layer(middleware::from_fn_with_state(guard_state, guard))
}

/// What the [`guard`] middleware needs: request ids, the counters and the request timeout.
#[derive(Clone)]
struct Guard {
    ids: RequestIds,
    metrics: Arc<Metrics>,
    request_timeout: Duration,
}

/// `X-Request-Id`: kept from the request when a proxy in front set one, else made here; echoed
/// in the answer.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: a random prefix per process and a counter, unique without a system call per
/// request (a UUID v4 per request, what tower-http's `MakeRequestUuid` makes, costs one: see
/// `cargo bench --bench hot_path -- per_request`, `request_id_*`). Each thread takes the
/// counter's values in blocks, so that the request threads do not contend for one atomic on
/// every request.
#[derive(Clone)]
pub struct RequestIds {
    prefix: Arc<str>,
}

/// Values of the process's request counter, handed to threads [`ID_BLOCK`] at a time.
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// The rest of this thread's block: the next value and the end.
    static ID_RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIds {
    pub fn new() -> Self {
        static PREFIX: OnceLock<Arc<str>> = OnceLock::new();
        Self {
            prefix: PREFIX
                .get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].into())
                .clone(),
        }
    }

    fn next() -> u64 {
        ID_RANGE.with(|range| {
            let (mut n, mut end) = range.get();
            if n == end {
                n = NEXT_ID_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
                end = n + ID_BLOCK;
            }
            range.set((n + 1, end));
            n
        })
    }

    /// The next request id.
    pub fn make(&self) -> HeaderValue {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(Self::next()).as_bytes();
        let mut id = [0u8; 12 + 1 + 20];
        let prefix = self.prefix.as_bytes();
        let len = prefix.len() + 1 + digits.len();
        if len > id.len() {
            return HeaderValue::from_static("0");
        }
        id[..prefix.len()].copy_from_slice(prefix);
        id[prefix.len()] = b'-';
        id[prefix.len() + 1..len].copy_from_slice(digits);
        // Hex digits, a dash and digits: always a valid header value.
        HeaderValue::from_bytes(&id[..len]).unwrap_or(HeaderValue::from_static("0"))
    }
}

/// The one middleware around every handler:
/// - refuses headers over [`HEADERS_LIMIT`] bytes (431): hyper bounds what it buffers per
///   connection, this bounds what the handlers look at;
/// - gives the request an id (`X-Request-Id`, echoed in the answer) and a `debug`-level span
///   (the path only, never headers: they carry keys), with one `debug` line per answer;
/// - runs every handler but key validation as its own task, so that a client hanging up cannot
///   cancel a write half-way, and under `server.request_timeout` (408). Validation (`GET /auth`,
///   the hot path) only reads, and revokes through a detached task of its own; its database
///   calls are bounded by the store's own timeouts;
/// - gives the envelope to error answers that axum produced itself (405 with its `Allow`
///   header, plain-text extractor rejections), keeping their headers;
/// - sets `Cache-Control: no-store` and `X-Content-Type-Options: nosniff` on every answer;
/// - counts the answer by route, method and status (`crate::metrics`).
async fn guard(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    // Routing has happened (the middleware wraps each route): the route as declared, or none.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    guarded(&guard.ids, &guard.metrics, route, req, |req| {
        dispatch(req, next, guard.request_timeout)
    })
    .await
}

/// What [`guard`] does around `run`, the handler; also used by the validation fast path
/// ([`connection`]), which does not go through the router. `route` labels the request's count.
async fn guarded<F, Fut>(ids: &RequestIds, metrics: &Metrics, route: &str, req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    // Every request is timed (`killbill_auth_http_request_duration_seconds`): two reads of the
    // monotonic clock (vDSO, no system call).
    let started = Instant::now();
    let method = req.method().clone();
    // Kept for the span and the answer; no handler reads it from the request.
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => ids.make(),
    };
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let mut response = if size > HEADERS_LIMIT {
        ApiError::HeadersTooLarge.into_response()
    } else {
        // Debug level: at the default `info` nothing formats it, which the hot path notices.
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = ?request_id,
        );
        let response = run(req).instrument(span.clone()).await;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let _in = span.enter();
            tracing::debug!(
                status = response.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                "answered"
            );
        }
        envelope_bare_errors(response)
    };
    let headers = response.headers_mut();
    headers.entry(X_REQUEST_ID).or_insert(request_id);
    // A handler's own stands (the revocation stream's `no-cache`).
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    metrics.http_request_took(
        route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Runs the handler: validation inline, everything else as its own task under the timeout.
/// The timeout covers the handler, up to the answer's head, not the sending of its body: the
/// revocation stream (`GET /revocations`) answers at once and then streams for as long as the
/// client stays, ending at shutdown (`RevocationHub::close`).
async fn dispatch(req: Request, next: Next, timeout: Duration) -> Response {
    if req.method() == Method::GET && req.uri().path() == "/auth" {
        return next.run(req).await;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let req = req.map(|body| Body::new(BodyUntil::new(body, deadline)));
    match tokio::time::timeout_at(deadline, tokio::spawn(next.run(req).in_current_span())).await {
        Ok(Ok(response)) => response,
        Ok(Err(join)) => {
            tracing::error!(error = %join, "request handler failed");
            ApiError::Internal.into_response()
        }
        // The task goes on (and finishes its writes); the client hears 408, and the connection
        // closes (its body, if still awaited, fails at the same deadline: see `BodyUntil`).
        Err(_) => {
            let mut response = ApiError::RequestTimeout.into_response();
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A request body that fails once its deadline has passed. A handler still waiting for the body
/// at the request timeout then gives up and drops it, and hyper, seeing nobody wants the rest,
/// stops waiting for it and closes the connection after the 408: without this, a client that
/// never sends the body it announced would hold the connection (and the handler's task) for as
/// long as it likes.
struct BodyUntil {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl BodyUntil {
    fn new(inner: Body, deadline: tokio::time::Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for BodyUntil {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(this.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(
            "the request body did not arrive in time",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Gives the envelope to error answers that axum produced itself (405 with its `Allow` header,
/// plain-text extractor rejections), keeping their headers.
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
