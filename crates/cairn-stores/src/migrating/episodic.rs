//! [`MigratingEpisodicStore`].

use async_trait::async_trait;
use cairn_core::Result;
use time::OffsetDateTime;

use super::{Scope, migrating_store, portable_records};
use crate::episodic::{EpisodicSession, EpisodicStore, Role, Turn, TurnPage, TurnRecord};

migrating_store!(
    /// An [`EpisodicStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). Appends are mirrored as the appended turn (its `seq` and time),
    /// session deletes by deleting on both sides. Only [`count`](EpisodicStore::count) falls
    /// back to the old side (when the new one counts 0); the other reads are listings.
    MigratingEpisodicStore,
    EpisodicStore
);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl EpisodicStore for MigratingEpisodicStore {
    async fn append(&self, session_id: &str, turn: Turn) -> Result<TurnRecord> {
        self.migration
            .write(Scope::Record(session_id), |side| async move {
                let record = self.on(side).append(session_id, turn).await?;
                let mirror = portable_records([&record])?;
                Ok((record, mirror))
            })
            .await
    }

    async fn read(&self, session_id: &str, page: TurnPage) -> Result<Vec<TurnRecord>> {
        self.on(self.migration.reader())
            .read(session_id, page)
            .await
    }

    async fn read_range(
        &self,
        session_id: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<TurnRecord>> {
        self.on(self.migration.reader())
            .read_range(session_id, from, to, limit)
            .await
    }

    async fn by_role(
        &self,
        session_id: &str,
        role: Role,
        page: TurnPage,
    ) -> Result<Vec<TurnRecord>> {
        self.on(self.migration.reader())
            .by_role(session_id, role, page)
            .await
    }

    async fn count(&self, session_id: &str) -> Result<u64> {
        let count = self
            .migration
            .read_one(|side| async move {
                let count = self.on(side).count(session_id).await?;
                Ok((count > 0).then_some(count))
            })
            .await?;
        Ok(count.unwrap_or(0))
    }

    async fn delete_session(&self, session_id: &str) -> Result<u64> {
        self.migration
            .write_both(Scope::Record(session_id), |side| {
                self.on(side).delete_session(session_id)
            })
            .await
    }

    async fn list_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EpisodicSession>> {
        self.on(self.migration.reader())
            .list_sessions(after, limit)
            .await
    }
}
