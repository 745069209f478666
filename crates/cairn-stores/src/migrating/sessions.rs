//! [`MigratingSessionStore`].

use async_trait::async_trait;
use cairn_core::Result;
use serde_json::Value;
use time::Duration;

use super::{Scope, Side, migrating_store, portable_records};
use crate::paging::Page;
use crate::sessions::{Session, SessionStore};

migrating_store!(
    /// A [`SessionStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). Writes returning the session are mirrored as that session (its
    /// creation time and expiry as the deciding side set them); `unlink_artifact` reads the
    /// session back from the deciding side (an expired one is not mirrored: it reads as
    /// absent everywhere); deletes and purges run on both sides. `get` falls back to the old
    /// side; `list` does not.
    MigratingSessionStore,
    SessionStore
);

impl MigratingSessionStore {
    /// Runs a session write returning the session on the deciding side, mirroring the
    /// session.
    async fn mirrored<'a, F, Fut>(&'a self, id: &str, run: F) -> Result<Session>
    where
        F: FnOnce(&'a dyn SessionStore) -> Fut,
        Fut: Future<Output = Result<Session>>,
    {
        self.migration
            .write(Scope::Record(id), |side: Side| async move {
                let session = run(self.on(side)).await?;
                let mirror = portable_records([&session])?;
                Ok((session, mirror))
            })
            .await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl SessionStore for MigratingSessionStore {
    async fn create(&self, id: Option<&str>, ttl: Duration, data: Value) -> Result<Session> {
        let scope = id.map_or(Scope::Created, Scope::Record);
        self.migration
            .write(scope, |side| async move {
                let session = self.on(side).create(id, ttl, data).await?;
                let mirror = portable_records([&session])?;
                Ok((session, mirror))
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        self.migration.read_one(|side| self.on(side).get(id)).await
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        self.on(self.migration.reader()).list(after, limit).await
    }

    async fn extend(&self, id: &str, ttl: Duration) -> Result<Session> {
        self.mirrored(id, |store| store.extend(id, ttl)).await
    }

    async fn touch(&self, id: &str) -> Result<Session> {
        self.mirrored(id, |store| store.touch(id)).await
    }

    async fn update_data(&self, id: &str, data: Value) -> Result<Session> {
        self.mirrored(id, |store| store.update_data(id, data)).await
    }

    async fn link_artifact(&self, id: &str, hash: &str) -> Result<Session> {
        self.mirrored(id, |store| store.link_artifact(id, hash))
            .await
    }

    async fn unlink_artifact(&self, id: &str, hash: &str) -> Result<bool> {
        self.migration
            .write(Scope::Record(id), |side| async move {
                let store = self.on(side);
                let unlinked = store.unlink_artifact(id, hash).await?;
                let mirror = portable_records(store.get(id).await?.as_ref())?;
                Ok((unlinked, mirror))
            })
            .await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        self.migration
            .write_both(Scope::Record(id), |side| self.on(side).delete(id))
            .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.migration
            .write_both(Scope::All, |side| self.on(side).purge_expired())
            .await
    }
}
