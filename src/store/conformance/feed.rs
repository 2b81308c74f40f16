//! The revocation feed: commit order, and the stream's reads.

use super::*;

pub(super) async fn revocation_feed_order(store: &dyn Store) {
    assert_eq!(store.revocation_feed_head().await.unwrap(), 0);
    assert!(store.revocations_since(0).await.unwrap().is_empty());
    let bill = user("bill", T0);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let keys: Vec<NewKey> = (0..4).map(|i| new_key(&bill, T0 + i)).collect();
    for key in &keys {
        issue(store, key, &policy(10)).await.unwrap();
    }
    for (i, key) in [&keys[2], &keys[0], &keys[3]].into_iter().enumerate() {
        store
            .revoke_key(
                bill.id,
                key.id,
                RevocationReason::SignedOut,
                &Cause::new(ts(T0 + 10 + i as i64), None),
            )
            .await
            .unwrap()
            .unwrap();
    }
    let feed = store.revocations_since(0).await.unwrap();
    assert_eq!(
        feed.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        vec![keys[2].digest, keys[0].digest, keys[3].digest]
    );
    assert!(feed.windows(2).all(|w| w[0].0 < w[1].0));
    let head = store.revocation_feed_head().await.unwrap();
    assert_eq!(head, feed[2].0);
    assert_eq!(
        store.revocations_since(feed[0].0).await.unwrap(),
        feed[1..].to_vec()
    );
    assert!(store.revocations_since(head).await.unwrap().is_empty());
}

/// The revocation stream's reads: every revoked or deleted key with its id, user,
/// reason and time, in `seq` order, paged; the bounds; and pruning that deletes only a prefix
/// of the feed and keeps its newest entry, whatever order the entries' times are in.
pub(super) async fn revocation_stream_feed(store: &dyn Store) {
    assert_eq!(
        store.feed_bounds().await.unwrap(),
        FeedBounds {
            oldest: None,
            head: 0
        }
    );
    assert!(store.feed_after(0, 10).await.unwrap().is_empty());
    let bill = user("bill", T0);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let keys: Vec<NewKey> = (0..5).map(|i| new_key(&bill, T0 + i)).collect();
    for key in &keys {
        issue(store, key, &policy(10)).await.unwrap();
    }
    // One key signed out at T0 + 1000; then one expired as of T0 + 100 (its deadline, earlier
    // than the entry before it); then the rest by an administrator at T0 + 1000; then a
    // password change issues a new key and revokes nothing more; then the account goes.
    store
        .revoke_key(
            bill.id,
            keys[0].id,
            RevocationReason::SignedOut,
            &Cause::new(ts(T0 + 1000), None),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .revoke_key(
            bill.id,
            keys[1].id,
            RevocationReason::Expired,
            &Cause::new(ts(T0 + 100), None),
        )
        .await
        .unwrap()
        .unwrap();
    let by_admin = store
        .revoke_user_keys(bill.id, RevocationReason::Admin, &Cause::new(ts(T0 + 1000), None))
        .await
        .unwrap();
    assert_eq!(by_admin.len(), 3);
    let fresh = new_key(&bill, T0 + 1100);
    let changed = store
        .change_password(bill.id, "$argon2id$x", "$argon2id$y", &fresh, &test_event())
        .await
        .unwrap();
    assert!(changed.is_empty());
    store
        .delete_user(bill.id, &test_event_at(ts(T0 + 1200)))
        .await
        .unwrap();

    let feed = store.feed_after(0, 100).await.unwrap();
    assert_eq!(feed.len(), 6, "{feed:?}");
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(feed.iter().all(|e| e.user_id == bill.id));
    assert_eq!(
        (feed[0].key_id, feed[0].reason.as_str(), feed[0].at),
        (keys[0].id, "signed_out", ts(T0 + 1000))
    );
    assert_eq!(
        (feed[1].key_id, feed[1].reason.as_str(), feed[1].at),
        (keys[1].id, "expired", ts(T0 + 100))
    );
    assert_eq!(
        sorted(feed[2..5].iter().map(|e| e.key_id).collect()),
        sorted(keys[2..].iter().map(|k| k.id).collect())
    );
    assert!(feed[2..5]
        .iter()
        .all(|e| e.reason == "admin" && e.at == ts(T0 + 1000)));
    assert_eq!(
        (feed[5].key_id, feed[5].reason.as_str(), feed[5].at),
        (fresh.id, crate::store::ACCOUNT_DELETED, ts(T0 + 1200))
    );
    // Paged.
    assert_eq!(store.feed_after(0, 2).await.unwrap(), feed[..2].to_vec());
    assert_eq!(
        store.feed_after(feed[1].seq, 100).await.unwrap(),
        feed[2..].to_vec()
    );
    assert!(store.feed_after(feed[5].seq, 100).await.unwrap().is_empty());
    assert_eq!(
        store.feed_bounds().await.unwrap(),
        FeedBounds {
            oldest: Some(feed[0].seq),
            head: feed[5].seq
        }
    );
    // The caches' reads see the same entries.
    assert_eq!(
        store
            .revocations_since(0)
            .await
            .unwrap()
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>(),
        feed.iter().map(|e| e.seq).collect::<Vec<_>>()
    );

    let prune = |cut: i64| PruneCutoffs {
        feed: ts(cut),
        throttles: ts(0),
        known_networks: ts(0),
        revoked_keys: ts(0),
        shared_activity: ts(0),
        tickets: ts(0),
        events: ts(0),
    };
    // Only the prefix before the first entry to keep goes: the expired key's entry (T0 + 100)
    // stays behind the signed-out one (T0 + 1000), which is kept.
    store.prune(&prune(T0 + 500)).await.unwrap();
    assert_eq!(store.feed_after(0, 100).await.unwrap(), feed);
    store.prune(&prune(T0 + 1100)).await.unwrap();
    assert_eq!(store.feed_after(0, 100).await.unwrap(), feed[5..].to_vec());
    // Everything is old: the newest entry stays, so the head stays the highest seq ever given.
    store.prune(&prune(T0 + 100_000)).await.unwrap();
    assert_eq!(store.feed_after(0, 100).await.unwrap(), feed[5..].to_vec());
    assert_eq!(
        store.feed_bounds().await.unwrap(),
        FeedBounds {
            oldest: Some(feed[5].seq),
            head: feed[5].seq
        }
    );
}
