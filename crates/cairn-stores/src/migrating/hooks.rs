//! [`MigratingHookHistoryStore`].

use async_trait::async_trait;
use cairn_core::Result;
use time::OffsetDateTime;

use super::{Scope, migrating_store, portable_records};
use crate::hooks::{HookExecution, HookHistoryStore, HookQuery, HookRecord, HookStats};

migrating_store!(
    /// A [`HookHistoryStore`] moving from an old to a new implementation while in use; see
    /// the [module docs](super). Recordings are mirrored as the recorded execution (its id
    /// and time); `drop_before` runs on both sides holding the gate exclusively. Queries and
    /// statistics never fall back.
    MigratingHookHistoryStore,
    HookHistoryStore
);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl HookHistoryStore for MigratingHookHistoryStore {
    async fn record(&self, execution: HookExecution) -> Result<HookRecord> {
        self.migration
            .write(Scope::Created, |side| async move {
                let record = self.on(side).record(execution).await?;
                let mirror = portable_records([&record])?;
                Ok((record, mirror))
            })
            .await
    }

    async fn query(&self, query: &HookQuery) -> Result<Vec<HookRecord>> {
        self.on(self.migration.reader()).query(query).await
    }

    async fn stats(
        &self,
        hook_name: &str,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<HookStats> {
        self.on(self.migration.reader())
            .stats(hook_name, from, to)
            .await
    }

    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64> {
        self.migration
            .write_both(Scope::All, |side| self.on(side).drop_before(before))
            .await
    }
}
