//! Join tickets.

use super::*;

pub(super) fn new_ticket(key: &NewKey, at: i64, lifetime_ms: i64) -> (NewTicket, TicketDigest) {
    let digest = Ticket::generate().digest();
    let ticket = NewTicket {
        digest,
        key_id: key.id,
        user_id: key.user_id,
        created: ts(at),
        expires: ts(at + lifetime_ms),
    };
    (ticket, digest)
}

/// Join tickets: stored for a live key only, taken once, until they expire, gone with
/// their key, pruned after expiry.
pub(super) async fn join_tickets(store: &dyn Store) {
    let bill = user("bill", T0);
    let key = new_key(&bill, T0);
    store
        .create_user(&bill, "$argon2id$x", Some(&key), &test_event())
        .await
        .unwrap();
    let (ticket, digest) = new_ticket(&key, T0 + 1_000, 30_000);
    assert!(store.create_ticket(&ticket).await.unwrap());
    let taken = store
        .take_ticket(&digest, ts(T0 + 2_000))
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(taken.user, bill);
    assert_eq!((taken.key.id, taken.key.digest), (key.id, key.digest));
    assert_eq!(taken.key.revoked, None);
    assert_eq!(taken.asked, ts(T0 + 1_000));
    assert!(
        store
            .take_ticket(&digest, ts(T0 + 2_001))
            .await
            .unwrap()
            .is_none(),
        "once"
    );
    assert!(store
        .take_ticket(&Ticket::generate().digest(), ts(T0))
        .await
        .unwrap()
        .is_none());

    // Honoured strictly before its expiry.
    let (ticket, digest) = new_ticket(&key, T0, 30_000);
    store.create_ticket(&ticket).await.unwrap();
    assert!(store
        .take_ticket(&digest, ts(T0 + 30_000))
        .await
        .unwrap()
        .is_none());
    let (ticket, digest) = new_ticket(&key, T0, 30_000);
    store.create_ticket(&ticket).await.unwrap();
    assert!(store
        .take_ticket(&digest, ts(T0 + 29_999))
        .await
        .unwrap()
        .is_some());

    // Concurrent takes of one ticket: exactly one gets it.
    let (ticket, digest) = new_ticket(&key, T0, 30_000);
    store.create_ticket(&ticket).await.unwrap();
    let take = || store.take_ticket(&digest, ts(T0 + 5));
    let all = tokio::join!(take(), take(), take(), take(), take(), take(), take(), take());
    let results = [all.0, all.1, all.2, all.3, all.4, all.5, all.6, all.7];
    assert_eq!(
        results.iter().filter(|r| matches!(r, Ok(Some(_)))).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(Result::is_ok));

    // A ticket asked for before its key was revoked is still taken (and spent): the key is
    // returned as revoked, for the caller to refuse.
    let (ticket, digest) = new_ticket(&key, T0 + 10, 30_000);
    store.create_ticket(&ticket).await.unwrap();
    store
        .revoke_key(
            bill.id,
            key.id,
            RevocationReason::SignedOut,
            &Cause::new(ts(T0 + 20), None),
        )
        .await
        .unwrap();
    let taken = store
        .take_ticket(&digest, ts(T0 + 30))
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(
        taken.key.revoked,
        Some((ts(T0 + 20), RevocationReason::SignedOut))
    );
    // A revoked key gets no ticket, nor does a key that does not exist.
    let (ticket, _) = new_ticket(&key, T0 + 40, 30_000);
    assert!(!store.create_ticket(&ticket).await.unwrap());
    let ghost = new_key(&bill, T0);
    let (ticket, _) = new_ticket(&ghost, T0 + 40, 30_000);
    assert!(!store.create_ticket(&ticket).await.unwrap());

    // Pruning: tickets that expired before the cut go, redeemed or not; the others stay.
    let ann = user("ann", T0);
    let anns = new_key(&ann, T0);
    store
        .create_user(&ann, "$argon2id$x", Some(&anns), &test_event())
        .await
        .unwrap();
    let (old, old_digest) = new_ticket(&anns, T0, 100);
    let (new, new_digest) = new_ticket(&anns, T0, 10_000);
    store.create_ticket(&old).await.unwrap();
    store.create_ticket(&new).await.unwrap();
    let cut = ts(T0 + 5_000);
    store
        .prune(&PruneCutoffs {
            feed: ts(0),
            throttles: ts(0),
            known_networks: ts(0),
            revoked_keys: ts(0),
            shared_activity: ts(0),
            events: ts(0),
            tickets: cut,
        })
        .await
        .unwrap();
    // (Taken at a time when both would be unexpired: only the pruned one is gone.)
    assert!(store
        .take_ticket(&old_digest, ts(T0 + 50))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .take_ticket(&new_digest, ts(T0 + 50))
        .await
        .unwrap()
        .is_some());

    // Gone with the account (its keys, and their tickets, cascade).
    let (ticket, digest) = new_ticket(&anns, T0 + 60, 30_000);
    store.create_ticket(&ticket).await.unwrap();
    store
        .delete_user(ann.id, &test_event_at(ts(T0 + 70)))
        .await
        .unwrap();
    assert!(store.take_ticket(&digest, ts(T0 + 80)).await.unwrap().is_none());
}
