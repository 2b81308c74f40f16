//! Several instances on one database: what each saw of its keys, added up every second (API.md,
//! "Several instances").

use super::*;

impl KeyService {
    /// How long the shared anomaly rows of a key matter: the network window, or the two flood
    /// windows the request estimate reads.
    pub fn shared_activity_kept_for(&self) -> Duration {
        self.anomaly
            .window
            .max(self.anomaly.flood_window.saturating_mul(2))
    }

    /// Several instances on one database (PostgreSQL), every second: adds what this instance saw
    /// of its keys since the last time (requests per flood window, networks) to what every
    /// instance saw, takes the totals in, and revokes the keys whose united activity crosses a
    /// line (API.md: the anomaly rules and the rate limit count what all instances saw, with a
    /// lag of at most a second). Returns how many keys were shared.
    pub async fn share_activity(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let queued: Vec<Arc<KeyEntry>> = std::mem::take(&mut *lock(&self.unshared));
        let mut taken = Vec::new();
        for entry in queued {
            let delta = entry.usage().activity.take_due(&self.anomaly);
            if !delta.is_empty() {
                taken.push((entry, delta));
            }
        }
        if taken.is_empty() {
            return Ok(0);
        }
        let deltas: Vec<(Uuid, ActivityDelta)> = taken.iter().map(|(e, d)| (e.id, d.clone())).collect();
        let counts_since = now.minus(self.anomaly.flood_window.saturating_mul(2));
        let networks_since = now.minus(self.anomaly.window);
        let totals = match self
            .store
            .share_activity(&deltas, counts_since, networks_since)
            .await
        {
            Ok(totals) => totals,
            Err(e) => {
                let mut queue = lock(&self.unshared);
                for (entry, delta) in taken {
                    let mut usage = entry.usage();
                    let was_queued = usage.activity.share_due(&self.anomaly);
                    usage.activity.unshare(delta);
                    drop(usage);
                    if !was_queued {
                        queue.push(entry);
                    }
                }
                return Err(e);
            }
        };
        let totals: std::collections::HashMap<Uuid, SharedActivity> = totals.into_iter().collect();
        let mut crossed = Vec::new();
        for (entry, _) in &taken {
            if let Some(shared) = totals.get(&entry.id) {
                if let Some(reason) = entry.usage().activity.absorb(&self.anomaly, shared, now) {
                    crossed.push((entry.clone(), reason));
                }
            }
        }
        for (entry, reason) in crossed {
            tracing::info!(target: "security", event = "anomaly_across_instances", user_id = %entry.user.id, key_id = %entry.id, reason = reason.as_str(), "what all instances saw crosses a line");
            self.revoke(&entry, reason, now, None).await?;
        }
        Ok(taken.len())
    }
}
