//! The rules' tests; the sharing tests are in `sharing.rs`, and use the helpers here.
use super::*;
use proptest::prelude::*;

pub(super) fn policy() -> AnomalyPolicy {
    AnomalyPolicy {
        window: Duration::from_secs(86_400),
        max_networks: 3,
        ipv4_prefix: 24,
        ipv6_prefix: 64,
        flood_window: Duration::from_secs(3600),
        flood_max_requests: 1_000_000,
        per_second: 1_000_000.0,
        burst: 1_000_000.0,
        shared: true,
    }
}

pub(super) fn net(p: &AnomalyPolicy, s: &str) -> IpNet {
    p.network_of(s.parse().unwrap())
}

pub(super) fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A store shared by instances, as the real ones behave: deltas added, totals returned.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) counts: std::collections::BTreeMap<i64, u64>,
    served: std::collections::BTreeMap<i64, u64>,
    networks: std::collections::BTreeMap<IpNet, i64>,
}

impl Shared {
    pub(super) fn share(
        &mut self,
        a: &mut KeyActivity,
        p: &AnomalyPolicy,
        now: Timestamp,
    ) -> Option<RevocationReason> {
        let delta = a.take_unshared();
        for (w, n) in delta.counts {
            *self.counts.entry(w).or_default() += n;
        }
        for (net, seen) in delta.networks {
            let s = self.networks.entry(net).or_default();
            *s = (*s).max(seen);
        }
        for (w, n) in delta.served {
            *self.served.entry(w).or_default() += n;
        }
        let totals = SharedActivity {
            counts: self.counts.iter().map(|(w, n)| (*w, *n)).collect(),
            served: self.served.iter().map(|(w, n)| (*w, *n)).collect(),
            networks: self.networks.iter().map(|(n, s)| (*n, *s)).collect(),
        };
        a.absorb(p, &totals, now)
    }
}

#[test]
fn networks_are_prefixes() {
    let p = policy();
    assert_eq!(net(&p, "203.0.113.77").to_string(), "203.0.113.0/24");
    assert_eq!(net(&p, "::ffff:203.0.113.77").to_string(), "203.0.113.0/24");
    assert_eq!(net(&p, "2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
}

#[test]
fn a_network_is_known_while_it_counts() {
    let p = policy();
    let day = 86_400_000;
    let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    assert!(a.knows_network(&p, net(&p, "10.0.0.200"), t(1)));
    assert!(!a.knows_network(&p, net(&p, "10.0.1.1"), t(1)));
    a.observe(&p, net(&p, "10.0.1.1"), t(2));
    assert!(a.knows_network(&p, net(&p, "10.0.1.1"), t(3)));
    // A whole window later it no longer counts, so it is news again.
    assert!(!a.knows_network(&p, net(&p, "10.0.1.1"), t(2 + day)));
}

#[test]
fn service_keys_are_exempt_from_networks_floods_and_the_rate_limit() {
    let p = AnomalyPolicy {
        max_networks: 2,
        flood_max_requests: 10,
        per_second: 1.0,
        burst: 2.0,
        ..policy()
    };
    let mut service = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    let mut player = service.clone();
    let mut refused = None;
    for i in 0..200u8 {
        let n = net(&p, &format!("10.{i}.0.1"));
        assert_eq!(
            service.observe_for(&p, Role::Service, n, t(i64::from(i))),
            Verdict::Allow,
            "request {i}"
        );
        if refused.is_none() {
            let verdict = player.observe_for(&p, Role::User, n, t(i64::from(i)));
            if verdict != Verdict::Allow {
                refused = Some(verdict);
            }
        }
    }
    assert_eq!(refused, Some(Verdict::Revoke(RevocationReason::IpChanges)));
    assert!(!service.has_unshared(), "nothing counted for a service key");
    assert_eq!(service, KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0)));
}

