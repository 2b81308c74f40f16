//! Throttles: counted attempts, exact limits, forgiveness, known networks.

use super::*;

pub(super) fn throttle_policy() -> ThrottlePolicy {
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

pub(super) fn counter(scope: Scope, subject: &str) -> Counter {
    Counter {
        scope,
        subject: subject.into(),
    }
}

pub(super) async fn throttles(store: &dyn Store) {
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
