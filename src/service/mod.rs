//! The application: what each use case does, in terms of the rules (`domain`), storage
//! (`store`) and the hashing pool. Knows nothing of HTTP.

pub mod accounts;
mod error;
pub mod hasher;
pub mod import;
pub mod keys;
pub mod revocations;
pub mod throttle;
pub mod tickets;

pub use accounts::AccountService;
pub use error::ServiceError;
pub use hasher::Hasher;
pub use keys::{Client, KeyEntry, KeyService};
pub use revocations::RevocationHub;
