//! Agent state: versioned JSON snapshots per agent, with optimistic concurrency and a
//! SHA-256 checksum verified on every load.
//!
//! Each save stores a new version (1, 2, 3, ... per agent); older versions stay loadable
//! until [`AgentStateStore::prune`] or [`AgentStateStore::delete_agent`] removes them. The
//! stored payload is the compact JSON text of the state; its SHA-256 is kept beside it and
//! checked on every load, so damaged bytes surface as `Corruption`, never as data.

pub mod keys;

mod generic;

use async_trait::async_trait;
use cairn_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

pub use generic::GenericAgentStateStore;

/// What was stored by one save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The agent the snapshot belongs to.
    pub agent_id: String,
    /// The snapshot's version: 1 for the agent's first save, then previous + 1.
    pub version: u64,
    /// SHA-256 of the stored payload, 64 lowercase hex digits.
    pub checksum: String,
    /// Size of the stored payload in bytes.
    pub size: u64,
    /// When the snapshot was saved, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub saved_at: OffsetDateTime,
}

/// A loaded snapshot whose checksum was verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    /// What was stored.
    pub info: SnapshotInfo,
    /// The agent's state.
    pub state: Value,
}

/// Versioned agent state snapshots.
///
/// Agent ids are caller-chosen strings of 1 to 256 bytes without NUL; any other id is
/// `InvalidInput`. A bad argument is always rejected before anything is written.
#[async_trait]
pub trait AgentStateStore: Send + Sync + std::fmt::Debug {
    /// Saves `state` as the agent's next version and returns what was stored.
    ///
    /// With `expected_version = Some(v)` the save succeeds only if the agent's latest version
    /// is `v` (`Some(0)`: the agent has no snapshot yet); of several concurrent saves
    /// expecting the same version exactly one succeeds. With `None` the save always appends
    /// a new version.
    ///
    /// # Errors
    /// `Conflict` when `expected_version` is not the latest version; `InvalidInput` for a bad
    /// agent id or a state larger than the backend's value limit.
    async fn save(
        &self,
        agent_id: &str,
        state: &Value,
        expected_version: Option<u64>,
    ) -> Result<SnapshotInfo>;

    /// Loads the agent's latest snapshot; `None` when it has none.
    ///
    /// # Errors
    /// `Corruption` when the stored payload fails its checksum or does not decode;
    /// `InvalidInput` for a bad agent id.
    async fn load_latest(&self, agent_id: &str) -> Result<Option<AgentSnapshot>>;

    /// Loads one version; `None` when it does not exist (never saved, pruned or deleted).
    ///
    /// # Errors
    /// `Corruption` when the stored payload fails its checksum or does not decode;
    /// `InvalidInput` for a bad agent id.
    async fn load_version(&self, agent_id: &str, version: u64) -> Result<Option<AgentSnapshot>>;

    /// Every stored version of the agent, oldest first (empty for an unknown agent). Does not
    /// read or verify payloads.
    ///
    /// # Errors
    /// `InvalidInput` for a bad agent id; `Corruption` for damaged metadata.
    async fn list_versions(&self, agent_id: &str) -> Result<Vec<SnapshotInfo>>;

    /// Deletes every version of the agent and returns how many there were. A later save
    /// starts again at version 1.
    ///
    /// # Errors
    /// `InvalidInput` for a bad agent id.
    async fn delete_agent(&self, agent_id: &str) -> Result<u64>;

    /// Deletes all but the newest `keep_last` versions and returns how many were deleted.
    ///
    /// # Errors
    /// `InvalidInput` for a bad agent id or `keep_last = 0` (use `delete_agent`).
    async fn prune(&self, agent_id: &str, keep_last: u64) -> Result<u64>;
}
