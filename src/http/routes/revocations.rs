//! `GET /revocations`: the revocation stream (Server-Sent Events), for keys of `SERVICE`
//! accounts (game servers). Every revoked key is one event, in commit order:
//!
//! ```text
//! id: 42
//! data: {"seq":42,"key_id":"…","user_id":"…","reason":"signed_out","at":"2026-12-01T10:00:00.125Z"}
//! ```
//!
//! and, when the client must drop what it learnt (its position is not covered, or the service
//! cannot vouch for what it sent), `event: reset` with `id:` the head it goes on from. A comment
//! (`: keep-alive`) opens the stream and follows every 15 s. Errors before the stream starts
//! (role, a malformed position, the database) are answered in the envelope.
//!
//! The stream is written by a task of its own ([`pump`]) into a small queue that the response
//! body drains: a client that stops reading stops the task (the follower then catches up from
//! the database), and a client that goes away ends it. The request timeout covers only what
//! comes before the answer's head (`http::dispatch`), so the stream is not cut by it; it ends
//! when the service shuts down (`RevocationHub::close`), so it does not hold up the drain.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use hyper::body::Frame;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::domain::revocation_stream::parse_position;
use crate::domain::KeyDigest;
use crate::http::error::ApiError;
use crate::http::extract::{Query, Service};
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::service::revocations::{Follower, StreamItem};

/// A comment at least this often keeps proxies from closing an idle stream (API.md: 15 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long an `EventSource` client waits before reconnecting (`retry:`), in milliseconds.
const RETRY_MS: u32 = 1000;
/// Chunks written but not yet taken by the connection, per stream.
const QUEUED: usize = 16;

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

/// `?after=SEQ`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Send every revocation after this `seq` (a non-negative integer); `Last-Event-ID` wins
    /// over it. Without either, the stream starts from the present.
    after: Option<String>,
}

#[utoipa::path(
    get,
    path = "/revocations",
    operation_id = "revocation_stream",
    summary = "The revocation stream: every revoked key, as Server-Sent Events",
    description = "Keeps the connection open and sends, within one second of the commit on any instance, \
                   one event per revoked key, in commit order: `id: <seq>` and `data:` a `RevocationEvent` \
                   (`#/components/schemas/RevocationEvent`). A comment line (`: keep-alive`) at least every \
                   15 s. A client that reconnects with `Last-Event-ID` (or `?after=`) gets every revocation \
                   after that `seq`; if that point is older than what the service keeps (30 days) or cannot \
                   be vouched for, it first gets `event: reset` (`data: {\"seq\": <head>, \"cause\": …}`: drop \
                   whatever was cached) and then the stream goes on from the present. Failures before the \
                   stream starts are answered in the envelope.",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The `seq` of the last event received (what an `EventSource` sends when it reconnects)")
    ),
    responses((
        status = 200,
        description = "The stream (`text/event-stream`)",
        content_type = "text/event-stream",
        body = String,
        headers(("Cache-Control" = String, description = "`no-cache`"))
    ))
)]
pub async fn stream(
    State(state): State<AppState>,
    Service(service): Service,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let after = position(&headers, query.after.as_deref())?;
    let (follower, first) = state.revocations.follow(after).await?;
    // Following first, then reading the key: a revocation from now on reaches the stream
    // ([`Holder`]), and one made before, which this instance's cache may not have heard of
    // yet (another instance's, up to a second ago), is read here.
    if !follower.is_live(&service.entry.digest).await? {
        return Err(ApiError::InvalidKey);
    }
    let (tx, rx) = mpsc::channel(QUEUED);
    let holder = Holder {
        key_id: service.entry.id,
        digest: service.entry.digest,
    };
    tokio::spawn(pump(
        follower,
        first,
        holder,
        tx,
        KEEP_ALIVE,
        state.metrics.clone(),
    ));
    let mut response = Response::new(Body::new(EventBody { rx }));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    // `no-cache` rather than the `no-store` of every other answer (`http::guarded` leaves a
    // handler's own); `X-Accel-Buffering: no` asks nginx to pass each event on at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    Ok(response)
}

/// The client's position: `Last-Event-ID` (what an `EventSource` sends when it reconnects, to
/// the URL it first opened: so it wins over `?after=`), else `?after=`, else none (from the
/// present). An empty `Last-Event-ID` counts as none (an `EventSource` never sends one).
fn position(headers: &HeaderMap, after: Option<&str>) -> Result<Option<i64>, ApiError> {
    let malformed = |name: &str| {
        ApiError::BadRequest(format!(
            "{name}: must be a revocation seq (a non-negative integer)"
        ))
    };
    let from_query = match after {
        Some(text) => Some(parse_position(text).ok_or_else(|| malformed("after"))?),
        None => None,
    };
    let from_header = match headers.get(LAST_EVENT_ID) {
        Some(value) => {
            let text = value.to_str().map_err(|_| malformed("Last-Event-ID"))?;
            if text.trim().is_empty() {
                None
            } else {
                Some(parse_position(text).ok_or_else(|| malformed("Last-Event-ID"))?)
            }
        }
        None => None,
    };
    Ok(from_header.or(from_query))
}

