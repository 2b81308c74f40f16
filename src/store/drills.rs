//! Fault drills, for tests: not part of the service's contract ([`super::Store`]). Only the
//! SQLite store has one, reached through `startup::Application::fault_drills`.

use async_trait::async_trait;

use super::StoreResult;

#[async_trait]
pub trait FaultDrills: Send + Sync {
    /// Caps the database at `pages` pages (`None` lifts the cap), so that writes needing more
    /// space fail as on a full disk. Kept across reconnections; not persistent. A cap below the
    /// current size acts as the current size.
    async fn set_size_limit(&self, pages: Option<u64>) -> StoreResult<()>;
}
