//! [`Events`] on both databases (compiled in each, see `sql/`): standalone events in a write
//! transaction of their own.

use async_trait::async_trait;
use uuid::Uuid;

use super::steps::insert_events;
use super::Store;
use crate::domain::{Event, NewEvent};
use crate::store::events::{ALL, OF_USER};
use crate::store::rows::EventRow;
use crate::store::{Events, StoreResult};

#[async_trait]
impl Events for Store {
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.writing(async {
            let mut tx = self.begin_write().await?;
            insert_events(&mut tx, events).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_events(
        &self,
        user_id: Option<Uuid>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let before = before.unwrap_or(i64::MAX);
        let rows: Vec<EventRow> = match user_id {
            Some(user_id) => {
                sqlx::query_as(&OF_USER)
                    .bind(user_id)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
            }
            None => {
                sqlx::query_as(&ALL)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
            }
        };
        rows.into_iter().map(Event::try_from).collect()
    }
}
