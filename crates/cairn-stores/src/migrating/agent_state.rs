//! [`MigratingAgentStateStore`].

use async_trait::async_trait;
use cairn_core::Result;
use serde_json::Value;

use super::{Scope, migrating_store};
use crate::agent_state::{AgentSnapshot, AgentStateStore, SnapshotInfo, encode_state};
use crate::portable::encode_portable;

migrating_store!(
    /// An [`AgentStateStore`] moving from an old to a new implementation while in use; see
    /// the [module docs](super). A save is mirrored as the saved snapshot (the version, time
    /// and checksum the deciding side gave it, with the state's payload); deletes and prunes
    /// run on both sides. `load_latest` and `load_version` fall back to the old side;
    /// `list_versions` does not.
    MigratingAgentStateStore,
    AgentStateStore
);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl AgentStateStore for MigratingAgentStateStore {
    async fn save(
        &self,
        agent_id: &str,
        state: &Value,
        expected_version: Option<u64>,
    ) -> Result<SnapshotInfo> {
        self.migration
            .write(Scope::Record(agent_id), |side| async move {
                let info = self
                    .on(side)
                    .save(agent_id, state, expected_version)
                    .await?;
                let mirror = vec![encode_portable(&info, &encode_state(state)?)?];
                Ok((info, mirror))
            })
            .await
    }

    async fn load_latest(&self, agent_id: &str) -> Result<Option<AgentSnapshot>> {
        self.migration
            .read_one(|side| self.on(side).load_latest(agent_id))
            .await
    }

    async fn load_version(&self, agent_id: &str, version: u64) -> Result<Option<AgentSnapshot>> {
        self.migration
            .read_one(|side| self.on(side).load_version(agent_id, version))
            .await
    }

    async fn list_versions(&self, agent_id: &str) -> Result<Vec<SnapshotInfo>> {
        self.on(self.migration.reader())
            .list_versions(agent_id)
            .await
    }

    async fn delete_agent(&self, agent_id: &str) -> Result<u64> {
        self.migration
            .write_both(Scope::Record(agent_id), |side| {
                self.on(side).delete_agent(agent_id)
            })
            .await
    }

    async fn prune(&self, agent_id: &str, keep_last: u64) -> Result<u64> {
        self.migration
            .write_both(Scope::Record(agent_id), |side| {
                self.on(side).prune(agent_id, keep_last)
            })
            .await
    }
}
