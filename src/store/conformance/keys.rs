//! Keys: the key limit and eviction, revocation, usage batches.

use super::*;

pub(super) async fn key_limit_eviction_and_expiry(store: &dyn Store) {
    let bill = user("bill", T0);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let head = store.revocation_feed_head().await.unwrap();
    let keys: Vec<NewKey> = (0..3).map(|d| new_key(&bill, T0 + d * DAY)).collect();
    for key in &keys {
        assert!(issue(store, key, &policy(3)).await.unwrap().is_empty());
    }
    store
        .record_usage(&[used(keys[0].id, T0 + 3 * DAY)])
        .await
        .unwrap();
    // Past the limit: the least recently used goes (keys[1], never used, created before keys[2]).
    let fourth = new_key(&bill, T0 + 4 * DAY);
    let evicted = issue(store, &fourth, &policy(3)).await.unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(
        (evicted[0].id, evicted[0].digest, evicted[0].reason),
        (keys[1].id, keys[1].digest, RevocationReason::Evicted)
    );
    assert_eq!(
        live_ids(store, bill.id).await,
        sorted(vec![keys[0].id, keys[2].id, fourth.id])
    );
    let (record, _) = store.find_key(&keys[1].digest).await.unwrap().unwrap();
    assert_eq!(
        record.revoked,
        Some((ts(T0 + 4 * DAY), RevocationReason::Evicted))
    );
    assert_eq!(record.revoked_network.as_deref(), Some("198.51.100.7"));

    // A sign-in after keys[0]'s lifetime (100 days) marks it expired at its deadline; the
    // others stay, within the limit.
    let fifth = new_key(&bill, T0 + 101 * DAY);
    let expired = issue(store, &fifth, &policy(3)).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].id, expired[0].reason),
        (keys[0].id, RevocationReason::Expired)
    );
    let (record, _) = store.find_key(&keys[0].digest).await.unwrap().unwrap();
    assert_eq!(
        record.revoked,
        Some((ts(T0 + 100 * DAY), RevocationReason::Expired))
    );
    assert_eq!(
        live_ids(store, bill.id).await,
        sorted(vec![keys[2].id, fourth.id, fifth.id])
    );
    // Both revocations reached the feed, in order.
    let feed: Vec<KeyDigest> = store
        .revocations_since(head)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(feed, vec![keys[1].digest, keys[0].digest]);

    // A limit of one: every sign-in replaces the previous key.
    let sixth = new_key(&bill, T0 + 102 * DAY);
    let gone = issue(store, &sixth, &policy(1)).await.unwrap();
    assert_eq!(gone.len(), 3);
    assert_eq!(live_ids(store, bill.id).await, vec![sixth.id]);
}

