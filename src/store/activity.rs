//! Anomaly state shared between instances: request counts per flood window and the networks a
//! key was seen from, added to by every instance and read back as totals.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{ActivityDelta, SharedActivity, Timestamp};

#[async_trait]
pub trait Activity: Send + Sync {
    /// Adds what this instance saw of some keys to what every instance saw, as deltas (request
    /// counts per flood window are added, never read-modify-write; a network keeps its latest
    /// sighting), and returns the totals of those keys: the counts of windows starting at or
    /// after `counts_since`, and the networks seen after `networks_since`. Keys with an empty
    /// delta are only read.
    async fn share_activity(
        &self,
        deltas: &[(Uuid, ActivityDelta)],
        counts_since: Timestamp,
        networks_since: Timestamp,
    ) -> StoreResult<Vec<(Uuid, SharedActivity)>>;
}
