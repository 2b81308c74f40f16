//! [`Secrets`] on PostgreSQL (the pepper's verifier, the key of name digests): the first
//! instance to insert wins, every instance reads what won.

use async_trait::async_trait;

use super::PgStore;
use crate::store::{secrets, Secrets, StoreResult};

#[async_trait]
impl Secrets for PgStore {
    async fn service_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.writing(async {
            sqlx::query(secrets::KEEP_FIRST)
                .bind(name)
                .bind(candidate)
                .execute(&self.pool)
                .await?;
            let value: Vec<u8> = sqlx::query_scalar(secrets::READ)
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
            Ok(value)
        })
        .await
    }
}
