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
//! (`: keep-alive`) opens the stream and follows every 15 s, whatever else is sent. Errors
//! before the stream starts (role, a malformed position, the database) are answered in the
//! envelope.
//!
//! The body is axum's [`Sse`] over a stream of [`Event`]s ([`events`], [`with_keep_alive`]):
//! what the client is sent is the text the hand-written body wrote before (the same bytes, one
//! frame per event instead of one per batch). Measured side by side (`cargo bench --bench sse`,
//! `benches/sse.rs`; BENCHMARKS.md, "Revocation stream body"): one revocation per batch, what a
//! stream sends in ordinary time, axum's takes 0.46 µs per event and the hand-written 0.55-0.80
//! (it crossed a task and a channel per batch); 100 per batch (a storm, a backlog) axum's takes
//! 0.50 and the hand-written 0.27-0.38: about 0.2 µs more per event and stream, 2-4 % of the
//! 6.6 µs of service CPU a delivery costs in the fan-out benchmark (`bench/game.sh` step 2: 1,174
//! µs per sign-out with 100 listeners, 513 with none). So axum's stays. The stream is polled by
//! the connection itself, so back-pressure needs no queue of its own: a client that stops reading
//! stops the polling (the follower then catches up from the database when it is read again), and
//! a client that goes away drops the stream and the follower with it. The request timeout covers
//! only what comes before the answer's head (`http::dispatch`), so the stream is not cut by it;
//! it ends when the service shuts down (`RevocationHub::close`), so it does not hold up the drain.
//!
//! Not axum's [`axum::response::sse::KeepAlive`]: it comments only after 15 s of silence, so a
//! stream with a revocation every 10 s would carry none, where API.md promises a comment line at
//! least every 15 s ([`with_keep_alive`] ticks whatever else is sent).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use crate::domain::revocation_stream::parse_position;
use crate::domain::KeyDigest;
use crate::http::error::ApiError;
use crate::http::extract::{Query, Service};
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::service::revocations::{Follower, StreamItem};

/// A comment this often keeps proxies from closing a quiet stream (API.md: at least every 15 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long an `EventSource` client waits before reconnecting (`retry:`).
const RETRY: Duration = Duration::from_millis(1000);
/// The text of the comment that opens the stream and keeps it alive (`: keep-alive`).
const KEEP_ALIVE_TEXT: &str = "keep-alive";

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

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
    let holder = Holder {
        key_id: service.entry.id,
        digest: service.entry.digest,
    };
    let events = events(follower, first, holder, state.metrics.clone());
    // `text/event-stream` and `Cache-Control: no-cache` (rather than the `no-store` of every
    // other answer: `http::guarded` leaves a handler's own) come with `Sse`;
    // `X-Accel-Buffering: no` asks nginx to pass each event on at once.
    let mut response = Sse::new(with_keep_alive(events, KEEP_ALIVE)).into_response();
    response
        .headers_mut()
        .insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    Ok(response)
}

/// `events` with a `: keep-alive` comment every `interval` (the first `interval` after the
/// start), whatever else is sent, until `events` ends.
pub fn with_keep_alive<S>(
    events: S,
    interval: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let comments = stream::unfold(ticker, |mut ticker| async move {
        ticker.tick().await;
        Some((Some(Ok(Event::default().comment(KEEP_ALIVE_TEXT))), ticker))
    });
    // `None` marks the end of `events`: the comments stop with it.
    let events = events.map(Some).chain(stream::once(async { None }));
    stream::select(events, comments)
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready)
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

