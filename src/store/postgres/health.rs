//! [`Health`] on PostgreSQL.

use async_trait::async_trait;

use super::PgStore;
use crate::store::{Health, StoreResult};

#[async_trait]
impl Health for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn check_writes(&self) -> StoreResult<()> {
        if self.writes.failing() {
            self.probe_write().await
        } else {
            Ok(())
        }
    }

    fn writes_failing(&self) -> bool {
        self.writes.failing()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
