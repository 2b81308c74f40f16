//! Suspensions and security events.

use super::*;

/// Suspensions: a suspension in force refuses a key inside the issuing transaction, revokes every
/// live key with the reason `suspended` (in the feed too), replaces the one in force, ends by
/// itself, and the last administrator in force cannot be suspended or deleted.
pub(super) async fn suspensions_and_events(store: &dyn Store) {
    let bill = user("bill", T0);
    let mut boss = user("boss", T0);
    boss.role = Role::Admin;
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    store
        .create_user(&boss, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let keys = [new_key(&bill, T0 + 1), new_key(&bill, T0 + 2)];
    for key in &keys {
        issue(store, key, &policy(10)).await.unwrap();
    }
    let head = store.revocation_feed_head().await.unwrap();
    let request = SuspensionRequest::new("cheating", Some(ts(T0 + DAY)), ts(T0 + 10)).unwrap();
    let first = request.at(bill.id, ts(T0 + 10), Some(boss.id));
    let event = NewEvent::new(EventKind::Suspended, ts(T0 + 10), Some(bill.id)).by(Some(boss.id));
    let revoked = store.suspend(&first, &event).await.unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.iter().all(|r| r.reason == RevocationReason::Suspended));
    assert_eq!(store.revocations_since(head).await.unwrap().len(), 2);
    assert!(live_ids(store, bill.id).await.is_empty());
    match issue(store, &new_key(&bill, T0 + 20), &policy(10)).await {
        Err(StoreError::Suspended(s)) => assert_eq!(s, first),
        other => panic!("issued while suspended: {other:?}"),
    }
    // Replaced: the first is lifted at the second's creation.
    let second = SuspensionRequest::new("appeal: shorter", Some(ts(T0 + 100)), ts(T0 + 30))
        .unwrap()
        .at(bill.id, ts(T0 + 30), None);
    let replaced = NewEvent::new(EventKind::Suspended, ts(T0 + 30), Some(bill.id));
    store.suspend(&second, &replaced).await.unwrap();
    let history = store.list_suspensions(bill.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0], second);
    assert_eq!(history[1].lifted, Some(ts(T0 + 30)));
    // Ended by itself: a key can be issued after `until`, and nothing is in force to lift.
    issue(store, &new_key(&bill, T0 + 100), &policy(10))
        .await
        .unwrap();
    let lift = NewEvent::new(EventKind::SuspensionLifted, ts(T0 + 200), Some(bill.id));
    assert_eq!(store.lift_suspension(bill.id, &lift).await.unwrap(), None);

    // The only administrator.
    let mine = SuspensionRequest::new("x", None, ts(T0))
        .unwrap()
        .at(boss.id, ts(T0 + 300), None);
    assert!(matches!(
        store.suspend(&mine, &test_event()).await,
        Err(StoreError::LastAdmin)
    ));
    assert!(matches!(
        store.delete_user(boss.id, &test_event_at(ts(T0 + 300))).await,
        Err(StoreError::LastAdmin)
    ));
    assert!(store.list_suspensions(boss.id).await.unwrap().is_empty());

    // Events: newest first, by user or all, paged by position, pruned by age.
    let everyone = store.list_events(None, None, 100).await.unwrap();
    let kinds: Vec<&str> = everyone.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "suspended").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "key_revoked").count(),
        2,
        "{kinds:?}"
    );
    assert!(everyone.windows(2).all(|w| w[0].seq > w[1].seq));
    let revocation = everyone.iter().find(|e| e.kind == "key_revoked").unwrap();
    assert_eq!(revocation.user_id, Some(bill.id));
    assert_eq!(revocation.actor_id, Some(boss.id));
    assert_eq!(revocation.detail["reason"], "suspended");
    let page = store.list_events(None, Some(everyone[1].seq), 1).await.unwrap();
    assert_eq!(page, vec![everyone[2].clone()]);
    assert!(store
        .list_events(Some(boss.id), None, 100)
        .await
        .unwrap()
        .is_empty());
    let cut = ts(T0 + 20);
    store
        .prune(&PruneCutoffs {
            feed: ts(0),
            throttles: ts(0),
            known_networks: ts(0),
            revoked_keys: ts(0),
            shared_activity: ts(0),
            events: cut,
            tickets: ts(0),
        })
        .await
        .unwrap();
    let left = store.list_events(None, None, 100).await.unwrap();
    assert!(left.iter().all(|e| e.at >= cut) && !left.is_empty(), "{left:?}");
}