/// The event of `item`: `id: <seq>` and `data:` the revocation as JSON on one line (strings
/// escape newlines), or `event: reset`, `id: <head>` and `data: {"seq": <head>, "cause": …}`.
pub fn event(item: &StreamItem) -> Event {
    match item {
        StreamItem::Revoked(entry) => {
            // The JSON written first, then handed over at once: `json_data` takes nearly 3 times
            // as long (0.96 µs against 0.33: serde_json's many small writes each go through the
            // event's newline check; `cargo bench --bench sse`). Serialising plain data cannot fail.
            Event::default()
                .id(itoa::Buffer::new().format(entry.seq))
                .data(serde_json::to_string(entry).unwrap_or_default())
        }
        StreamItem::Reset { head, cause } => Event::default()
            .event("reset")
            .id(itoa::Buffer::new().format(*head))
            .data(format!("{{\"seq\":{head},\"cause\":\"{}\"}}", cause.as_str())),
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

/// The stream's events until the client goes away (the stream is dropped), the service shuts
/// down, the stream's own key is revoked ([`Holder`]), or the database fails while catching up
/// (the client then reconnects with its position): the opening (`retry:`, the position when
/// there is nothing to send first, and a comment), `first`, then what the follower gives. The
/// stream counts as open (`killbill_auth_revocation_streams`) for as long as it lives.
pub(crate) fn events(
    follower: Follower,
    first: Vec<StreamItem>,
    holder: Holder,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let pump = Pump {
        _open: Open::new(metrics.clone()),
        follower,
        first: Some(first),
        holder,
        metrics,
        queue: VecDeque::new(),
        ended: false,
    };
    // The same `fill` is polled across keep-alives (`Unfold` keeps it): it is never cancelled
    // half-way.
    stream::unfold(pump, |mut pump| async move {
        loop {
            if let Some(event) = pump.queue.pop_front() {
                return Some((Ok(event), pump));
            }
            if pump.ended {
                return None;
            }
            pump.fill().await;
        }
    })
}

/// What [`events`] holds between events.
struct Pump {
    _open: Open,
    follower: Follower,
    /// What to send after the opening; taken when the opening is sent.
    first: Option<Vec<StreamItem>>,
    holder: Holder,
    metrics: Arc<Metrics>,
    /// Events made and not yet taken.
    queue: VecDeque<Event>,
    /// Nothing after the queue.
    ended: bool,
}

impl Pump {
    /// Queues the next events, waiting for some; or ends.
    async fn fill(&mut self) {
        let mut items = match self.first.take() {
            Some(first) => {
                // With nothing to send first, the opening says where the stream starts (`id:`
                // without `data:` sets the client's last event id and dispatches nothing): a
                // client whose stream breaks before its first revocation resumes from there,
                // without a gap.
                let mut opening = Event::default().retry(RETRY);
                if first.is_empty() {
                    opening = opening.id(itoa::Buffer::new().format(self.follower.position()));
                }
                self.queue.push_back(opening.comment(KEEP_ALIVE_TEXT));
                first
            }
            None => match self.follower.next().await {
                Ok(Some(items)) => items,
                // Shutdown.
                Ok(None) => {
                    self.ended = true;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream ended: cannot read the revocation feed");
                    self.ended = true;
                    return;
                }
            },
        };
        let ends = self.holder.ends_with(&self.follower, &mut items).await;
        count_resets(&self.metrics, &items);
        self.queue.extend(items.iter().map(event));
        if ends {
            holder_revoked(&self.holder);
            self.ended = true;
        }
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

    /// The bytes of the body's next frame, within a second.
    async fn next_frame(body: &mut axum::body::Body) -> Option<Vec<u8>> {
        use http_body_util::BodyExt;
        let frame = tokio::time::timeout(Duration::from_secs(1), body.frame())
            .await
            .expect("a frame within a second")?
            .unwrap();
        Some(frame.into_data().unwrap().to_vec())
    }

    /// A comment every `interval` (15 s in service; shorter here); the stream counts as open
    /// until its client goes.
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
        let started = tokio::time::Instant::now();
        let holder = Holder {
            key_id: uuid::Uuid::new_v4(),
            digest: crate::domain::AccessKey::generate().digest(),
        };
        let response = Sse::new(with_keep_alive(
            events(follower, first, holder, metrics.clone()),
            Duration::from_millis(100),
        ))
        .into_response();
        let mut body = response.into_body();
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            b"retry: 1000\nid: 0\n: keep-alive\n\n"
        );
        for n in 1..=3 {
            assert_eq!(next_frame(&mut body).await.unwrap(), b": keep-alive\n\n");
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
        assert_eq!(hub.followers(), 1);
        drop(body);
        assert!(!gauge(&metrics), "the stream closes when its client goes");
        assert_eq!(hub.followers(), 0);
        hub.close();
    }

    /// The comments keep their pace while events flow (API.md: at least every 15 s, whatever
    /// else is sent), and stop when the events end.
    #[tokio::test]
    async fn comments_keep_their_pace_between_events() {
        use http_body_util::BodyExt;
        let started = tokio::time::Instant::now();
        // An event every 40 ms for 450 ms, a comment every 100 ms.
        let events = stream::unfold(0u32, |n| async move {
            if n == 11 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            Some((Ok(Event::default().data(n.to_string())), n + 1))
        });
        let body = Sse::new(with_keep_alive(events, Duration::from_millis(100)))
            .into_response()
            .into_body();
        let text = tokio::time::timeout(Duration::from_secs(5), body.collect())
            .await
            .expect("the body ends with its events")
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(text.to_vec()).unwrap();
        let comments = text.matches(": keep-alive\n\n").count();
        let data = text.matches("data: ").count();
        assert_eq!(data, 11, "{text}");
        let took = started.elapsed().as_millis();
        assert!(
            comments as u128 >= took / 100 - 1 && comments as u128 <= took / 100,
            "{comments} comments in {took} ms: {text}"
        );
    }

    /// At shutdown the stream ends.
    #[tokio::test]
    async fn the_stream_ends_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("kb.db"))
            .await
            .unwrap();
        let hub = crate::service::RevocationHub::new(Arc::new(store), Arc::new(tokio::sync::Notify::new()));
        tokio::spawn(hub.clone().run());
        let (follower, first) = hub.follow(None).await.unwrap();
        let holder = Holder {
            key_id: uuid::Uuid::new_v4(),
            digest: crate::domain::AccessKey::generate().digest(),
        };
        let response = Sse::new(with_keep_alive(
            events(follower, first, holder, Arc::new(Metrics::new())),
            Duration::from_secs(60),
        ))
        .into_response();
        let mut body = response.into_body();
        assert!(next_frame(&mut body).await.is_some(), "the opening");
        hub.close();
        assert_eq!(next_frame(&mut body).await, None);
        assert_eq!(hub.followers(), 0);
    }

    /// The text of an event, as the body sends it.
    async fn text_of(event: Event) -> String {
        use http_body_util::BodyExt;
        let body = Sse::new(stream::iter([Ok::<_, Infallible>(event)]))
            .into_response()
            .into_body();
        String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn events_are_written_as_server_sent_events() {
        let key_id = uuid::Uuid::new_v4();
        let user_id = uuid::Uuid::new_v4();
        let revoked = StreamItem::Revoked(FeedEntry {
            seq: 42,
            key_id,
            user_id,
            reason: "signed_out".into(),
            at: Timestamp::from_millis(1_795_591_413_125),
        });
        assert_eq!(
            text_of(event(&revoked)).await,
            format!(
                "id: 42\ndata: {{\"seq\":42,\"key_id\":\"{key_id}\",\"user_id\":\"{user_id}\",\
                 \"reason\":\"signed_out\",\"at\":\"2026-11-25T07:23:33.125Z\"}}\n\n"
            )
        );
        let reset = StreamItem::Reset {
            head: 57,
            cause: ResetCause::Pruned,
        };
        assert_eq!(
            text_of(event(&reset)).await,
            "event: reset\nid: 57\ndata: {\"seq\":57,\"cause\":\"pruned\"}\n\n"
        );
        let opening = Event::default().retry(RETRY).comment(KEEP_ALIVE_TEXT);
        assert_eq!(text_of(opening).await, "retry: 1000\n: keep-alive\n\n");
    }
}
