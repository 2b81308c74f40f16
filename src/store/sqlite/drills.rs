//! The SQLite store's fault drill ([`FaultDrills`]): a page limit on the writer connection.

use async_trait::async_trait;

use super::write::max_page_count_sql;
use super::SqliteStore;
use crate::store::drills::FaultDrills;
use crate::store::StoreResult;

#[async_trait]
impl FaultDrills for SqliteStore {
    async fn set_size_limit(&self, pages: Option<u64>) -> StoreResult<()> {
        self.writes.set_page_limit(pages);
        let mut conn = self.write.acquire().await?;
        sqlx::query(&max_page_count_sql(pages))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
