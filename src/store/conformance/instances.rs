//! Several instances on one PostgreSQL database: separate pools writing at once.

use std::sync::Arc;

use super::throttles::{counter, throttle_policy};
use super::tickets::new_ticket;
use super::*;
use crate::store::postgres::testing::TestDatabase;
use crate::store::postgres::PgStore;
use crate::store::{Accounts, Health, Housekeeping, RevocationFeed, Throttles, Tickets};

async fn instances(db: &TestDatabase, n: usize) -> Vec<Arc<PgStore>> {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(Arc::new(PgStore::connect(&db.url, 8).await.unwrap()));
    }
    stores
}

/// Housekeeping runs on one instance at a time: while another holds its turn, a store skips.
#[tokio::test]
#[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
async fn housekeeping_takes_turns() {
    use secrecy::ExposeSecret;
    use sqlx::Connection;
    let db = TestDatabase::create().await;
    let store = PgStore::connect(&db.url, 2).await.unwrap();
    let bill = user("bill", T0 - 400 * DAY);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let key = new_key(&bill, T0 - 200 * DAY);
    let policy = KeyPolicy {
        lifetime: Duration::from_secs(180 * 86_400),
        idle_timeout: None,
        max_per_user: 10,
        on_limit: OnLimit::Evict,
    };
    issue(&store, &key, &policy).await.unwrap();
    let mut other = sqlx::PgConnection::connect(db.url.expose_secret()).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(crate::store::postgres::HOUSEKEEPING_LOCK)
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(
        store.expire_keys(&policy, ts(T0)).await.unwrap(),
        0,
        "another instance's turn"
    );
    assert_eq!(live_ids(&store, bill.id).await, vec![key.id]);
    // Released explicitly: a closed connection's locks go only when its backend has exited,
    // which the server does on its own time.
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(crate::store::postgres::HOUSEKEEPING_LOCK)
        .execute(&mut other)
        .await
        .unwrap();
    other.close().await.unwrap();
    assert_eq!(store.expire_keys(&policy, ts(T0)).await.unwrap(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
async fn three_instances_start_at_once_on_an_empty_database() {
    let db = TestDatabase::create().await;
    let (a, b, c) = tokio::join!(
        PgStore::connect(&db.url, 2),
        PgStore::connect(&db.url, 2),
        PgStore::connect(&db.url, 2)
    );
    let stores = [a.unwrap(), b.unwrap(), c.unwrap()];
    let bill = user("bill", T0);
    stores[0]
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    for store in &stores {
        assert_eq!(store.find_user(bill.id).await.unwrap().unwrap().0, bill);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
async fn concurrent_attempts_on_several_instances_count_exactly_the_limit() {
    let db = TestDatabase::create().await;
    let stores = instances(&db, 3).await;
    let policy = throttle_policy(); // per_account_network: 3, per_network: 5
    let network = counter(Scope::Network, "203.0.113.0/24");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = stores[i % stores.len()].clone();
        let policy = policy.clone();
        // Two counters per attempt, listed in either order: the sorted locks cannot deadlock.
        let mut counters = vec![
            network.clone(),
            counter(Scope::Account, &format!("acct{}", i % 7)),
        ];
        if i % 2 == 0 {
            counters.reverse();
        }
        tasks.push(tokio::spawn(async move {
            store
                .count_attempt(&counters, &policy, ts(T0 + i as i64))
                .await
                .unwrap()
        }));
    }
    let mut counted = 0;
    for task in tasks {
        if let Admission::Counted(_) = task.await.unwrap() {
            counted += 1;
        }
    }
    assert_eq!(counted, 5);
    for store in &stores {
        store.close().await;
    }
}

/// One ticket redeemed at once through three instances' pools, 30 times: exactly one take
/// each time (the row lock and READ COMMITTED's re-check of the `WHERE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
async fn concurrent_takes_on_several_instances_take_a_ticket_once() {
    let db = TestDatabase::create().await;
    let stores = instances(&db, 3).await;
    let bill = user("bill", T0);
    let key = new_key(&bill, T0);
    stores[0]
        .create_user(&bill, "$argon2id$x", Some(&key), &test_event())
        .await
        .unwrap();
    for round in 0..30 {
        let (ticket, digest) = new_ticket(&key, T0 + round, 30_000);
        assert!(stores[round as usize % 3].create_ticket(&ticket).await.unwrap());
        let mut tasks = Vec::new();
        for i in 0..12 {
            let store = stores[i % 3].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .take_ticket(&digest, ts(T0 + 1_000))
                    .await
                    .unwrap()
                    .is_some()
            }));
        }
        let mut taken = 0;
        for task in tasks {
            taken += usize::from(task.await.unwrap());
        }
        assert_eq!(taken, 1, "round {round}");
    }
    for store in &stores {
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
async fn concurrent_sign_ins_on_two_instances_keep_the_key_limit() {
    let db = TestDatabase::create().await;
    let stores = instances(&db, 2).await;
    let bill = user("bill", T0);
    stores[0]
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = stores[i % 2].clone();
        let key = new_key(&bill, T0 + i as i64);
        tasks.push(tokio::spawn(async move {
            issue(&*store, &key, &policy(3)).await.unwrap().len()
        }));
    }
    let mut evicted = 0;
    for task in tasks {
        evicted += task.await.unwrap();
    }
    assert_eq!(live_ids(&*stores[1], bill.id).await.len(), 3);
    assert_eq!(evicted, 17, "every key but the last three, evicted once");
    let feed = stores[0].revocations_since(0).await.unwrap();
    assert_eq!(feed.len(), 17);
    for store in &stores {
        store.close().await;
    }
}