#[test]
fn the_fourth_network_revokes_with_three_allowed() {
    let p = policy();
    let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    assert_eq!(a.observe(&p, net(&p, "10.0.1.1"), t(1)), Verdict::Allow);
    assert_eq!(a.observe(&p, net(&p, "10.0.2.1"), t(2)), Verdict::Allow);
    assert_eq!(a.observe(&p, net(&p, "10.0.0.9"), t(3)), Verdict::Allow);
    assert_eq!(
        a.observe(&p, net(&p, "10.0.3.1"), t(4)),
        Verdict::Revoke(RevocationReason::IpChanges)
    );
}

#[test]
fn many_addresses_in_one_network_are_one_network() {
    let p = policy();
    let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    for i in 0..=255 {
        assert_eq!(
            a.observe(&p, net(&p, &format!("10.0.7.{i}")), t(i)),
            Verdict::Allow
        );
    }
    assert_eq!(a.networks_in_window(&p, t(300)), 2);
}

#[test]
fn networks_age_out_of_the_window() {
    let p = policy();
    let day = 86_400_000;
    let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    a.observe(&p, net(&p, "10.0.1.1"), t(1));
    a.observe(&p, net(&p, "10.0.2.1"), t(2));
    // A day later the first three no longer count.
    for (i, ip) in ["10.0.3.1", "10.0.4.1", "10.0.5.1"].iter().enumerate() {
        assert_eq!(a.observe(&p, net(&p, ip), t(day + 10 + i as i64)), Verdict::Allow);
    }
    assert_eq!(
        a.observe(&p, net(&p, "10.0.6.1"), t(day + 20)),
        Verdict::Revoke(RevocationReason::IpChanges)
    );
}

#[test]
fn a_flood_revokes_past_its_threshold() {
    let mut p = policy();
    p.flood_max_requests = 10;
    let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    let n = net(&p, "10.0.0.1");
    for i in 0..10 {
        assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow, "request {i}");
    }
    assert_eq!(
        a.observe(&p, n, t(11)),
        Verdict::Revoke(RevocationReason::RequestFlood)
    );
}

#[test]
fn the_flood_window_slides() {
    let mut p = policy();
    p.flood_max_requests = 10;
    let hour = 3_600_000;
    let n = net(&p, "10.0.0.1");
    let mut a = KeyActivity::issued(Some(n), t(0));
    for i in 0..10 {
        assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow);
    }
    // Half-way through the next window half of the old requests still count (estimate).
    for i in 0..5 {
        assert_eq!(a.observe(&p, n, t(hour + hour / 2 + i)), Verdict::Allow, "{i}");
    }
    // The estimate rounds the old requests down: the 6th or 7th new one crosses the line.
    let sixth = a.observe(&p, n, t(hour + hour / 2 + 10));
    let seventh = a.observe(&p, n, t(hour + hour / 2 + 11));
    assert!(matches!(
        (sixth, seventh),
        (Verdict::Revoke(_), _) | (Verdict::Allow, Verdict::Revoke(_))
    ));
    // Two windows later everything is forgotten.
    let mut b = KeyActivity::issued(Some(n), t(0));
    for i in 0..10 {
        b.observe(&p, n, t(i));
    }
    for i in 0..10 {
        assert_eq!(b.observe(&p, n, t(2 * hour + i)), Verdict::Allow);
    }
}

#[test]
fn the_rate_limit_slows_without_revoking_and_recovers() {
    let mut p = policy();
    p.per_second = 2.0;
    p.burst = 3.0;
    let n = net(&p, "10.0.0.1");
    let mut a = KeyActivity::issued(Some(n), t(0));
    for i in 0..3 {
        assert_eq!(a.observe(&p, n, t(i)), Verdict::Allow);
    }
    assert_eq!(a.observe(&p, n, t(3)), Verdict::Slow { retry_after_secs: 1 });
    assert_eq!(a.observe(&p, n, t(4)), Verdict::Slow { retry_after_secs: 1 });
    // Half a second refills one token at 2/s.
    assert_eq!(a.observe(&p, n, t(504)), Verdict::Allow);
    p.per_second = 0.1;
    let mut slow = KeyActivity::issued(Some(n), t(0));
    for i in 0..3 {
        slow.observe(&p, n, t(i));
    }
    assert_eq!(slow.observe(&p, n, t(3)), Verdict::Slow { retry_after_secs: 10 });
}

