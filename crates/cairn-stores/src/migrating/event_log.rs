//! [`MigratingEventLogStore`].

use async_trait::async_trait;
use cairn_core::Result;
use time::OffsetDateTime;

use super::{Scope, migrating_store, portable_records};
use crate::event_log::{Event, EventLogStore, EventQuery, EventRecord};

migrating_store!(
    /// An [`EventLogStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). Appends are mirrored as the appended records (their ids and
    /// times); `drop_before` runs on both sides holding the gate exclusively. Queries never
    /// fall back.
    MigratingEventLogStore,
    EventLogStore
);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl EventLogStore for MigratingEventLogStore {
    async fn append(&self, event: Event) -> Result<EventRecord> {
        self.migration
            .write(Scope::Created, |side| async move {
                let record = self.on(side).append(event).await?;
                let mirror = portable_records([&record])?;
                Ok((record, mirror))
            })
            .await
    }

    async fn append_batch(&self, events: Vec<Event>) -> Result<Vec<EventRecord>> {
        self.migration
            .write(Scope::Created, |side| async move {
                let records = self.on(side).append_batch(events).await?;
                let mirror = portable_records(&records)?;
                Ok((records, mirror))
            })
            .await
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<EventRecord>> {
        self.on(self.migration.reader()).query(query).await
    }

    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64> {
        self.migration
            .write_both(Scope::All, |side| self.on(side).drop_before(before))
            .await
    }
}
