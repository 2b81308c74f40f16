//! What the unusual-access rules cost per request, next to the whole in-memory validation they
//! are part of (digest, cache lookup, expiry, rules, usage recording), measured side by side.
//!
//! ```sh
//! cargo bench --bench rules
//! ```
//! The ratio `anomaly/observe` ÷ `keys/validate_cached` is the rules' share of validation's CPU;
//! `bench/run.sh` gives the CPU of a whole HTTP request for the same comparison.

// A benchmark, not service code: failing loudly is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uuid::Uuid;

use killbill_auth::clock::{Clock, SystemClock};
use killbill_auth::domain::{
    AccessKey, AnomalyPolicy, EventKind, KeyActivity, KeyPolicy, NewEvent, Role, Timestamp, User, Username,
};
use killbill_auth::service::{Client, KeyService};
use killbill_auth::store::sqlite::SqliteStore;
use killbill_auth::store::{NewKey, Store};

fn test_event() -> NewEvent {
    NewEvent::new(EventKind::SignedUp, Timestamp::from_millis(0), None)
}

fn policy() -> AnomalyPolicy {
    AnomalyPolicy {
        window: Duration::from_secs(86_400),
        max_networks: 8,
        ipv4_prefix: 24,
        ipv6_prefix: 64,
        flood_window: Duration::from_secs(3600),
        flood_max_requests: u64::MAX / 2,
        per_second: 1e12,
        burst: 1e12,
        shared: false,
    }
}

fn observe(c: &mut Criterion) {
    let p = policy();
    let clock = SystemClock;
    let home = p.network_of("203.0.113.7".parse().unwrap());
    let mut activity = KeyActivity::issued(Some(home), clock.now());
    // A phone's day: home Wi-Fi and two carrier networks already seen.
    for ip in ["198.51.100.9", "192.0.2.200"] {
        activity.observe(&p, p.network_of(ip.parse().unwrap()), clock.now());
    }
    let ip = "203.0.113.99".parse().unwrap();
    let mut g = c.benchmark_group("anomaly");
    g.throughput(Throughput::Elements(1));
    g.bench_function("network_of+observe", |b| {
        b.iter(|| {
            let net = p.network_of(black_box(ip));
            activity.observe(&p, net, clock.now())
        })
    });
    g.finish();
}

fn validate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (keys, key) = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).await.unwrap());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let user = User {
            id: Uuid::new_v4(),
            name: Username::parse("bench").unwrap(),
            role: Role::User,
            created: clock.now(),
        };
        let key = AccessKey::generate();
        let record = NewKey {
            id: Uuid::new_v4(),
            user_id: user.id,
            digest: key.digest(),
            created: clock.now(),
            created_ip: Some("203.0.113.7".parse().unwrap()),
        };
        // Not a real hash: validation never looks at it.
        store
            .create_user(
                &user,
                "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
                Some(&record),
                &test_event(),
            )
            .await
            .unwrap();
        let keys = KeyService::new(
            store,
            clock,
            KeyPolicy {
                lifetime: Duration::from_secs(180 * 86_400),
                idle_timeout: None,
                max_per_user: 10,
                on_limit: killbill_auth::domain::OnLimit::Evict,
            },
            policy(),
            Arc::new(killbill_auth::metrics::Metrics::new()),
        );
        (keys, key)
    });
    let client = Client {
        ip: "203.0.113.99".parse().unwrap(),
        user_agent: Some("KillBill/2.0 (Android)".into()),
    };
    // Fill the cache.
    rt.block_on(keys.validate(&key, &client)).unwrap();
    let mut g = c.benchmark_group("keys");
    g.throughput(Throughput::Elements(1));
    g.bench_function("validate_cached", |b| {
        b.iter(|| rt.block_on(keys.validate(black_box(&key), &client)).is_ok())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = observe, validate
}
criterion_main!(benches);
