//! [`Health`] on SQLite: the readers answer the ping, the probe write runs on the writer.

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::{Health, StoreResult};

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn check_writes(&self) -> StoreResult<()> {
        if self.writes.health.failing() {
            self.probe_write().await
        } else {
            Ok(())
        }
    }

    fn writes_failing(&self) -> bool {
        self.writes.health.failing()
    }

    async fn close(&self) {
        self.keys.close();
        self.read.close().await;
        self.write.close().await;
    }
}
