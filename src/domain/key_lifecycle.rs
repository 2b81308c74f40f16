//! The life of an access key: when it expires, why it was revoked, which key a new
//! sign-in pushes out.

use std::time::Duration;

use serde::Serialize;

use super::{Role, Timestamp};

/// Why a key stopped working. Stored with every revocation and shown to the key's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    SignedOut,
    Expired,
    IpChanges,
    RequestFlood,
    Evicted,
    PasswordChanged,
    Admin,
    Suspended,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 8] = [
        Self::SignedOut,
        Self::Expired,
        Self::IpChanges,
        Self::RequestFlood,
        Self::Evicted,
        Self::PasswordChanged,
        Self::Admin,
        Self::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedOut => "signed_out",
            Self::Expired => "expired",
            Self::IpChanges => "ip_changes",
            Self::RequestFlood => "request_flood",
            Self::Evicted => "evicted",
            Self::PasswordChanged => "password_changed",
            Self::Admin => "admin",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The `[keys]` settings as rules.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    /// A key expires this long after its creation.
    pub lifetime: Duration,
    /// A key unused this long expires; `None` turns the rule off.
    pub idle_timeout: Option<Duration>,
    /// Live keys a user may hold.
    pub max_per_user: usize,
    /// What signing in past `max_per_user` does.
    pub on_limit: OnLimit,
}

/// `keys.on_limit`: what a sign-in does when the user already holds `max_per_user` live keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    /// Revoke the least recently used key (reason `evicted`).
    #[default]
    Evict,
    /// Refuse the sign-in (409 `Too many active keys`), as the original Kill Bill 2 back end did.
    Refuse,
}

/// Whether a key may be used at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    Live,
    /// Past its deadline since `at` (the moment it expired, not the moment it was noticed).
    Expired {
        at: Timestamp,
    },
}

impl KeyPolicy {
    /// The earlier of the lifetime and idle deadlines (API.md's `Key.expires`). A key with a
    /// `deadline` of its own (one imported from the original back end, `admin import
    /// --keep-keys`) has that instead of the lifetime: it works until its original expiry, which
    /// the import capped at `keys.lifetime` after the import; the idle timeout applies to it as
    /// to any key.
    pub fn expires_at(
        &self,
        created: Timestamp,
        last_used: Option<Timestamp>,
        deadline: Option<Timestamp>,
    ) -> Timestamp {
        let by_lifetime = deadline.unwrap_or_else(|| created.plus(self.lifetime));
        match self.idle_timeout {
            Some(idle) => by_lifetime.min(last_used.unwrap_or(created).max(created).plus(idle)),
            None => by_lifetime,
        }
    }

    pub fn status(
        &self,
        created: Timestamp,
        last_used: Option<Timestamp>,
        deadline: Option<Timestamp>,
        now: Timestamp,
    ) -> KeyStatus {
        let at = self.expires_at(created, last_used, deadline);
        if now >= at {
            KeyStatus::Expired { at }
        } else {
            KeyStatus::Live
        }
    }

    /// [`KeyPolicy::status`] of a key whose owner has `role`: a service key never expires by
    /// lifetime or idleness ([`Role::keys_last_until_revoked`]).
    pub fn status_for(
        &self,
        role: Role,
        created: Timestamp,
        last_used: Option<Timestamp>,
        deadline: Option<Timestamp>,
        now: Timestamp,
    ) -> KeyStatus {
        if role.keys_last_until_revoked() {
            KeyStatus::Live
        } else {
            self.status(created, last_used, deadline, now)
        }
    }
}

/// What the eviction rule needs to know of a live key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUse<Id> {
    pub id: Id,
    pub created: Timestamp,
    pub last_used: Option<Timestamp>,
    /// The key's own deadline, if it has one (an imported key).
    pub deadline: Option<Timestamp>,
}

/// The keys to revoke (reason `evicted`) so that, once one more key is issued, the user holds
/// at most `max_per_user` live keys: the least recently used first, a never-used key counting
/// as used when it was created; ties go to the older key.
pub fn keys_to_evict<Id: Copy>(live: &[KeyUse<Id>], max_per_user: usize) -> Vec<Id> {
    let keep = max_per_user.saturating_sub(1);
    if live.len() <= keep {
        return Vec::new();
    }
    let mut by_use: Vec<&KeyUse<Id>> = live.iter().collect();
    by_use.sort_by_key(|k| (k.last_used.unwrap_or(k.created).max(k.created), k.created));
    by_use[..live.len() - keep].iter().map(|k| k.id).collect()
}