pub(super) async fn revoke_one_and_all(store: &dyn Store) {
    let bill = user("bill", T0);
    let ann = user("ann", T0);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    store
        .create_user(&ann, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let keys: Vec<NewKey> = (0..3).map(|i| new_key(&bill, T0 + i)).collect();
    for key in &keys {
        issue(store, key, &policy(10)).await.unwrap();
    }
    let anns = new_key(&ann, T0);
    issue(store, &anns, &policy(10)).await.unwrap();

    // Not theirs: nothing.
    let at = ts(T0 + 10);
    assert!(store
        .revoke_key(
            ann.id,
            keys[0].id,
            RevocationReason::SignedOut,
            &Cause::new(at, None)
        )
        .await
        .unwrap()
        .is_none());
    let one = store
        .revoke_key(
            bill.id,
            keys[0].id,
            RevocationReason::SignedOut,
            &Cause::new(at, Some("203.0.113.0/24")),
        )
        .await
        .unwrap()
        .expect("revoked");
    assert_eq!(
        (one.id, one.digest, one.reason),
        (keys[0].id, keys[0].digest, RevocationReason::SignedOut)
    );
    // Only once.
    assert!(store
        .revoke_key(
            bill.id,
            keys[0].id,
            RevocationReason::IpChanges,
            &Cause::new(ts(T0 + 11), None)
        )
        .await
        .unwrap()
        .is_none());
    let (record, _) = store.find_key(&keys[0].digest).await.unwrap().unwrap();
    assert_eq!(record.revoked, Some((at, RevocationReason::SignedOut)));
    assert_eq!(record.revoked_network.as_deref(), Some("203.0.113.0/24"));

    let all = store
        .revoke_user_keys(bill.id, RevocationReason::Admin, &Cause::new(ts(T0 + 20), None))
        .await
        .unwrap();
    assert_eq!(
        sorted(all.iter().map(|k| k.id).collect()),
        sorted(vec![keys[1].id, keys[2].id])
    );
    assert!(all.iter().all(|k| k.reason == RevocationReason::Admin));
    assert!(live_ids(store, bill.id).await.is_empty());
    assert_eq!(
        live_ids(store, ann.id).await,
        vec![anns.id],
        "other users untouched"
    );
    // Revoked keys are listed from `revoked_since` on.
    assert_eq!(store.list_keys(bill.id, ts(T0 + 11)).await.unwrap().len(), 2);
    assert_eq!(store.list_keys(bill.id, ts(T0 + 10)).await.unwrap().len(), 3);
    assert!(store.list_keys(bill.id, ts(T0 + 21)).await.unwrap().is_empty());
}

pub(super) async fn usage_batches(store: &dyn Store) {
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
        .record_usage(&[
            used(keys[0].id, T0 + 1_000),
            used(keys[1].id, T0 + 2_000),
            KeyUsage {
                key_id: keys[2].id,
                used: None,
                activity: "{\"unused\":true}".into(),
            },
            used(Uuid::new_v4(), T0 + 5), // a key deleted meanwhile: ignored
        ])
        .await
        .unwrap();
    // A late flush (another instance's older use, from elsewhere) never moves last_used
    // backwards nor replaces the newer use's address and user agent, but the state it carries is
    // written.
    let mut late = used(keys[0].id, T0 + 500);
    if let Some(last) = &mut late.used {
        last.ip = "198.51.100.7".parse().unwrap();
        last.user_agent = Some("Elsewhere/2".into());
    }
    store.record_usage(&[late]).await.unwrap();
    store.record_usage(&[]).await.unwrap();
    let listed = store.list_keys(bill.id, ts(0)).await.unwrap();
    let get = |id: Uuid| listed.iter().find(|k| k.id == id).unwrap();
    assert_eq!(get(keys[0].id).last_used, Some(ts(T0 + 1_000)));
    assert_eq!(get(keys[0].id).last_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(get(keys[0].id).user_agent.as_deref(), Some("Kill Bill 2/1.0 (é)"));
    assert_eq!(
        get(keys[0].id).activity.as_deref(),
        Some(&*format!(r#"{{"at":{}}}"#, T0 + 500))
    );
    assert_eq!(get(keys[1].id).last_used, Some(ts(T0 + 2_000)));
    assert_eq!(get(keys[1].id).last_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(get(keys[1].id).user_agent.as_deref(), Some("Kill Bill 2/1.0 (é)"));
    assert_eq!(get(keys[2].id).last_used, None);
    assert_eq!(get(keys[2].id).activity.as_deref(), Some("{\"unused\":true}"));
    // Oldest first, and find_key agrees with list_keys.
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        keys.iter().map(|k| k.id).collect::<Vec<_>>()
    );
    for record in &listed {
        assert_eq!(&store.find_key(&record.digest).await.unwrap().unwrap().0, record);
    }
}

/// A routine write on one of several instances is skipped, with the state it carries, when the
/// stored use is as recent as it says (another instance wrote it), and the stored use is
/// returned; written when it is older. Only skipped routine writes are returned.
pub(super) async fn routine_usage_writes_skip_a_recent_stored_use(store: &dyn Store) {
    let bill = user("bill", T0);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    let key = new_key(&bill, T0);
    issue(store, &key, &policy(10)).await.unwrap();
    store.record_usage(&[used(key.id, T0 + 1_000)]).await.unwrap();
    let unless = |at: i64, since: i64| {
        let mut u = used(key.id, at);
        if let Some(last) = &mut u.used {
            last.unless_stored_since = Some(ts(since));
        }
        u
    };
    let stored = async || {
        let listed = store.list_keys(bill.id, ts(0)).await.unwrap();
        (listed[0].last_used, listed[0].activity.clone())
    };
    let skipped_at = |at: i64| {
        vec![StoredUse {
            key_id: key.id,
            last_used: ts(at),
        }]
    };
    // Stored at T0 + 1000, at or after T0 + 900: skipped, state included, and the stored use
    // told.
    assert_eq!(
        store.record_usage(&[unless(T0 + 1_500, T0 + 900)]).await.unwrap(),
        skipped_at(T0 + 1_000)
    );
    assert_eq!(
        store
            .record_usage(&[unless(T0 + 1_600, T0 + 1_000)])
            .await
            .unwrap(),
        skipped_at(T0 + 1_000)
    );
    assert_eq!(
        stored().await,
        (Some(ts(T0 + 1_000)), Some(format!(r#"{{"at":{}}}"#, T0 + 1_000)))
    );
    // Older than asked: written, nothing returned.
    assert_eq!(
        store
            .record_usage(&[unless(T0 + 2_000, T0 + 1_001)])
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        stored().await,
        (Some(ts(T0 + 2_000)), Some(format!(r#"{{"at":{}}}"#, T0 + 2_000)))
    );
    // In one batch with a routine write that is made (a key never used): only the skipped one
    // is returned.
    let other = new_key(&bill, T0 + 10);
    issue(store, &other, &policy(10)).await.unwrap();
    let mut first_use = used(other.id, T0 + 2_700);
    if let Some(last) = &mut first_use.used {
        last.unless_stored_since = Some(ts(T0 + 2_650));
    }
    let outcome = store
        .record_usage(&[unless(T0 + 2_500, T0 + 1_500), first_use])
        .await
        .unwrap();
    assert_eq!(outcome, skipped_at(T0 + 2_000));
    let listed = store.list_keys(bill.id, ts(0)).await.unwrap();
    let other_used = listed.iter().find(|k| k.id == other.id).map(|k| k.last_used);
    assert_eq!(other_used, Some(Some(ts(T0 + 2_700))));
}
