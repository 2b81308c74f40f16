//! Accounts: names, sign-up and lookups, password changes and deletion, service accounts.

use super::*;

pub(super) async fn users_and_names(store: &dyn Store) {
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

pub(super) async fn change_password_and_delete_user(store: &dyn Store) {
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

/// Service accounts: no password hash (so no sign-in), found by administration, and
/// their keys never expire by housekeeping.
pub(super) async fn service_accounts(store: &dyn Store) {
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
