//! The revocation stream's body (`GET /revocations`): axum's `Sse` with the service's keep-alive
//! comments (`with_keep_alive`: every 15 s whatever else is sent), the service's body since issue 26, next to the hand-written body it replaced (as of d95cfc2: a
//! task of the stream's own wrote each batch of items into one `String` and handed it through a
//! 16-chunk channel to the response body). Both are fed the same batches of items, as the
//! revocation feed's follower gives them, in a current-thread Tokio runtime, and their bodies are
//! read frame by frame to the end, as hyper reads them: events per second, and bytes per event
//! (checked equal before anything is measured). One revocation per batch is what a stream sends
//! in ordinary time; 100 per batch is a storm, or a reconnection's backlog. Beside them: axum's
//! without keep-alive comments (what their ticker costs), and the encoding alone, the service's
//! `event()` next to the former `write_items`.
//!
//! ```sh
//! cargo bench --bench sse    # about 20 s
//! ```

// A benchmark, not service code: failing loudly is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::stream;
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::sync::mpsc;

use killbill_auth::domain::{FeedEntry, Timestamp};
use killbill_auth::http::routes::revocations::{event, with_keep_alive, KEEP_ALIVE};
use killbill_auth::service::revocations::StreamItem;

/// Events per measured iteration.
const EVENTS: usize = 1000;

fn batches(per_batch: usize) -> Vec<Vec<StreamItem>> {
    let items: Vec<StreamItem> = (1..=EVENTS as i64)
        .map(|seq| {
            StreamItem::Revoked(FeedEntry {
                seq,
                key_id: uuid::Uuid::new_v4(),
                user_id: uuid::Uuid::new_v4(),
                reason: "signed_out".into(),
                at: Timestamp::from_millis(1_795_591_413_125 + seq),
            })
        })
        .collect();
    items.chunks(per_batch).map(<[StreamItem]>::to_vec).collect()
}

// --- The hand-written body, as of d95cfc2 (src/http/routes/revocations.rs). ---

/// Appends the SSE text of `items`.
fn write_items(out: &mut String, items: &[StreamItem]) {
    for item in items {
        match item {
            StreamItem::Revoked(entry) => {
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

/// The response body: what the pump writes, as it comes.
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

/// The stream's task writing every batch into the queue (its keep-alive ticks and shutdown watch
/// left out: they cost nothing while batches come).
fn hand_written(batches: Vec<Vec<StreamItem>>) -> Body {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        for batch in batches {
            let mut text = String::new();
            write_items(&mut text, &batch);
            if tx.send(Bytes::from(text)).await.is_err() {
                return;
            }
        }
    });
    Body::new(EventBody { rx })
}

// --- axum's, as the service makes it (`events` in src/http/routes/revocations.rs). ---

/// The items' events, the batches coming one at a time into a queue that the stream empties, as
/// `events` does with its follower.
fn item_events(
    batches: Vec<Vec<StreamItem>>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let state = (batches.into_iter(), VecDeque::<Event>::new());
    stream::unfold(state, |(mut batches, mut queue)| async move {
        loop {
            if let Some(event) = queue.pop_front() {
                return Some((Ok::<_, Infallible>(event), (batches, queue)));
            }
            let batch = batches.next()?;
            queue.extend(batch.iter().map(event));
        }
    })
}

/// `Sse` over the items' events, with the service's keep-alive.
fn axum_sse(batches: Vec<Vec<StreamItem>>) -> Body {
    Sse::new(with_keep_alive(item_events(batches), KEEP_ALIVE))
        .into_response()
        .into_body()
}

/// The same without the keep-alive comments: what their ticker (polled beside the events) costs.
fn axum_sse_no_keep_alive(batches: Vec<Vec<StreamItem>>) -> Body {
    Sse::new(item_events(batches)).into_response().into_body()
}

/// Reads `body` to its end, frame by frame; its bytes.
async fn drain(mut body: Body) -> usize {
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        bytes += frame.unwrap().into_data().unwrap().len();
    }
    bytes
}

async fn text(body: Body) -> Bytes {
    body.collect().await.unwrap().to_bytes()
}

fn body(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("revocation_stream_body");
    g.throughput(Throughput::Elements(EVENTS as u64));
    for per_batch in [1, 100] {
        let batches = batches(per_batch);
        let old = rt.block_on(async { text(hand_written(batches.clone())).await });
        let new = rt.block_on(async { text(axum_sse(batches.clone())).await });
        assert_eq!(old, new, "the same bytes");
        println!(
            "{per_batch} per batch: {} bytes for {EVENTS} events ({:.1} per event), the same from both",
            new.len(),
            new.len() as f64 / EVENTS as f64
        );
        g.bench_with_input(
            BenchmarkId::new("hand-written", per_batch),
            &batches,
            |b, batches| b.iter(|| rt.block_on(async { drain(hand_written(batches.clone())).await })),
        );
        g.bench_with_input(BenchmarkId::new("axum Sse", per_batch), &batches, |b, batches| {
            b.iter(|| rt.block_on(async { drain(axum_sse(batches.clone())).await }))
        });
        g.bench_with_input(
            BenchmarkId::new("axum Sse without keep-alive", per_batch),
            &batches,
            |b, batches| {
                b.iter(|| rt.block_on(async { drain(axum_sse_no_keep_alive(batches.clone())).await }))
            },
        );
        g.bench_with_input(
            BenchmarkId::new("encoding only: event()", per_batch),
            &batches,
            |b, batches| b.iter(|| batches.iter().flatten().map(event).count()),
        );
        g.bench_with_input(
            BenchmarkId::new("encoding only: write_items", per_batch),
            &batches,
            |b, batches| {
                b.iter(|| {
                    batches
                        .iter()
                        .map(|batch| {
                            let mut t = String::new();
                            write_items(&mut t, batch);
                            t.len()
                        })
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = sse;
    config = short();
    targets = body
}
criterion_main!(sse);
