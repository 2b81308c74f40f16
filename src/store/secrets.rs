//! Secrets kept in the database for every instance and every start: the pepper's verifier
//! (`startup::guard_pepper`, on both stores) and, on PostgreSQL without a pepper, the key of
//! name digests.

use async_trait::async_trait;

use super::StoreResult;

#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret called `name`, kept in the database for every instance: stored as `candidate`
    /// if there is none yet (the first instance to ask decides), else the stored one.
    async fn service_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// The first to insert wins; everyone reads what won.
pub(super) const KEEP_FIRST: &str =
    "INSERT INTO service_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

pub(super) const READ: &str = "SELECT value FROM service_secrets WHERE name = $1";
