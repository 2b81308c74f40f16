//! Micro-benchmarks of the pieces of key validation, without HTTP: parsing the `Authorization`
//! header and hashing the key, a lookup in the service's key cache (quick_cache) next to moka
//! (the reason it is quick_cache), serialising the answer, and what every request pays around it
//! (its tracing span, its request id as the service makes it next to a UUID v4, its metrics).
//! Kept short (3 s of measurement each) so that `cargo bench` ends in about a minute.
//!
//! ```sh
//! cargo bench --bench hot_path
//! ```

// A benchmark, not service code: failing loudly is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Serialize;
use uuid::Uuid;

use killbill_auth::domain::{AccessKey, Role, Timestamp, User, Username};
use killbill_auth::http::envelope::Envelope;
use killbill_auth::http::render;
use killbill_auth::service::keys::{KeyView, UsageSnapshot};

/// As many entries as the cache holds in the memory benchmark of `bench/run.sh`.
const CACHED: usize = 100_000;

fn parse_and_digest(c: &mut Criterion) {
    let header = format!("Bearer {}", AccessKey::generate().encode());
    let mut g = c.benchmark_group("key");
    g.throughput(Throughput::Elements(1));
    g.bench_function("from_authorization+digest", |b| {
        b.iter(|| AccessKey::from_authorization(black_box(header.as_bytes())).map(|k| k.digest()))
    });
    g.bench_function("from_authorization", |b| {
        b.iter(|| AccessKey::from_authorization(black_box(header.as_bytes())).is_some())
    });
    g.finish();
}

/// Roughly what the service caches per key: ids, owner, times and the last use.
#[allow(dead_code)] // Only its size and the Arc around it matter here.
struct Entry {
    id: Uuid,
    user: User,
    created: Timestamp,
    last_ip: std::sync::Mutex<Option<std::net::IpAddr>>,
}

fn user(n: usize) -> User {
    User {
        id: Uuid::new_v4(),
        name: Username::parse(&format!("seed{n:07}")).unwrap(),
        role: Role::User,
        created: Timestamp::from_millis(1_764_000_000_000),
    }
}

fn cache_lookup(c: &mut Criterion) {
    // Built like KeyService's cache: quick_cache, capacity 1M (idle keys are swept by the
    // service itself, not by the cache).
    let cache: quick_cache::sync::Cache<[u8; 32], Arc<Entry>> = quick_cache::sync::Cache::new(1_000_000);
    // moka, as the service had it before (capacity 1M, 10 minutes idle): the comparison that
    // chose quick_cache.
    let moka: moka::sync::Cache<[u8; 32], Arc<Entry>> = moka::sync::Cache::builder()
        .max_capacity(1_000_000)
        .time_to_idle(Duration::from_secs(600))
        .build();
    let digests: Vec<[u8; 32]> = (0..CACHED).map(|_| AccessKey::generate().digest().0).collect();
    for (n, d) in digests.iter().enumerate() {
        let entry = Arc::new(Entry {
            id: Uuid::new_v4(),
            user: user(n),
            created: Timestamp::from_millis(1_764_000_000_000),
            last_ip: std::sync::Mutex::new(None),
        });
        cache.insert(*d, entry.clone());
        moka.insert(*d, entry);
    }
    moka.run_pending_tasks();
    let missing: Vec<[u8; 32]> = (0..1024).map(|_| AccessKey::generate().digest().0).collect();

    let mut g = c.benchmark_group("cache_100k");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("quick_cache_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % digests.len();
            cache.get(black_box(&digests[i])).is_some()
        })
    });
    let mut j = 0usize;
    g.bench_function("quick_cache_miss", |b| {
        b.iter(|| {
            j = (j + 1) % missing.len();
            cache.get(black_box(&missing[j])).is_some()
        })
    });
    let mut k = 0usize;
    g.bench_function("moka_hit", |b| {
        b.iter(|| {
            k = (k + 7919) % digests.len();
            moka.get(black_box(&digests[k])).is_some()
        })
    });
    g.finish();
}

/// The shape of `GET /auth`'s `data`: API.md's `User` and `Key`.
#[derive(Serialize)]
struct Validated {
    user: User,
    key: KeyView,
}

/// `GET /auth`'s answer through serde (as before) and written by hand (`http::render`, as now).
fn envelope(c: &mut Criterion) {
    let created = Timestamp::from_millis(1_764_000_000_000);
    let usage = UsageSnapshot {
        expires: created.plus(Duration::from_secs(180 * 86_400)),
        last_used: Some(created.plus(Duration::from_secs(60))),
        last_ip: Some("127.0.0.1".parse().unwrap()),
        user_agent: None,
    };
    let key_id = Uuid::new_v4();
    let data = Validated {
        user: user(1),
        key: KeyView {
            id: key_id,
            created,
            expires: usage.expires,
            last_used: usage.last_used,
            last_ip: usage.last_ip.map(|ip| ip.to_string()),
            user_agent: None,
            current: true,
        },
    };
    let head = render::head(&data.user, key_id, created);
    let bytes = render::validated(&head, &usage);
    assert_eq!(bytes, serde_json::to_vec(&Envelope::ok(&data)).unwrap());
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("ok(validated)_to_vec", |b| {
        b.iter(|| serde_json::to_vec(&Envelope::ok(black_box(&data))).unwrap())
    });
    g.bench_function("render_validated", |b| {
        b.iter(|| render::validated(black_box(&head), black_box(&usage)))
    });
    g.bench_function("render_head_and_validated", |b| {
        b.iter(|| {
            let head = render::head(black_box(&data.user), key_id, created);
            render::validated(&head, black_box(&usage))
        })
    });
    g.finish();
}

/// What every request pays outside the key check: a tracing span formatted by the JSON log layer
/// (what the service's per-request span costs when `RUST_LOG=debug` turns it on; at the default
/// `info` it costs nothing), and its `x-request-id` as the service makes it (a prefix and a
/// counter) next to a UUID v4 (tower-http's `MakeRequestUuid`).
fn per_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_request");
    g.throughput(Throughput::Elements(1));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("info_span_json", |b| {
            b.iter(|| {
                let span = tracing::info_span!(
                    "request",
                    method = %black_box("GET"),
                    path = %black_box("/auth"),
                    request_id = %black_box("0b6f2e4c-1d3a-4f5b-8c7d-9e0f1a2b3c4d")
                );
                let _entered = span.enter();
            })
        });
    });
    g.bench_function("request_id_uuid_v4", |b| {
        b.iter(|| axum::http::HeaderValue::from_str(&Uuid::new_v4().to_string()).unwrap())
    });
    let ids = killbill_auth::http::RequestIds::new();
    g.bench_function("request_id_service", |b| b.iter(|| black_box(&ids).make()));
    // The count of every request for `GET /metrics`: a validation's (a counter registered at
    // start-up) and any other route's (looked up by its labels).
    let metrics = killbill_auth::metrics::Metrics::new();
    g.bench_function("metrics_count_validation", |b| {
        b.iter(|| metrics.validation(black_box(200)))
    });
    g.bench_function("metrics_count_other_route", |b| {
        b.iter(|| metrics.http_request(black_box("/users/me"), black_box("GET"), black_box(200)))
    });
    g.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = hot_path;
    config = short();
    targets = parse_and_digest, cache_lookup, envelope, per_request
}
criterion_main!(hot_path);
