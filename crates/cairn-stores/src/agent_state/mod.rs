//! Agent state: versioned JSON snapshots per agent, with optimistic concurrency and a
//! SHA-256 checksum verified on every load.
//!
//! Each save stores a new version (1, 2, 3, ... per agent); older versions stay loadable
//! until [`AgentStateStore::prune`] or [`AgentStateStore::delete_agent`] removes them. The
//! stored payload is the compact JSON text of the state; its SHA-256 is kept beside it and
//! checked on every load, so damaged bytes surface as `Corruption`, never as data.

pub mod keys;

mod generic;

use std::fmt::Write as _;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use generic::GenericAgentStateStore;

/// What was stored by one save. With the payload as its blob, it is also the portable record
/// of agent state ([`crate::portable`]), one per version; see [`check_snapshot`].
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
    /// When the snapshot was saved, in UTC, to the microsecond (the precision every backend
    /// keeps, see [`saved_now`]).
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
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait AgentStateStore: crate::portable::PortableStore {
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

/// The payload stored for `state`: its compact JSON text.
///
/// # Errors
/// `InvalidInput` when the state cannot be encoded.
pub fn encode_state(state: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(state)
        .map_err(|e| Error::invalid_input("state cannot be encoded").with_source(e))
}

/// SHA-256 of `bytes` as 64 lowercase hex digits: [`SnapshotInfo::checksum`].
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Checks a stored payload against the size and checksum in `info` and decodes it.
///
/// # Errors
/// `Corruption` when the payload is missing, its size or checksum differs, or it is not JSON.
pub fn verify_snapshot(info: SnapshotInfo, payload: Option<&[u8]>) -> Result<AgentSnapshot> {
    let corrupt = |what: &'static str| {
        Error::corruption(what)
            .with_context("agent", &info.agent_id)
            .with_context("version", info.version)
    };
    let data = payload.ok_or_else(|| corrupt("snapshot payload is missing"))?;
    if data.len() as u64 != info.size || sha256_hex(data) != info.checksum {
        return Err(corrupt("snapshot payload fails its SHA-256 checksum"));
    }
    let state = serde_json::from_slice(data)
        .map_err(|e| corrupt("snapshot payload is not JSON").with_source(e))?;
    Ok(AgentSnapshot { info, state })
}

/// The save time of a snapshot taken now: the current time in UTC rounded down to the
/// microsecond, the resolution of PostgreSQL's `timestamptz`, so a snapshot's metadata is the
/// same on every backend it is copied to.
pub fn saved_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - time::Duration::nanoseconds(i64::from(now.nanosecond() % 1_000))
}

/// Checks a snapshot read from a portable record, with its payload, before it is imported:
/// the agent id, the version (1 to `i64::MAX`), the save time (UTC, years 0 to 9999), then
/// the payload against the size and checksum (and that it is JSON),
/// exactly as a load would.
///
/// An agent's latest pointer is not a record of its own: an import raises it to the largest
/// version imported for the agent (a save always creates the largest version and prune keeps
/// it, so the two agree).
///
/// # Errors
/// `InvalidInput` naming the first bad field; `Corruption` when the payload fails
/// [`verify_snapshot`].
pub fn check_snapshot(info: &SnapshotInfo, payload: &[u8]) -> Result<()> {
    crate::codec::check_id("agent id", &info.agent_id)?;
    if info.version == 0 || i64::try_from(info.version).is_err() {
        return Err(
            Error::invalid_input("a snapshot's version must be 1 to 2^63 - 1")
                .with_context("agent", &info.agent_id)
                .with_context("version", info.version),
        );
    }
    crate::portable::check_portable_time("snapshot", info.saved_at)?;
    verify_snapshot(info.clone(), Some(payload)).map(drop)
}

/// Checks the `keep_last` argument of [`AgentStateStore::prune`].
///
/// # Errors
/// `InvalidInput` for 0 (use `delete_agent` to remove every version).
pub fn check_keep_last(keep_last: u64) -> Result<()> {
    if keep_last == 0 {
        return Err(Error::invalid_input(
            "prune must keep at least one version; use delete_agent to remove all",
        ));
    }
    Ok(())
}
