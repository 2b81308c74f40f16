//! Join tickets (API.md, "Game servers and operators"): a player's client asks for a ticket with
//! its key and hands it to the game server it joins, which redeems it once. A ticket is 32 bytes
//! from the OS CSPRNG, sent as base64url without padding (43 characters); only its SHA-256
//! [`TicketDigest`] is stored. It is honoured within `tickets.lifetime`, once, and only while the
//! key that asked for it is live ([`honoured`]).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{KeyPolicy, KeyStatus, Role, Timestamp};

/// Bytes of entropy in a ticket.
pub const TICKET_BYTES: usize = 32;
/// Characters of a ticket in base64url without padding.
pub const TICKET_CHARS: usize = 43;
/// The longest `tickets.lifetime` accepted: a ticket is a hand-over between a client and the game
/// server it is joining, not a credential to keep.
pub const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(600);

/// A ticket in the clear: exists only while the request that made it is answered. Its `Debug` is
/// redacted.
pub struct Ticket([u8; TICKET_BYTES]);

/// SHA-256 of a ticket's 32 bytes: what storage knows a ticket by. 256 bits of entropy make an
/// unsalted fast digest enough (as for keys).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketDigest(pub [u8; 32]);

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket([REDACTED])")
    }
}

impl std::fmt::Debug for TicketDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TicketDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl Ticket {
    /// A fresh ticket from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TICKET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses a ticket as a client sends it: exactly 43 characters of base64url without padding
    /// (the canonical encoding of 32 bytes: the two bits left over in the last character must be
    /// zero). Anything else is `None`, answered like an unknown ticket.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != TICKET_CHARS {
            return None;
        }
        let mut bytes = [0u8; TICKET_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut bytes) {
            Ok(TICKET_BYTES) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The ticket as the client receives it.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn digest(&self) -> TicketDigest {
        TicketDigest(Sha256::digest(self.0).into())
    }
}

/// The `[tickets]` settings as rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketPolicy {
    /// A ticket is honoured for this long after it was asked for.
    pub lifetime: Duration,
}

impl TicketPolicy {
    /// When a ticket asked for at `asked` stops being honoured.
    pub fn expires(&self, asked: Timestamp) -> Timestamp {
        asked.plus(self.lifetime)
    }
}

/// The key that asked for a ticket, as storage knows it when the ticket is redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskingKey {
    /// Its owner's role.
    pub role: Role,
    pub created: Timestamp,
    /// Its last use as written (usage is written in batches, so it may lag).
    pub last_used: Option<Timestamp>,
    /// Its own deadline, if it has one (an imported key).
    pub deadline: Option<Timestamp>,
    pub revoked: bool,
}

