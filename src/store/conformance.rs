//! The store conformance suite: what every [`Store`] must do, as scenarios over `&dyn Store`,
//! each run against a fresh SQLite store (a temporary directory) and a fresh PostgreSQL store
//! (a database of its own, see `postgres::testing`). Then PostgreSQL's own concern: several
//! instances (separate pools) writing at once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use uuid::Uuid;

use super::{
    Admission, Cause, CountedAttempt, KeyUsage, LastUse, NewKey, NewTicket, PruneCutoffs, RevokedKey, Store,
    StoreError, VerifiedHash,
};
use crate::domain::FeedBounds;
use crate::domain::{
    AccessKey, Counter, KeyDigest, KeyPolicy, RevocationReason, Role, Scope, ThrottlePolicy, Timestamp, User,
    Username,
};
use crate::domain::{EventKind, NewEvent, OnLimit, StoredHash, SuspensionRequest};
use crate::domain::{Ticket, TicketDigest};

fn test_event() -> NewEvent {
    NewEvent::new(EventKind::SignedIn, Timestamp::from_millis(0), None)
}

fn test_event_at(at: Timestamp) -> NewEvent {
    NewEvent::new(EventKind::AccountDeleted, at, None)
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_800_000_000_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn user(name: &str, created: i64) -> User {
    User {
        id: Uuid::new_v4(),
        name: Username::from_trusted(name.into()),
        role: Role::User,
        created: ts(created),
    }
}

fn new_key(user: &User, at: i64) -> NewKey {
    NewKey {
        id: Uuid::new_v4(),
        user_id: user.id,
        digest: AccessKey::generate().digest(),
        created: ts(at),
        created_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
    }
}

/// Issues a key as a sign-in does: against the account's hash as stored now.
async fn issue(store: &dyn Store, key: &NewKey, policy: &KeyPolicy) -> Result<Vec<RevokedKey>, StoreError> {
    let Some((_, stored)) = store.find_user(key.user_id).await? else {
        return store
            .issue_key(
                key,
                &VerifiedHash {
                    verified: "",
                    upgrade: None,
                },
                policy,
                &test_event(),
            )
            .await;
    };
    let verified = VerifiedHash {
        verified: &stored.phc,
        upgrade: None,
    };
    store.issue_key(key, &verified, policy, &test_event()).await
}

/// Issues a key as a sign-in that upgrades the hash does: the account's hash as stored now is
/// replaced by `upgrade`.
async fn issue_upgrading(
    store: &dyn Store,
    key: &NewKey,
    policy: &KeyPolicy,
    upgrade: &str,
) -> Result<Vec<RevokedKey>, StoreError> {
    let (_, stored) = store.find_user(key.user_id).await?.ok_or(StoreError::Gone)?;
    let verified = VerifiedHash {
        verified: &stored.phc,
        upgrade: Some(upgrade),
    };
    store.issue_key(key, &verified, policy, &test_event()).await
}

fn policy(max_per_user: usize) -> KeyPolicy {
    KeyPolicy {
        lifetime: Duration::from_secs(100 * 86_400),
        idle_timeout: None,
        max_per_user,
        on_limit: OnLimit::Evict,
    }
}

fn used(key_id: Uuid, at: i64) -> KeyUsage {
    KeyUsage {
        key_id,
        used: Some(LastUse {
            at: ts(at),
            ip: "203.0.113.9".parse().unwrap(),
            user_agent: Some("Kill Bill 2/1.0 (é)".into()),
        }),
        activity: format!(r#"{{"at":{at}}}"#),
    }
}

async fn live_ids(store: &dyn Store, user_id: Uuid) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = store
        .list_keys(user_id, ts(i64::MAX))
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.revoked.is_none())
        .map(|k| k.id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

async fn users_and_names(store: &dyn Store) {
    store.ping().await.unwrap();
    let bill = user("Bill", T0);
    store
        .create_user(&bill, "$argon2id$one", None, &test_event())
        .await
        .unwrap();
    let (found, phc) = store
        .find_login("bill")
        .await
        .unwrap()
        .expect("found by canonical name");
    assert_eq!((found, phc), (bill.clone(), StoredHash::native("$argon2id$one")));
    assert!(store.find_login("bil").await.unwrap().is_none());
    assert!(matches!(
        store
            .create_user(&user("BILL", T0 + 1), "$argon2id$x", None, &test_event())
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The refused sign-up left nothing behind, and a key travels with a sign-up.
    let ann = user("ann", T0 + 2);
    let key = new_key(&ann, T0 + 2);
    store
        .create_user(&ann, "$argon2id$two", Some(&key), &test_event())
        .await
        .unwrap();
    let (record, owner) = store.find_key(&key.digest).await.unwrap().expect("key");
    assert_eq!((record.id, owner), (key.id, ann.clone()));
    assert_eq!(record.created_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(store.find_user(ann.id).await.unwrap().expect("by id").0, ann);
    assert!(store.find_user(Uuid::new_v4()).await.unwrap().is_none());

    // A sign-in's upgrade replaces the hash it verified; a stale one writes nothing.
    issue_upgrading(store, &new_key(&ann, T0 + 5), &policy(10), "$argon2id$three")
        .await
        .unwrap();
    let stale = VerifiedHash {
        verified: "$argon2id$two",
        upgrade: Some("$argon2id$stale"),
    };
    assert!(matches!(
        store
            .issue_key(&new_key(&ann, T0 + 6), &stale, &policy(10), &test_event())
            .await,
        Err(StoreError::PasswordChanged)
    ));
    assert!(matches!(
        store
            .change_password(
                ann.id,
                "$argon2id$two",
                "$argon2id$four",
                &new_key(&ann, T0 + 6),
                &test_event()
            )
            .await,
        Err(StoreError::PasswordChanged)
    ));
    let gone = user("gone", T0 + 6);
    assert!(matches!(
        issue(store, &new_key(&gone, T0 + 6), &policy(10)).await,
        Err(StoreError::Gone)
    ));
    assert_eq!(
        store.find_user(ann.id).await.unwrap().unwrap().1,
        StoredHash::native("$argon2id$three")
    );

    // Creation order, by cursor.
    let carl = user("carl", T0 + 3);
    store
        .create_user(&carl, "$argon2id$c", None, &test_event())
        .await
        .unwrap();
    let all = store.list_users(None, 10).await.unwrap();
    assert_eq!(all, vec![bill.clone(), ann.clone(), carl.clone()]);
    let page = store.list_users(None, 2).await.unwrap();
    assert_eq!(page, vec![bill, ann.clone()]);
    let rest = store.list_users(Some((ann.created, ann.id)), 2).await.unwrap();
    assert_eq!(rest, vec![carl.clone()]);

    // Known networks: the latest success counts.
    store
        .remember_network(carl.id, "203.0.113.0/24", ts(T0 + 100))
        .await
        .unwrap();
    store
        .remember_network(carl.id, "203.0.113.0/24", ts(T0 + 50))
        .await
        .unwrap();
    assert!(store
        .is_known_network("carl", "203.0.113.0/24", ts(T0 + 100))
        .await
        .unwrap());
    assert!(!store
        .is_known_network("carl", "203.0.113.0/24", ts(T0 + 101))
        .await
        .unwrap());
    assert!(!store
        .is_known_network("carl", "198.51.100.0/24", ts(0))
        .await
        .unwrap());
    assert!(!store
        .is_known_network("ann", "203.0.113.0/24", ts(0))
        .await
        .unwrap());

    assert!(!store.writes_failing());
    store.check_writes().await.unwrap();
}

async fn key_limit_eviction_and_expiry(store: &dyn Store) {
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

async fn revoke_one_and_all(store: &dyn Store) {
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

async fn change_password_and_delete_user(store: &dyn Store) {
    let bill = user("bill", T0);
    store
        .create_user(&bill, "$argon2id$old", None, &test_event())
        .await
        .unwrap();
    let old: Vec<NewKey> = (0..2).map(|i| new_key(&bill, T0 + i)).collect();
    for key in &old {
        issue(store, key, &policy(10)).await.unwrap();
    }
    let fresh = new_key(&bill, T0 + 100);
    let revoked = store
        .change_password(bill.id, "$argon2id$old", "$argon2id$new", &fresh, &test_event())
        .await
        .unwrap();
    assert_eq!(
        sorted(revoked.iter().map(|k| k.id).collect()),
        sorted(old.iter().map(|k| k.id).collect())
    );
    assert!(revoked
        .iter()
        .all(|k| k.reason == RevocationReason::PasswordChanged));
    assert_eq!(
        store.find_login("bill").await.unwrap().unwrap().1,
        StoredHash::native("$argon2id$new")
    );
    assert_eq!(live_ids(store, bill.id).await, vec![fresh.id]);
    let (record, _) = store.find_key(&old[0].digest).await.unwrap().unwrap();
    assert_eq!(
        record.revoked,
        Some((ts(T0 + 100), RevocationReason::PasswordChanged))
    );

    let head = store.revocation_feed_head().await.unwrap();
    let gone = store
        .delete_user(bill.id, &test_event_at(ts(T0 + 200)))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        (gone[0].id, gone[0].digest, gone[0].reason),
        (fresh.id, fresh.digest, RevocationReason::Admin)
    );
    assert!(store.find_user(bill.id).await.unwrap().is_none());
    assert!(store.find_login("bill").await.unwrap().is_none());
    assert!(store.find_key(&fresh.digest).await.unwrap().is_none());
    assert!(store.find_key(&old[0].digest).await.unwrap().is_none());
    let feed = store.revocations_since(head).await.unwrap();
    assert_eq!(
        feed.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        vec![fresh.digest]
    );
    // The name is free again.
    store
        .create_user(&user("BILL", T0 + 300), "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    assert!(store
        .delete_user(Uuid::new_v4(), &test_event_at(ts(T0)))
        .await
        .unwrap()
        .is_empty());
}

async fn usage_batches(store: &dyn Store) {
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
    // A late flush never moves last_used backwards, but the state it carries is written.
    store.record_usage(&[used(keys[0].id, T0 + 500)]).await.unwrap();
    store.record_usage(&[]).await.unwrap();
    let listed = store.list_keys(bill.id, ts(0)).await.unwrap();
    let get = |id: Uuid| listed.iter().find(|k| k.id == id).unwrap();
    assert_eq!(get(keys[0].id).last_used, Some(ts(T0 + 1_000)));
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

fn throttle_policy() -> ThrottlePolicy {
    ThrottlePolicy {
        per_account_network: 3,
        per_account: 50,
        per_network: 5,
        per_wide_network: 1000,
        failure_window: Duration::from_secs(900),
        signups_per_network: 20,
        signups_per_wide_network: 200,
        signup_window: Duration::from_secs(3600),
    }
}

fn counter(scope: Scope, subject: &str) -> Counter {
    Counter {
        scope,
        subject: subject.into(),
    }
}

async fn throttles(store: &dyn Store) {
    let policy = throttle_policy();
    let pair = counter(Scope::AccountNetwork, "acct|203.0.113.0/24");
    let network = counter(Scope::Network, "203.0.113.0/24");
    let both = [pair.clone(), network.clone()];
    let mut counted = Vec::new();
    for i in 0..3 {
        match store
            .count_attempt(&both, &policy, ts(T0 + i * 1000))
            .await
            .unwrap()
        {
            Admission::Counted(attempt) => {
                assert_eq!(attempt.0.len(), 2);
                counted.push(attempt);
            }
            refused => panic!("attempt {i}: {refused:?}"),
        }
    }
    // At the limit: refused, with the wait until the oldest attempt leaves the window.
    assert_eq!(
        store.count_attempt(&both, &policy, ts(T0 + 2_000)).await.unwrap(),
        Admission::Refused {
            blocked: vec![(Scope::AccountNetwork, 898)]
        }
    );
    // The refusal counted nothing: the network counter (limit 5) has room for two more.
    for _ in 0..2 {
        assert!(matches!(
            store
                .count_attempt(std::slice::from_ref(&network), &policy, ts(T0 + 3_000))
                .await
                .unwrap(),
            Admission::Counted(_)
        ));
    }
    assert!(matches!(
        store
            .count_attempt(std::slice::from_ref(&network), &policy, ts(T0 + 3_000))
            .await
            .unwrap(),
        Admission::Refused { .. }
    ));
    // Taking an attempt back frees its place in every counter.
    store.uncount_attempt(&counted[2], None).await.unwrap();
    assert!(matches!(
        store.count_attempt(&both, &policy, ts(T0 + 4_000)).await.unwrap(),
        Admission::Counted(_)
    ));
    // Both blocked (each by its oldest attempt in the window, T0), in the order given.
    assert_eq!(
        store.count_attempt(&both, &policy, ts(T0 + 5_000)).await.unwrap(),
        Admission::Refused {
            blocked: vec![(Scope::AccountNetwork, 895), (Scope::Network, 895)]
        }
    );
    // The window passes for the oldest attempts.
    assert!(matches!(
        store
            .count_attempt(std::slice::from_ref(&pair), &policy, ts(T0 + 900_000))
            .await
            .unwrap(),
        Admission::Counted(_)
    ));
    // Forgiving a counter forgets all its attempts; other subjects are untouched.
    store
        .uncount_attempt(&CountedAttempt::default(), Some(&pair))
        .await
        .unwrap();
    for i in 0..3 {
        assert!(
            matches!(
                store
                    .count_attempt(std::slice::from_ref(&pair), &policy, ts(T0 + 900_001))
                    .await
                    .unwrap(),
                Admission::Counted(_)
            ),
            "after forgiving, attempt {i}"
        );
    }
    let other = counter(Scope::AccountNetwork, "other|203.0.113.0/24");
    assert!(matches!(
        store
            .count_attempt(std::slice::from_ref(&other), &policy, ts(T0 + 900_001))
            .await
            .unwrap(),
        Admission::Counted(_)
    ));
    store
        .uncount_attempt(&CountedAttempt::default(), None)
        .await
        .unwrap();
}

async fn revocation_feed_order(store: &dyn Store) {
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

/// Expiry by lifetime and by idleness: each key expired once, at the earlier of its two
/// deadlines.
async fn expiry_at_the_earlier_deadline(store: &dyn Store) {
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

async fn pruning(store: &dyn Store) {
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

async fn closed_is_unavailable(store: &dyn Store) {
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

/// Suspensions: a suspension in force refuses a key inside the issuing transaction, revokes every
/// live key with the reason `suspended` (in the feed too), replaces the one in force, ends by
/// itself, and the last administrator in force cannot be suspended or deleted.
async fn suspensions_and_events(store: &dyn Store) {
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
    let history = store.suspensions(bill.id).await.unwrap();
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
    assert!(store.suspensions(boss.id).await.unwrap().is_empty());

    // Events: newest first, by user or all, paged by position, pruned by age.
    let everyone = store.events(None, None, 100).await.unwrap();
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
    let page = store.events(None, Some(everyone[1].seq), 1).await.unwrap();
    assert_eq!(page, vec![everyone[2].clone()]);
    assert!(store.events(Some(boss.id), None, 100).await.unwrap().is_empty());
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
    let left = store.events(None, None, 100).await.unwrap();
    assert!(left.iter().all(|e| e.at >= cut) && !left.is_empty(), "{left:?}");
}

/// Service accounts: no password hash (so no sign-in), found by administration, and
/// their keys never expire by housekeeping.
async fn service_accounts(store: &dyn Store) {
    let service = User {
        role: Role::Service,
        ..user("MatchMaker", T0 - 400 * DAY)
    };
    let key = new_key(&service, T0 - 300 * DAY);
    store.create_service(&service, &key, &test_event()).await.unwrap();
    assert!(
        store.find_login("matchmaker").await.unwrap().is_none(),
        "no password: not found for a sign-in"
    );
    assert!(store.find_user(service.id).await.unwrap().is_none());
    assert_eq!(
        store.find_account("matchmaker").await.unwrap(),
        Some(service.clone())
    );
    assert_eq!(
        store.find_account_by_id(service.id).await.unwrap(),
        Some(service.clone())
    );
    assert!(store.find_account("nobody").await.unwrap().is_none());
    assert!(store.find_account_by_id(Uuid::new_v4()).await.unwrap().is_none());
    let (record, owner) = store.find_key(&key.digest).await.unwrap().expect("the key");
    assert_eq!((record.id, owner.role), (key.id, Role::Service));
    // One name space with players, regardless of case.
    assert!(matches!(
        store
            .create_service(
                &User {
                    role: Role::Service,
                    ..user("MATCHMAKER", T0)
                },
                &new_key(&service, T0),
                &test_event()
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_user(&user("matchmaker", T0), "$argon2id$x", None, &test_event())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let bill = user("bill", T0 - 400 * DAY);
    store
        .create_user(&bill, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    assert_eq!(
        store.find_account("bill").await.unwrap().map(|u| u.id),
        Some(bill.id),
        "players too"
    );
    let player_key = new_key(&bill, T0 - 300 * DAY);
    issue(store, &player_key, &policy(10)).await.unwrap();
    // Past both deadlines: only the player's key is marked.
    let policy = KeyPolicy {
        idle_timeout: Some(Duration::from_secs(86_400)),
        ..policy(10)
    };
    assert_eq!(store.expire_keys(&policy, ts(T0)).await.unwrap(), 1);
    assert_eq!(live_ids(store, service.id).await, vec![key.id]);
    assert!(live_ids(store, bill.id).await.is_empty());
    // Revocation works on them as on anyone's.
    let revoked = store
        .revoke_user_keys(service.id, RevocationReason::Admin, &Cause::new(ts(T0), None))
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert!(live_ids(store, service.id).await.is_empty());
}

fn new_ticket(key: &NewKey, at: i64, lifetime_ms: i64) -> (NewTicket, TicketDigest) {
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
async fn join_tickets(store: &dyn Store) {
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

/// The revocation stream's reads: every revoked or deleted key with its id, user,
/// reason and time, in `seq` order, paged; the bounds; and pruning that deletes only a prefix
/// of the feed and keeps its newest entry, whatever order the entries' times are in.
async fn revocation_stream_feed(store: &dyn Store) {
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
        (fresh.id, super::ACCOUNT_DELETED, ts(T0 + 1200))
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

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            use crate::store::Store;
            $(
                #[tokio::test]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("kb.db")).await.unwrap();
                    super::$scenario(&store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            use crate::store::Store;
            $(
                #[tokio::test]
                #[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
                async fn $scenario() {
                    let db = crate::store::postgres::testing::TestDatabase::create().await;
                    let store = crate::store::postgres::PgStore::connect(&db.url, 4).await.unwrap();
                    super::$scenario(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

conformance!(
    users_and_names,
    key_limit_eviction_and_expiry,
    revoke_one_and_all,
    change_password_and_delete_user,
    usage_batches,
    throttles,
    revocation_feed_order,
    expiry_at_the_earlier_deadline,
    pruning,
    closed_is_unavailable,
    suspensions_and_events,
    service_accounts,
    join_tickets,
    revocation_stream_feed,
    imports,
    imported_keys,
);

/// Several instances on one PostgreSQL database: separate pools writing at once.
mod postgres_instances {
    use std::sync::Arc;

    use super::*;
    use crate::store::postgres::testing::TestDatabase;
    use crate::store::postgres::PgStore;

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
}

// Imports

const BCRYPT_A: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
const BCRYPT_B: &str = "$2y$12$QjSH496pcT5CEbzjD/vtVeH03tfHKFy36d4J0Ltp3lRtee9HDxY3K";
const SPRING: &str =
    "$argon2id$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

fn run(source: crate::domain::import::Source, started: i64, dry_run: bool) -> crate::domain::import::Run {
    crate::domain::import::Run {
        source,
        started: ts(started),
        dry_run,
    }
}

fn import_row(
    at: &str,
    name: &str,
    hash: &str,
    source_id: Option<&str>,
) -> crate::domain::import::ImportUser {
    crate::domain::import::SourceRow {
        at: at.into(),
        source_id: source_id.map(str::to_owned),
        name: Some(name.into()),
        hash: Some(hash.into()),
        created: Some(ts(T0 - 500 * DAY)),
        role: None,
        hash_updated: Some(ts(T0 - 100 * DAY)),
    }
    .check(|_| true, ts(T0))
    .unwrap()
}

async fn imports(store: &dyn Store) {
    use crate::domain::import::{Refusal, Source};
    use crate::store::UserOutcome;
    let ted = user("Ted", T0 - DAY);
    store
        .create_user(&ted, "$argon2id$native", None, &test_event())
        .await
        .unwrap();
    let first = run(Source::Jsonl, T0, false);
    let outcomes = store
        .import_users(
            &first,
            &[
                import_row("line 1", "Bill", BCRYPT_A, None),
                import_row("line 2", "bill", BCRYPT_A, None),
                import_row("line 3", "Ann", SPRING, None),
                import_row("line 4", "TED", SPRING, None),
            ],
        )
        .await
        .unwrap();
    let UserOutcome::Imported { id: bill } = outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(
        outcomes[1],
        UserOutcome::Refused(Refusal::Earlier {
            earlier: "line 1".into(),
            name: "Bill".into()
        })
    );
    assert!(
        matches!(outcomes[2], UserOutcome::Imported { .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[3], UserOutcome::Refused(Refusal::Taken("Ted".into())));
    let (found, hash) = store.find_login("bill").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.name.as_str(), found.role),
        (bill, "Bill", Role::User)
    );
    assert_eq!(found.created, ts(T0 - 500 * DAY), "the source's creation time");
    assert_eq!(hash, StoredHash::legacy(BCRYPT_A));
    let events = store.events(Some(bill), None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind.as_str(), events[0].at), ("imported", ts(T0)));
    assert_eq!(events[0].detail["source"], "jsonl");
    let mut classes = store.hash_classes().await.unwrap();
    classes.sort();
    assert_eq!(classes, vec!["argon2id v=19 m=16384 t=2 p=1 len=32", "bcrypt 10"]);
    // A later batch of the same run: the name is the source's second row with it.
    let later = store
        .import_users(&first, &[import_row("line 9", "BILL", BCRYPT_A, None)])
        .await
        .unwrap();
    assert_eq!(
        later,
        vec![UserOutcome::Refused(Refusal::Earlier {
            earlier: "line 1".into(),
            name: "Bill".into()
        })]
    );

    // A dry run decides the same and keeps nothing.
    let dry = run(Source::Jsonl, T0 + 1, true);
    let outcomes = store
        .import_users(&dry, &[import_row("line 1", "Zed", BCRYPT_B, None)])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], UserOutcome::Imported { .. }),
        "{outcomes:?}"
    );
    assert!(store.find_login("zed").await.unwrap().is_none());
    assert!(!store
        .hash_classes()
        .await
        .unwrap()
        .contains(&"bcrypt 12".to_owned()));

    // Run again: nothing twice; a hash changed at the source and never used here follows it.
    let second = run(Source::Jsonl, T0 + 2, false);
    let outcomes = store
        .import_users(
            &second,
            &[
                import_row("line 1", "Bill", BCRYPT_B, None),
                import_row("line 3", "Ann", SPRING, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes[0],
        UserOutcome::Present {
            id: bill,
            hash_updated: true
        }
    );
    assert!(matches!(
        outcomes[1],
        UserOutcome::Present {
            hash_updated: false,
            ..
        }
    ));
    assert_eq!(
        store.find_login("bill").await.unwrap().unwrap().1,
        StoredHash::legacy(BCRYPT_B)
    );
    // Once signed in here (the hash upgraded), the source no longer decides.
    let bill_user = store.find_account_by_id(bill).await.unwrap().unwrap();
    issue_upgrading(
        store,
        &new_key(&bill_user, T0 + 3),
        &policy(10),
        "$argon2id$upgraded",
    )
    .await
    .unwrap();
    let third = run(Source::Jsonl, T0 + 4, false);
    let outcomes = store
        .import_users(&third, &[import_row("line 1", "Bill", BCRYPT_A, None)])
        .await
        .unwrap();
    assert_eq!(
        outcomes[0],
        UserOutcome::Present {
            id: bill,
            hash_updated: false
        }
    );
    assert_eq!(
        store.find_login("bill").await.unwrap().unwrap().1,
        StoredHash::native("$argon2id$upgraded")
    );

    // MySQL rows: known by their source id, which is kept as the account's id.
    let max_id = Uuid::new_v4();
    let mysql = run(Source::Mysql, T0 + 5, false);
    let rows = [
        import_row(
            &format!("user {max_id}"),
            "Max",
            SPRING,
            Some(&max_id.to_string()),
        ),
        import_row("user b", "bill", SPRING, Some("b")),
    ];
    let outcomes = store.import_users(&mysql, &rows).await.unwrap();
    assert_eq!(outcomes[0], UserOutcome::Imported { id: max_id });
    assert_eq!(outcomes[1], UserOutcome::Refused(Refusal::Taken("Bill".into())));
    let again = run(Source::Mysql, T0 + 6, false);
    let renamed = [import_row(
        &format!("user {max_id}"),
        "Maxim",
        SPRING,
        Some(&max_id.to_string()),
    )];
    assert_eq!(
        store.import_users(&again, &renamed).await.unwrap(),
        vec![UserOutcome::Present {
            id: max_id,
            hash_updated: false
        }]
    );
    assert_eq!(
        store
            .find_account_by_id(max_id)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        "Max"
    );
}

async fn imported_keys(store: &dyn Store) {
    use crate::domain::import::Source;
    use crate::domain::LegacyKey;
    use crate::store::{ImportKey, KeyOutcome, UserOutcome};
    let owner = Uuid::new_v4();
    let first = run(Source::Mysql, T0, false);
    let outcomes = store
        .import_users(
            &first,
            &[import_row("user o", "Olga", SPRING, Some(&owner.to_string()))],
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![UserOutcome::Imported { id: owner }]);
    let legacy = |user: Uuid| LegacyKey {
        user_id: user,
        key_id: Uuid::new_v4(),
    };
    let key = |pair: &LegacyKey, expires: i64| ImportKey {
        at: format!("key of {}", pair.user_id),
        source_user_id: pair.user_id.to_string(),
        digest: pair.digest(),
        created: ts(T0 - 10 * DAY),
        expires: ts(expires),
    };
    let (k1, k2, stranger) = (legacy(owner), legacy(owner), legacy(Uuid::new_v4()));
    let outcomes = store
        .import_keys(
            &first,
            &[
                key(&k1, T0 + 20 * DAY),
                key(&k1, T0 + 20 * DAY),
                key(&stranger, T0 + 20 * DAY),
                key(&k2, T0 + DAY),
            ],
            &HashMap::new(),
        )
        .await
        .unwrap();
    let KeyOutcome::Imported { user_id, key_id } = outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(user_id, owner);
    assert_eq!(&outcomes[1..3], &[KeyOutcome::Present, KeyOutcome::NoOwner]);
    let (record, found) = store.find_key(&k1.digest()).await.unwrap().unwrap();
    assert_eq!((record.id, found.id), (key_id, owner));
    assert_eq!(record.deadline, Some(ts(T0 + 20 * DAY)));
    assert_eq!(record.created, ts(T0 - 10 * DAY));
    assert_eq!(record.created_ip, None);
    // Its idleness counts from the import: nobody knows when it was last used at the source.
    assert_eq!(record.last_used, Some(first.started));
    assert_eq!(live_ids(store, owner).await.len(), 2);

    // Past its own deadline, housekeeping marks a key expired at that moment, whatever the
    // service's lifetime.
    assert_eq!(store.expire_keys(&policy(10), ts(T0 + 2 * DAY)).await.unwrap(), 1);
    let (k2_record, _) = store.find_key(&k2.digest()).await.unwrap().unwrap();
    assert_eq!(k2_record.revoked, Some((ts(T0 + DAY), RevocationReason::Expired)));

    // A later run that sees k1 again: nothing new, and nothing revoked.
    let second = run(Source::Mysql, T0 + 3 * DAY, false);
    assert_eq!(
        store
            .import_keys(&second, &[key(&k1, T0 + 20 * DAY)], &HashMap::new())
            .await
            .unwrap(),
        vec![KeyOutcome::Present]
    );
    assert!(store
        .revoke_keys_gone_from_source(&second, ts(T0 + 3 * DAY), 100)
        .await
        .unwrap()
        .is_empty());
    // A run that no longer finds it (signed out at the source): revoked here, on the feed.
    let head = store.revocation_feed_head().await.unwrap();
    let third = run(Source::Mysql, T0 + 4 * DAY, false);
    let dry = run(Source::Mysql, T0 + 4 * DAY, true);
    assert_eq!(
        store
            .revoke_keys_gone_from_source(&dry, ts(T0 + 4 * DAY), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .find_key(&k1.digest())
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked
            .is_none(),
        "dry run"
    );
    let gone = store
        .revoke_keys_gone_from_source(&third, ts(T0 + 4 * DAY), 100)
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].0, gone[0].1.id), (owner, key_id));
    assert_eq!(gone[0].1.reason, RevocationReason::SignedOut);
    let feed = store.feed_after(head, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].key_id, feed[0].reason.as_str()), (key_id, "signed_out"));
    // Never brought back, even once pruned here.
    store
        .prune(&PruneCutoffs {
            feed: ts(0),
            throttles: ts(0),
            known_networks: ts(0),
            revoked_keys: ts(T0 + 5 * DAY),
            shared_activity: ts(0),
            events: ts(0),
            tickets: ts(0),
        })
        .await
        .unwrap();
    assert!(store.find_key(&k1.digest()).await.unwrap().is_none(), "pruned");
    let fourth = run(Source::Mysql, T0 + 6 * DAY, false);
    assert_eq!(
        store
            .import_keys(&fourth, &[key(&k1, T0 + 20 * DAY)], &HashMap::new())
            .await
            .unwrap(),
        vec![KeyOutcome::Present]
    );
    assert!(store.find_key(&k1.digest()).await.unwrap().is_none());
    // Nor is a key of a suspended owner imported.
    let suspension = SuspensionRequest::new("cheating", None, ts(T0 + 6 * DAY))
        .unwrap()
        .at(owner, ts(T0 + 6 * DAY), None);
    store.suspend(&suspension, &test_event()).await.unwrap();
    let fifth = run(Source::Mysql, T0 + 7 * DAY, false);
    let k3 = legacy(owner);
    assert_eq!(
        store
            .import_keys(&fifth, &[key(&k3, T0 + 20 * DAY)], &HashMap::new())
            .await
            .unwrap(),
        vec![KeyOutcome::OwnerSuspended]
    );
}
