//! Housekeeping (expiry and pruning) and health (a closed store).

use super::throttles::{counter, throttle_policy};
use super::*;

/// Expiry by lifetime and by idleness: each key expired once, at the earlier of its two
/// deadlines.
pub(super) async fn expiry_at_the_earlier_deadline(store: &dyn Store) {
    let now = T0;
    let bill = user("bill", now - 400 * DAY);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let lifetime = KeyPolicy {
        lifetime: Duration::from_secs(180 * 86_400),
        idle_timeout: None,
        max_per_user: 10,
        on_limit: OnLimit::Evict,
    };
    // (created, last used, expected revocation). The key past its lifetime comes last: a key
    // issued after its deadline would have it marked expired at once (`issue_key`).
    let cases = [
        (now - 100 * DAY, Some(now - 40 * DAY), Some(now - 10 * DAY)), // idle
        (now - 100 * DAY, Some(now - 5 * DAY), None),
        (now - 31 * DAY, None, Some(now - DAY)), // idle since creation
        (now - 10 * DAY, None, None),
        (now - 200 * DAY, Some(now - DAY), Some(now - 20 * DAY)), // lifetime
    ];
    let mut ids = Vec::new();
    for (created, last, _) in cases {
        let key = new_key(&bill, created);
        issue(store, &key, &lifetime).await.unwrap();
        if let Some(at) = last {
            store.record_usage(&[used(key.id, at)]).await.unwrap();
        }
        ids.push(key.id);
    }
    // Without an idle timeout only the lifetime counts.
    let head = store.revocation_feed_head().await.unwrap();
    let idle = KeyPolicy {
        idle_timeout: Some(Duration::from_secs(30 * 86_400)),
        ..lifetime.clone()
    };
    assert_eq!(store.expire_keys(&lifetime, ts(now - 21 * DAY)).await.unwrap(), 0);
    assert_eq!(store.expire_keys(&idle, ts(now)).await.unwrap(), 3);
    assert_eq!(store.expire_keys(&idle, ts(now)).await.unwrap(), 0, "only once");
    let listed = store.list_keys(bill.id, ts(0)).await.unwrap();
    for (id, (_, _, expected)) in ids.iter().zip(cases) {
        let key = listed.iter().find(|k| k.id == *id).unwrap();
        assert_eq!(
            key.revoked,
            expected.map(|at| (ts(at), RevocationReason::Expired)),
            "key created {}",
            key.created.as_millis()
        );
    }
    // Housekeeping's expiry writes no feed entries (expired keys are refused by their deadline).
    assert_eq!(store.revocation_feed_head().await.unwrap(), head);
}

pub(super) async fn pruning(store: &dyn Store) {
    let bill = user("bill", T0);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let keys: Vec<NewKey> = (0..3).map(|i| new_key(&bill, T0 + i)).collect();
    for key in &keys {
        issue(store, key, &policy(10)).await.unwrap();
    }
    store
        .revoke_key(
            bill.id,
            keys[0].id,
            RevocationReason::SignedOut,
            &Cause::new(ts(T0 + 100), None),
        )
        .await
        .unwrap();
    store
        .revoke_key(
            bill.id,
            keys[1].id,
            RevocationReason::SignedOut,
            &Cause::new(ts(T0 + 300), None),
        )
        .await
        .unwrap();
    store
        .remember_network(bill.id, "old/24", ts(T0 + 100))
        .await
        .unwrap();
    store
        .remember_network(bill.id, "new/24", ts(T0 + 300))
        .await
        .unwrap();
    let policy = throttle_policy();
    let old = counter(Scope::Signup, "old");
    let new = counter(Scope::Signup, "new");
    store
        .count_attempt(std::slice::from_ref(&old), &policy, ts(T0 + 100))
        .await
        .unwrap();
    store
        .count_attempt(std::slice::from_ref(&new), &policy, ts(T0 + 300))
        .await
        .unwrap();

    let cut = ts(T0 + 200);
    store
        .prune(&PruneCutoffs {
            feed: cut,
            throttles: cut,
            known_networks: cut,
            revoked_keys: cut,
            shared_activity: cut,
            events: cut,
            tickets: cut,
        })
        .await
        .unwrap();
    let feed = store.revocations_since(0).await.unwrap();
    assert_eq!(
        feed.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        vec![keys[1].digest]
    );
    assert!(
        store.find_key(&keys[0].digest).await.unwrap().is_none(),
        "revoked before the cut"
    );
    assert!(store.find_key(&keys[1].digest).await.unwrap().is_some());
    assert!(
        store.find_key(&keys[2].digest).await.unwrap().is_some(),
        "live keys stay"
    );
    assert!(!store.is_known_network("bill", "old/24", ts(0)).await.unwrap());
    assert!(store.is_known_network("bill", "new/24", ts(0)).await.unwrap());
    // The pruned attempt no longer counts: a limit of one now admits "old" once more, not "new".
    let one = ThrottlePolicy {
        signups_per_network: 1,
        signups_per_wide_network: 1,
        signup_window: Duration::from_secs(86_400),
        ..policy
    };
    assert!(matches!(
        store
            .count_attempt(std::slice::from_ref(&old), &one, ts(T0 + 400))
            .await
            .unwrap(),
        Admission::Counted(_)
    ));
    assert!(matches!(
        store
            .count_attempt(std::slice::from_ref(&new), &one, ts(T0 + 400))
            .await
            .unwrap(),
        Admission::Refused { .. }
    ));
}

pub(super) async fn closed_is_unavailable(store: &dyn Store) {
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        store.find_login("bill").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.remember_network(Uuid::new_v4(), "n", ts(T0)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.writes_failing(), "a write failed as unavailable");
}
