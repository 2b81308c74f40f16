//! The rules that are ours, in plain Rust: no HTTP, no SQL, no wall clock.
//!
//! Every function here takes the current time as an argument ([`Timestamp`]), so the
//! rules can be tested for any moment without sleeping.

pub mod access_key;
pub mod anomaly;
pub mod event;
pub mod import;
pub mod key_lifecycle;
pub mod legacy;
pub mod name_digest;
pub mod outage;
pub mod password;
pub mod pepper;
pub mod reset_code;
pub mod revocation_stream;
pub mod suspension;
pub mod throttle;
pub mod ticket;
pub mod time;
pub mod user;
pub mod username;

pub use access_key::{AccessKey, KeyDigest};
pub use anomaly::{ActivityDelta, AnomalyPolicy, KeyActivity, SharedActivity, Verdict};
pub use event::{Event, EventKind, NewEvent};
pub use key_lifecycle::{KeyPolicy, KeyStatus, OnLimit, RevocationReason};
pub use legacy::{HashClass, LegacyKey, StoredHash};
pub use name_digest::NameKey;
pub use password::{Password, PasswordPolicy};
pub use revocation_stream::{FeedBounds, FeedEntry};
pub use suspension::{Suspension, SuspensionError, SuspensionRequest};
pub use throttle::{wide_network, Counter, FailureLog, Scope, ThrottlePolicy};
pub use ticket::{Ticket, TicketDigest, TicketPolicy};
pub use time::Timestamp;
pub use user::{Role, User};
pub use username::Username;