#[test]
fn state_survives_serialisation_and_stays_small() {
    let p = policy();
    let mut a = KeyActivity::issued(Some(net(&p, "10.0.0.1")), t(0));
    a.observe(&p, net(&p, "2001:db8::1"), t(5));
    let json = serde_json::to_string(&a).unwrap();
    let back: KeyActivity = serde_json::from_str(&json).unwrap();
    assert_eq!(back.networks, a.networks);
    assert_eq!(
        (back.flood_current, back.flood_start),
        (a.flood_current, a.flood_start)
    );
    assert!(json.len() < 200, "{json}");
    // Whatever arrives, no more than max_networks + 1 networks are kept.
    for i in 0..1000 {
        a.observe(&p, net(&p, &format!("10.{}.{}.1", i / 256, i % 256)), t(10 + i));
    }
    assert!(a.networks.len() <= p.max_networks + 1);
}

proptest! {
    /// However requests and sharing interleave on two instances, the shared totals count
    /// every request exactly once, and each instance ends up knowing them all.
    #[test]
    fn shared_counts_are_exact(steps in proptest::collection::vec(0u8..4, 1..200)) {
        let mut p = policy();
        p.flood_max_requests = u64::MAX;
        p.burst = 1e9;
        let n = net(&p, "10.0.0.1");
        let mut nodes = [KeyActivity::issued(Some(n), t(0)), KeyActivity::issued(Some(n), t(0))];
        let mut store = Shared::default();
        let mut served = 0u64;
        for (i, step) in steps.iter().enumerate() {
            let now = t(i as i64);
            match step {
                0 | 1 => {
                    nodes[*step as usize].observe(&p, n, now);
                    served += 1;
                }
                2 | 3 => {
                    store.share(&mut nodes[*step as usize - 2], &p, now);
                }
                _ => unreachable!(),
            }
        }
        let end = t(steps.len() as i64);
        store.share(&mut nodes[0], &p, end);
        store.share(&mut nodes[1], &p, end);
        store.share(&mut nodes[0], &p, end);
        prop_assert_eq!(store.counts.values().sum::<u64>(), served);
        for node in &nodes {
            prop_assert_eq!(node.flood_current + node.flood_previous, served);
        }
    }

    /// For any sequence of (time, network) events, the key is revoked exactly at the first
    /// event where some window of length `window` holds more than `max_networks` networks.
    #[test]
    fn revoked_exactly_when_a_window_holds_too_many_networks(
        steps in proptest::collection::vec((0i64..40, 0u8..6), 1..60),
        max in 1usize..5,
        window in 1u64..100,
    ) {
        let mut p = policy();
        p.max_networks = max;
        p.window = Duration::from_millis(window);
        let nets: Vec<IpNet> = (0..6).map(|i| net(&p, &format!("10.0.{i}.1"))).collect();
        let mut a = KeyActivity::issued(Some(nets[0]), t(0));
        let mut events = vec![(0i64, 0u8)];
        let mut now = 0;
        let mut revoked_at = None;
        for (i, (dt, n)) in steps.iter().enumerate() {
            now += dt;
            events.push((now, *n));
            if a.observe(&p, nets[*n as usize], t(now)) == Verdict::Revoke(RevocationReason::IpChanges) {
                revoked_at = Some(i);
                break;
            }
        }
        // Brute force: distinct networks among events in (now - window, now].
        let mut expected = None;
        for i in 1..events.len() {
            let (ti, _) = events[i];
            let mut distinct: Vec<u8> = events[..=i].iter()
                .filter(|(tj, _)| ti - tj < window as i64)
                .map(|(_, n)| *n).collect();
            distinct.sort();
            distinct.dedup();
            if distinct.len() > max {
                expected = Some(i - 1);
                break;
            }
        }
        prop_assert_eq!(revoked_at, expected);
    }
}
