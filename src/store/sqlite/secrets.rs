//! [`Secrets`] on SQLite (the pepper's verifier).

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::{secrets, Secrets, StoreResult};

#[async_trait]
impl Secrets for SqliteStore {
    async fn service_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.writing(async {
            sqlx::query(secrets::KEEP_FIRST)
                .bind(name)
                .bind(candidate)
                .execute(&self.write)
                .await?;
            let value: Vec<u8> = sqlx::query_scalar(secrets::READ)
                .bind(name)
                .fetch_one(&self.write)
                .await?;
            Ok(value)
        })
        .await
    }
}