/// What issuing one more key does to a user's live keys: those past their deadline are marked
/// expired (each at its deadline), and the least recently used of the others are evicted so
/// that at most `max_per_user` stay live with the new one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IssuePlan<Id> {
    pub expired: Vec<(Id, Timestamp)>,
    pub evicted: Vec<Id>,
    /// `keys.on_limit = "refuse"` and the user holds `max_per_user` live keys: no key is issued.
    pub refused: bool,
}

impl KeyPolicy {
    /// The [`IssuePlan`] for a key issued at `now` next to the user's `live` keys.
    pub fn plan_issue<Id: Copy>(&self, live: &[KeyUse<Id>], now: Timestamp) -> IssuePlan<Id> {
        let mut plan = IssuePlan {
            expired: Vec::new(),
            evicted: Vec::new(),
            refused: false,
        };
        let mut still = Vec::with_capacity(live.len());
        for key in live {
            match self.status(key.created, key.last_used, key.deadline, now) {
                KeyStatus::Live => still.push(*key),
                KeyStatus::Expired { at } => plan.expired.push((key.id, at)),
            }
        }
        match self.on_limit {
            OnLimit::Evict => plan.evicted = keys_to_evict(&still, self.max_per_user),
            OnLimit::Refuse => plan.refused = still.len() >= self.max_per_user,
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn issuing_marks_the_expired_and_evicts_the_least_recently_used() {
        let policy = KeyPolicy {
            lifetime: 180 * DAY,
            idle_timeout: None,
            max_per_user: 2,
            on_limit: OnLimit::Evict,
        };
        let day = DAY.as_millis() as i64;
        let live = [
            KeyUse {
                id: 1,
                created: t(0),
                last_used: None,
                deadline: None,
            }, // past its lifetime
            KeyUse {
                id: 2,
                created: t(100 * day),
                last_used: Some(t(150 * day)),
                deadline: None,
            },
            KeyUse {
                id: 3,
                created: t(120 * day),
                last_used: Some(t(190 * day)),
                deadline: None,
            },
        ];
        let plan = policy.plan_issue(&live, t(200 * day));
        assert_eq!(plan.expired, vec![(1, t(180 * day))]);
        assert_eq!(
            plan.evicted,
            vec![2],
            "one slot for the new key: the least recently used goes"
        );
        assert_eq!(policy.plan_issue(&live[2..], t(200 * day)), IssuePlan::default());
        // Refusing instead: the expired one is still marked, nothing is evicted, and the key
        // is refused while the others fill the room.
        let refuse = KeyPolicy {
            on_limit: OnLimit::Refuse,
            ..policy
        };
        let plan = refuse.plan_issue(&live, t(200 * day));
        assert_eq!(
            (plan.expired.len(), plan.evicted.len(), plan.refused),
            (1, 0, true)
        );
        assert!(!refuse.plan_issue(&live[2..], t(200 * day)).refused);
    }

    #[test]
    fn expires_after_its_lifetime() {
        let policy = KeyPolicy {
            lifetime: 180 * DAY,
            idle_timeout: None,
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        };
        let created = t(1_000);
        let deadline = created.plus(180 * DAY);
        assert_eq!(
            policy.status(created, None, None, deadline.minus(Duration::from_millis(1))),
            KeyStatus::Live
        );
        assert_eq!(
            policy.status(created, Some(deadline), None, deadline),
            KeyStatus::Expired { at: deadline }
        );
    }

    #[test]
    fn idle_timeout_counts_from_last_use() {
        let policy = KeyPolicy {
            lifetime: 180 * DAY,
            idle_timeout: Some(30 * DAY),
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        };
        let created = t(0);
        assert_eq!(policy.expires_at(created, None, None), created.plus(30 * DAY));
        let used = created.plus(100 * DAY);
        assert_eq!(policy.expires_at(created, Some(used), None), used.plus(30 * DAY));
        // Never later than the lifetime.
        let late = created.plus(170 * DAY);
        assert_eq!(
            policy.expires_at(created, Some(late), None),
            created.plus(180 * DAY)
        );
    }

    #[test]
    fn an_imported_key_expires_at_its_own_deadline_and_when_idle() {
        let policy = KeyPolicy {
            lifetime: 180 * DAY,
            idle_timeout: None,
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        };
        // Created at the original back end long ago: its own deadline decides, not our lifetime
        // counted from its creation.
        let created = t(0);
        let original = created.plus(400 * DAY);
        assert_eq!(policy.expires_at(created, None, Some(original)), original);
        assert_eq!(
            policy.status(
                created,
                None,
                Some(original),
                original.minus(Duration::from_millis(1))
            ),
            KeyStatus::Live
        );
        assert_eq!(
            policy.status(created, None, Some(original), original),
            KeyStatus::Expired { at: original }
        );
        // The idle timeout applies as to any key.
        let idle = KeyPolicy {
            idle_timeout: Some(30 * DAY),
            ..policy.clone()
        };
        let used = created.plus(300 * DAY);
        assert_eq!(
            idle.expires_at(created, Some(used), Some(original)),
            used.plus(30 * DAY)
        );
        // Eviction and expiry at issue see the deadline too.
        let live = [KeyUse {
            id: 7,
            created,
            last_used: Some(created.plus(DAY)),
            deadline: Some(original),
        }];
        assert!(policy.plan_issue(&live, original.minus(DAY)).expired.is_empty());
        assert_eq!(
            policy.plan_issue(&live, original.plus(DAY)).expired,
            vec![(7, original)]
        );
    }

    #[test]
    fn service_keys_never_expire() {
        let policy = KeyPolicy {
            lifetime: 180 * DAY,
            idle_timeout: Some(DAY),
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        };
        let created = t(0);
        let much_later = created.plus(10 * 365 * DAY);
        assert_eq!(
            policy.status_for(Role::Service, created, None, None, much_later),
            KeyStatus::Live
        );
        for role in [Role::User, Role::Admin] {
            assert_eq!(
                policy.status_for(role, created, None, None, much_later),
                KeyStatus::Expired {
                    at: created.plus(DAY)
                },
                "{role:?}"
            );
            assert_eq!(
                policy.status_for(role, created, Some(created), None, created.plus(DAY / 2)),
                KeyStatus::Live
            );
        }
    }

    #[test]
    fn reasons_round_trip() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let keys = [
            KeyUse {
                id: 1,
                created: t(10),
                last_used: Some(t(500)),
                deadline: None,
            },
            KeyUse {
                id: 2,
                created: t(20),
                last_used: None,
                deadline: None,
            },
            KeyUse {
                id: 3,
                created: t(30),
                last_used: Some(t(40)),
                deadline: None,
            },
        ];
        assert_eq!(keys_to_evict(&keys, 4), Vec::<i32>::new());
        assert_eq!(keys_to_evict(&keys, 3), vec![2]);
        assert_eq!(keys_to_evict(&keys, 2), vec![2, 3]);
        assert_eq!(keys_to_evict(&keys, 1), vec![2, 3, 1]);
    }

    proptest! {
        #[test]
        fn eviction_leaves_room_for_exactly_one_more(
            uses in proptest::collection::vec((0i64..1000, proptest::option::of(0i64..2000)), 0..30),
            max in 1usize..15,
        ) {
            let live: Vec<KeyUse<usize>> = uses.iter().enumerate()
                .map(|(i, (c, u))| KeyUse { id: i, created: t(*c), last_used: u.map(t), deadline: None })
                .collect();
            let evicted = keys_to_evict(&live, max);
            prop_assert_eq!(live.len() - evicted.len(), live.len().min(max - 1));
            // Every kept key was used no earlier than every evicted one.
            let when = |k: &KeyUse<usize>| k.last_used.unwrap_or(k.created).max(k.created);
            for e in &evicted {
                for k in live.iter().filter(|k| !evicted.contains(&k.id)) {
                    prop_assert!(when(&live[*e]) <= when(k));
                }
            }
        }
    }
}
