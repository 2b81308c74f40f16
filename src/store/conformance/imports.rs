//! Imports: accounts and the original back end's keys.

use std::collections::HashMap;

use super::*;

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

pub(super) async fn imports(store: &dyn Store) {
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
    let events = store.list_events(Some(bill), None, 10).await.unwrap();
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

pub(super) async fn imported_keys(store: &dyn Store) {
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
