//! [`MigratingProceduralStore`].

use async_trait::async_trait;
use cairn_core::Result;

use super::{Scope, migrating_store, portable_records};
use crate::paging::{Page, PageRequest};
use crate::procedural::{OutcomeStats, ProceduralStore, Procedure, StoredProcedure};

migrating_store!(
    /// A [`ProceduralStore`] moving from an old to a new implementation while in use; see
    /// the [module docs](super). Upserts are mirrored as the stored procedure (its counters
    /// and times as the deciding side keeps them); `record_outcome` reads the procedure back
    /// from the deciding side and mirrors it; deletes run on both sides. `get` falls back to
    /// the old side; listings and rankings do not.
    MigratingProceduralStore,
    ProceduralStore
);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ProceduralStore for MigratingProceduralStore {
    async fn upsert_procedure(&self, procedure: Procedure) -> Result<StoredProcedure> {
        let id = procedure.id.clone();
        self.migration
            .write(Scope::Record(&id), |side| async move {
                let stored = self.on(side).upsert_procedure(procedure).await?;
                let mirror = portable_records([&stored])?;
                Ok((stored, mirror))
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredProcedure>> {
        self.migration.read_one(|side| self.on(side).get(id)).await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        self.migration
            .write_both(Scope::Record(id), |side| self.on(side).delete(id))
            .await
    }

    async fn list_by_category(
        &self,
        category: &str,
        page: PageRequest,
    ) -> Result<Page<StoredProcedure>> {
        self.on(self.migration.reader())
            .list_by_category(category, page)
            .await
    }

    async fn record_outcome(&self, id: &str, success: bool) -> Result<OutcomeStats> {
        self.migration
            .write(Scope::Record(id), |side| async move {
                let store = self.on(side);
                let stats = store.record_outcome(id, success).await?;
                let mirror = portable_records(store.get(id).await?.as_ref())?;
                Ok((stats, mirror))
            })
            .await
    }

    async fn top_by_success_rate(
        &self,
        category: Option<&str>,
        limit: usize,
        min_uses: u64,
    ) -> Result<Vec<StoredProcedure>> {
        self.on(self.migration.reader())
            .top_by_success_rate(category, limit, min_uses)
            .await
    }

    async fn top_by_frequency(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredProcedure>> {
        self.on(self.migration.reader())
            .top_by_frequency(category, limit)
            .await
    }
}