/// Appends the SSE text of `items`.
fn write_items(out: &mut String, items: &[StreamItem]) {
    for item in items {
        match item {
            StreamItem::Revoked(entry) => {
                // Serialising plain data cannot fail; JSON on one line (strings escape newlines).
                let data = serde_json::to_string(entry).unwrap_or_default();
                let _ = write!(out, "id: {}\ndata: {data}\n\n", entry.seq);
            }
            StreamItem::Reset { head, cause } => {
                let _ = write!(
                    out,
                    "event: reset\nid: {head}\ndata: {{\"seq\":{head},\"cause\":\"{}\"}}\n\n",
                    cause.as_str()
                );
            }
        }
    }
}

/// Counts the `event: reset`s among `items` (`killbill_auth_revocation_stream_resets_total`).
fn count_resets(metrics: &Metrics, items: &[StreamItem]) {
    for item in items {
        if let StreamItem::Reset { cause, .. } = item {
            metrics.revocation_stream_reset(*cause);
        }
    }
}

/// One open stream in `killbill_auth_revocation_streams`, for as long as this lives.
struct Open(Arc<Metrics>);

impl Open {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.revocation_stream_opened();
        Self(metrics)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.revocation_stream_closed();
    }
}

/// The key a stream was opened with. Its role was checked when the stream opened; the stream
/// ends with the key's revocation (signed out, the service account suspended, demoted or
/// deleted: each revokes its keys), which the stream itself carries within a second of the
/// commit on any instance. After a reset, which may hide that revocation, the key is read
/// from the database.
pub(crate) struct Holder {
    pub key_id: uuid::Uuid,
    pub digest: KeyDigest,
}

impl Holder {
    /// Cuts `items` at the holder's own revocation (kept, as the last event); whether the
    /// stream ends with them.
    async fn ends_with(&self, follower: &Follower, items: &mut Vec<StreamItem>) -> bool {
        if StreamItem::until_revoked(items, self.key_id) {
            return true;
        }
        if StreamItem::any_reset(items) {
            return match follower.is_live(&self.digest).await {
                Ok(live) => !live,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream ended: cannot read its own key");
                    true
                }
            };
        }
        false
    }
}

/// Says that a stream ended because its own key was revoked.
fn holder_revoked(holder: &Holder) {
    tracing::info!(target: "security", event = "revocation_stream_ended", key_id = %holder.key_id, "revocation stream ended: its key was revoked");
}

/// Writes the stream into `tx` until the client goes away, the service shuts down, the
/// stream's own key is revoked ([`Holder`]), or the database fails while catching up (the
/// client then reconnects with its position): `retry:` and a comment, `first`, then what the
/// follower gives, with a comment every `keep_alive`.
pub(crate) async fn pump(
    mut follower: Follower,
    mut first: Vec<StreamItem>,
    holder: Holder,
    tx: mpsc::Sender<Bytes>,
    keep_alive: Duration,
    metrics: Arc<Metrics>,
) {
    let _open = Open::new(metrics.clone());
    // A client that stops reading holds a send up: shutdown ends it all the same.
    let closing = follower.closing();
    let send = |bytes: Bytes| {
        let tx = tx.clone();
        let mut closing = closing.clone();
        async move {
            tokio::select! {
                sent = tx.send(bytes) => sent.is_ok(),
                _ = closing.wait_for(|c| *c) => false,
            }
        }
    };
    // With nothing to send first, the opening says where the stream starts (`id:` without
    // `data:` sets the client's last event id and dispatches nothing): a client whose stream
    // breaks before its first revocation resumes from there, without a gap.
    let mut opening = if first.is_empty() {
        format!("retry: {RETRY_MS}\nid: {}\n: keep-alive\n\n", follower.position())
    } else {
        format!("retry: {RETRY_MS}\n: keep-alive\n\n")
    };
    let ends = holder.ends_with(&follower, &mut first).await;
    count_resets(&metrics, &first);
    write_items(&mut opening, &first);
    if !send(Bytes::from(opening)).await || ends {
        if ends {
            holder_revoked(&holder);
        }
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let items = {
            // The same `next` is polled across keep-alives: it is never cancelled half-way.
            let next = follower.next();
            tokio::pin!(next);
            loop {
                tokio::select! {
                    items = &mut next => break items,
                    _ = tick.tick() => {
                        if !send(Bytes::from_static(KEEP_ALIVE_COMMENT)).await {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                }
            }
        };
        match items {
            Ok(Some(mut items)) => {
                let ends = holder.ends_with(&follower, &mut items).await;
                let mut text = String::new();
                count_resets(&metrics, &items);
                write_items(&mut text, &items);
                if !send(Bytes::from(text)).await {
                    return;
                }
                if ends {
                    holder_revoked(&holder);
                    return;
                }
            }
            // Shutdown.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "revocation stream ended: cannot read the revocation feed");
                return;
            }
        }
    }
}

/// The response body: what [`pump`] writes, as it comes; it ends when the pump does.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
}

