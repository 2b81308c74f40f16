//! Join tickets: a player's key asks for a single-use ticket (`POST /auth/tickets`), a
//! game server redeems it (`POST /auth/tickets/redeem`) and learns who the player is, without ever
//! seeing the player's password or key. The rules are `domain::ticket`'s; this is their use case.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::keys::KeyEntry;
use crate::clock::Clock;
use crate::domain::ticket::{honoured, AskingKey};
use crate::domain::{KeyPolicy, Ticket, TicketPolicy, Timestamp, User};
use crate::metrics::{Metrics, TicketOutcome};
use crate::store::{NewTicket, Store, StoreError};
use crate::telemetry::Sampled;

/// A ticket just issued: in the clear (returned once, never stored) and when it expires.
pub struct Issued {
    pub ticket: Ticket,
    pub expires: Timestamp,
}

/// A ticket redeemed: the player and the key that asked for it.
#[derive(Debug)]
pub struct Redeemed {
    pub user: User,
    pub key_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Unknown, malformed, expired, already redeemed, or its key no longer live: the caller only
    /// ever learns "Invalid ticket".
    #[error("invalid ticket")]
    Invalid,
    /// The key asking for a ticket was revoked or deleted after the request was authenticated.
    #[error("invalid access key")]
    KeyGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refused redemptions are logged at most once a second (a service decides how many there are).
static REFUSED: Sampled = Sampled::new(Duration::from_secs(1));

pub struct TicketService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The key rules, to tell whether the key that asked for a ticket is still live.
    keys: KeyPolicy,
    policy: TicketPolicy,
    metrics: Arc<Metrics>,
}

impl TicketService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: KeyPolicy,
        policy: TicketPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            clock,
            keys,
            policy,
            metrics,
        }
    }

    /// `POST /auth/tickets`: a ticket for the key of `entry` (a player's, validated by this very
    /// request, which counted as a use of the key). Only its digest is stored.
    pub async fn issue(&self, entry: &KeyEntry) -> Result<Issued, TicketError> {
        let ticket = Ticket::generate();
        let created = self.clock.now();
        let expires = self.policy.expires(created);
        let stored = self
            .store
            .create_ticket(&NewTicket {
                digest: ticket.digest(),
                key_id: entry.id,
                user_id: entry.user.id,
                created,
                expires,
            })
            .await?;
        if !stored {
            return Err(TicketError::KeyGone);
        }
        self.metrics.ticket(TicketOutcome::Issued);
        tracing::debug!(target: "security", event = "ticket_issued", user_id = %entry.user.id, key_id = %entry.id, "join ticket issued");
        Ok(Issued { ticket, expires })
    }

    /// `POST /auth/tickets/redeem` by the service account `service`: the ticket's player and key,
    /// once. Anything but a canonical ticket is refused like an unknown one (no oracle), before
    /// the database is asked.
    pub async fn redeem(&self, text: &str, service: &User) -> Result<Redeemed, TicketError> {
        let now = self.clock.now();
        let Some(ticket) = Ticket::parse(text) else {
            return Err(self.refused(service, "malformed"));
        };
        let Some(taken) = self.store.take_ticket(&ticket.digest(), now).await? else {
            return Err(self.refused(service, "unknown, expired or redeemed"));
        };
        let key = AskingKey {
            role: taken.user.role,
            created: taken.key.created,
            last_used: taken.key.last_used,
            deadline: taken.key.deadline,
            revoked: taken.key.revoked.is_some(),
        };
        if !honoured(&self.keys, &key, taken.asked, now) {
            return Err(self.refused(service, "key no longer live"));
        }
        self.metrics.ticket(TicketOutcome::Redeemed);
        tracing::info!(
            target: "security",
            event = "ticket_redeemed",
            user_id = %taken.user.id,
            key_id = %taken.key.id,
            service_id = %service.id,
            "join ticket redeemed"
        );
        Ok(Redeemed {
            user: taken.user,
            key_id: taken.key.id,
        })
    }

    fn refused(&self, service: &User, why: &'static str) -> TicketError {
        self.metrics.ticket(TicketOutcome::Refused);
        if let Some(suppressed) = REFUSED.admit() {
            tracing::info!(
                target: "security",
                event = "ticket_refused",
                service_id = %service.id,
                reason = why,
                suppressed,
                "join ticket refused"
            );
        }
        TicketError::Invalid
    }
}
