//! The agent-state store's key layout (scope `as`).
//!
//! ```text
//! as/head/<agent>              AgentHead: latest version (the key saves CAS on)
//! as/info/<agent>/<version>    SnapshotInfo (checksum, size, time)
//! as/data/<agent>/<version>    the payload: compact JSON, stored as is
//! ```

use cairn_core::{Key, Result};

use crate::codec::KeyPath;

const SCOPE: &str = "as";

/// Every key the agent-state store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStateKey<'a> {
    /// The agent's latest version.
    Head {
        /// Agent id.
        agent: &'a str,
    },
    /// A snapshot's metadata.
    Info {
        /// Agent id.
        agent: &'a str,
        /// AgentSnapshot version.
        version: u64,
    },
    /// A snapshot's payload.
    Data {
        /// Agent id.
        agent: &'a str,
        /// AgentSnapshot version.
        version: u64,
    },
}

impl AgentStateKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the agent id makes the key invalid.
    pub fn key(&self) -> Result<Key> {
        match *self {
            AgentStateKey::Head { agent } => KeyPath::new(SCOPE).name("head").id(agent),
            AgentStateKey::Info { agent, version } => infos(agent).u64(version),
            AgentStateKey::Data { agent, version } => datas(agent).u64(version),
        }
        .key()
    }

    /// Prefix of every agent's snapshot metadata.
    pub fn all_infos_prefix() -> String {
        KeyPath::new(SCOPE).name("info").prefix()
    }

    /// Prefix of an agent's snapshot metadata.
    pub fn infos_prefix(agent: &str) -> String {
        infos(agent).prefix()
    }

    /// Prefix of an agent's payloads.
    pub fn data_prefix(agent: &str) -> String {
        datas(agent).prefix()
    }
}

fn infos(agent: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("info").id(agent)
}

fn datas(agent: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("data").id(agent)
}