/// Whether a ticket that was just taken for redemption (unredeemed and unexpired, now spent
/// whatever the answer) is honoured at `now`: only while the key that asked for it at `asked` is
/// live, that is not revoked and not past its deadline by `keys.lifetime` or `keys.idle_timeout`
/// ([`KeyPolicy::status_for`]). Asking for the ticket was a use of the key, at `asked`, which
/// storage may not have yet (usage is written in batches): it counts as the key's latest use at
/// least, so a key in use is never judged idle here.
pub fn honoured(policy: &KeyPolicy, key: &AskingKey, asked: Timestamp, now: Timestamp) -> bool {
    if key.revoked {
        return false;
    }
    let last_used = Some(key.last_used.map_or(asked, |t| t.max(asked)));
    policy.status_for(key.role, key.created, last_used, key.deadline, now) == KeyStatus::Live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OnLimit;
    use proptest::prelude::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn tickets_are_43_url_safe_characters_and_round_trip() {
        for _ in 0..100 {
            let ticket = Ticket::generate();
            let text = ticket.encode();
            assert_eq!(text.len(), TICKET_CHARS);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            assert_eq!(Ticket::parse(&text).unwrap().digest(), ticket.digest());
        }
        assert_ne!(Ticket::generate().digest(), Ticket::generate().digest());
    }

    #[test]
    fn anything_but_a_canonical_ticket_is_refused() {
        let text = Ticket::generate().encode();
        assert!(Ticket::parse(&text[..42]).is_none());
        assert!(Ticket::parse(&format!("{text}=")).is_none());
        assert!(Ticket::parse(&format!("{text}A")).is_none());
        assert!(Ticket::parse("").is_none());
        assert!(Ticket::parse(&"!".repeat(43)).is_none());
        assert!(Ticket::parse(&format!("{}a", "é".repeat(21))).is_none());
        // Standard base64's alphabet is not base64url's.
        assert!(Ticket::parse(&format!("+{}", &text[1..])).is_none());
        assert!(Ticket::parse(&format!("/{}", &text[1..])).is_none());
        // The last character carries two unused bits: only one spelling of each ticket.
        let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert!(zero.ends_with('A'));
        assert!(Ticket::parse(&zero).is_some());
        assert!(Ticket::parse(&format!("{}B", &zero[..42])).is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let ticket = Ticket::generate();
        assert!(!format!("{ticket:?}").contains(&ticket.encode()));
    }

    #[test]
    fn expiry_is_the_lifetime_after_asking() {
        let policy = TicketPolicy {
            lifetime: Duration::from_secs(30),
        };
        assert_eq!(policy.expires(t(1_000)), t(31_000));
    }

    fn key_policy(idle: Option<Duration>) -> KeyPolicy {
        KeyPolicy {
            lifetime: 180 * DAY,
            idle_timeout: idle,
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        }
    }

    fn key(created: i64, last_used: Option<i64>) -> AskingKey {
        AskingKey {
            role: Role::User,
            created: t(created),
            last_used: last_used.map(t),
            deadline: None,
            revoked: false,
        }
    }

    #[test]
    fn only_a_live_key_makes_a_ticket_honoured() {
        let policy = key_policy(None);
        let day = DAY.as_millis() as i64;
        let live = key(0, Some(day));
        assert!(honoured(&policy, &live, t(2 * day), t(2 * day + 5)));
        let revoked = AskingKey {
            revoked: true,
            ..live
        };
        assert!(!honoured(&policy, &revoked, t(2 * day), t(2 * day + 5)));
        // Past its lifetime between asking and redeeming.
        assert!(honoured(&policy, &live, t(180 * day - 10), t(180 * day - 1)));
        assert!(!honoured(&policy, &live, t(180 * day - 10), t(180 * day)));
        // A service account's key never expires (it never asks for tickets, but the rule is one).
        let service = AskingKey {
            role: Role::Service,
            ..live
        };
        assert!(honoured(&policy, &service, t(900 * day), t(900 * day)));
    }

    #[test]
    fn asking_for_the_ticket_counts_as_a_use_of_the_key() {
        let hour = 3_600_000;
        let policy = key_policy(Some(Duration::from_secs(3600)));
        // Last use written two hours ago, but the key asked for the ticket a second ago: its
        // usage has not been written yet, and it is not idle.
        let stale = key(0, Some(hour));
        assert!(honoured(&policy, &stale, t(3 * hour - 1_000), t(3 * hour)));
        // Idle for an hour since asking: expired.
        assert!(!honoured(&policy, &stale, t(3 * hour), t(4 * hour)));
        // A written use later than the asking counts too.
        let fresh = key(0, Some(3 * hour + 10));
        assert!(honoured(&policy, &fresh, t(3 * hour), t(4 * hour)));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(text in "\\PC{0,64}") {
            let _ = Ticket::parse(&text);
        }

        #[test]
        fn any_32_bytes_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let ticket = Ticket(bytes);
            let parsed = Ticket::parse(&ticket.encode()).unwrap();
            prop_assert_eq!(parsed.0, bytes);
        }
    }
}
