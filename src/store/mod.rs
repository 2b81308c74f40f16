//! Storage boundary: everything the service keeps, behind one contract per concern.
//!
//! Each concern is a trait of a few methods in a file of its own here ([`Accounts`], [`Keys`],
//! [`Activity`], [`Throttles`], [`RevocationFeed`], [`Tickets`], [`Suspensions`], [`Events`],
//! [`Imports`], [`ResetCodes`], [`Secrets`], [`Health`], [`Housekeeping`]), with the SQL that is
//! the same in both dialects, written once with numbered placeholders (`$1`: PostgreSQL's own,
//! and bound by number on SQLite too). The Rust around that SQL is written once too, in `sql/`,
//! compiled in each dialect (see `sql/mod.rs`); `sqlite/` and `postgres/` hold what differs
//! between them (locks, batching), each in a file named after its concern, saying why.
//!
//! The handlers and the rules see only [`Store`], every concern at once: `sqlite` fills it for
//! one machine, and `postgres` for several instances sharing one database.

mod accounts;
mod activity;
pub mod drills;
mod error;
mod events;
mod feed;
mod health;
mod housekeeping;
mod imports;
mod keys;
pub mod postgres;
mod reset_codes;
mod rows;
mod secrets;
pub mod sqlite;
mod suspensions;
mod throttles;
mod tickets;

#[cfg(test)]
mod conformance;

pub use accounts::Accounts;
pub use activity::Activity;
pub use error::{BoxError, StoreError, StoreResult};
pub use events::Events;
pub use feed::RevocationFeed;
pub use health::Health;
pub use housekeeping::{Housekeeping, PruneCutoffs};
pub use imports::{ImportKey, Imports, KeyOutcome, UserOutcome};
pub use keys::{Cause, KeyRecord, KeyUsage, Keys, LastUse, NewKey, RevokedKey, StoredUse, VerifiedHash};
pub use reset_codes::{Redeemed, ResetCodes};
pub use secrets::Secrets;
pub use suspensions::Suspensions;
pub use throttles::{Admission, CountedAttempt, Throttles};
pub use tickets::{NewTicket, TakenTicket, Tickets};

/// The reason of the revocation stream for the keys of a deleted account (not a key's own reason:
/// the key is gone with the account).
pub const ACCOUNT_DELETED: &str = "account_deleted";

/// Everything the service keeps: every concern's contract. Implemented for any type that
/// implements them all; the service holds it as `Arc<dyn Store>`, and calls any concern's
/// methods on it.
pub trait Store:
    Health
    + Secrets
    + Accounts
    + Keys
    + Activity
    + Throttles
    + RevocationFeed
    + Tickets
    + Suspensions
    + Events
    + Imports
    + ResetCodes
    + Housekeeping
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Health
        + Secrets
        + Accounts
        + Keys
        + Activity
        + Throttles
        + RevocationFeed
        + Tickets
        + Suspensions
        + Events
        + Imports
        + ResetCodes
        + Housekeeping
        + Send
        + Sync
        + 'static
{
}