impl HttpBody for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::revocation_stream::ResetCause;
    use crate::domain::{FeedEntry, Timestamp};

    fn headers(last_event_id: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = last_event_id {
            h.insert(LAST_EVENT_ID, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn message(r: Result<Option<i64>, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_position_comes_from_last_event_id_then_after() {
        assert_eq!(position(&headers(None), None).unwrap(), None);
        assert_eq!(position(&headers(None), Some("7")).unwrap(), Some(7));
        assert_eq!(position(&headers(Some("9")), None).unwrap(), Some(9));
        assert_eq!(
            position(&headers(Some("9")), Some("7")).unwrap(),
            Some(9),
            "the reconnection's own"
        );
        assert_eq!(position(&headers(Some("")), Some("7")).unwrap(), Some(7));
        assert!(message(position(&headers(None), Some("-1"))).starts_with("after:"));
        assert!(message(position(&headers(None), Some("x"))).starts_with("after:"));
        assert!(message(position(&headers(Some("x")), None)).starts_with("Last-Event-ID:"));
        assert!(message(position(&headers(Some("1")), Some("x"))).starts_with("after:"));
    }

    /// A comment every `keep_alive` (15 s in service; shorter here), whatever else happens; the
    /// stream counts as open until its client goes.
    #[tokio::test]
    async fn comments_keep_the_stream_alive() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("kb.db"))
            .await
            .unwrap();
        let hub = crate::service::RevocationHub::new(Arc::new(store), Arc::new(tokio::sync::Notify::new()));
        tokio::spawn(hub.clone().run());
        let (follower, first) = hub.follow(None).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = mpsc::channel(QUEUED);
        let started = tokio::time::Instant::now();
        let holder = Holder {
            key_id: uuid::Uuid::new_v4(),
            digest: crate::domain::AccessKey::generate().digest(),
        };
        let pump = tokio::spawn(pump(
            follower,
            first,
            holder,
            tx,
            Duration::from_millis(100),
            metrics.clone(),
        ));
        assert_eq!(
            rx.recv().await.unwrap(),
            Bytes::from_static(b"retry: 1000\nid: 0\n: keep-alive\n\n")
        );
        for n in 1..=3 {
            assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(KEEP_ALIVE_COMMENT));
            let elapsed = started.elapsed();
            assert!(
                elapsed >= Duration::from_millis(100 * n) && elapsed < Duration::from_millis(100 * n + 300),
                "comment {n} after {elapsed:?}"
            );
        }
        let gauge = |m: &Metrics| {
            m.render(crate::metrics::Gauges::default())
                .lines()
                .any(|l| l == "killbill_auth_revocation_streams 1")
        };
        assert!(gauge(&metrics));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), pump)
            .await
            .expect("the pump stops when its client goes")
            .unwrap();
        assert!(!gauge(&metrics));
        assert_eq!(hub.followers(), 0);
        hub.close();
    }

    #[test]
    fn events_are_written_as_server_sent_events() {
        let key_id = uuid::Uuid::new_v4();
        let user_id = uuid::Uuid::new_v4();
        let mut text = String::new();
        write_items(
            &mut text,
            &[
                StreamItem::Revoked(FeedEntry {
                    seq: 42,
                    key_id,
                    user_id,
                    reason: "signed_out".into(),
                    at: Timestamp::from_millis(1_795_591_413_125),
                }),
                StreamItem::Reset {
                    head: 57,
                    cause: ResetCause::Pruned,
                },
            ],
        );
        assert_eq!(
            text,
            format!(
                "id: 42\ndata: {{\"seq\":42,\"key_id\":\"{key_id}\",\"user_id\":\"{user_id}\",\
                 \"reason\":\"signed_out\",\"at\":\"2026-11-25T07:23:33.125Z\"}}\n\n\
                 event: reset\nid: 57\ndata: {{\"seq\":57,\"cause\":\"pruned\"}}\n\n"
            )
        );
    }
}
