//! The ten components and the backend names a component can ask for.

use std::fmt;

use cairn_core::{Error, Result};
use serde::Deserialize;

/// A component store that takes its backend from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Vector embeddings and similarity search.
    VectorEmbeddings,
    /// Conversation turns.
    EpisodicMemory,
    /// The bi-temporal knowledge graph.
    SemanticGraph,
    /// Skills and patterns with outcome counters.
    ProceduralMemory,
    /// Versioned agent snapshots.
    AgentState,
    /// Workflow runs and their status.
    WorkflowState,
    /// Sessions with a time to live.
    Sessions,
    /// Content-addressed artifacts.
    Artifacts,
    /// The event log.
    EventLog,
    /// Hook executions.
    HookHistory,
}

impl Component {
    /// Every component, in configuration order.
    pub const ALL: [Component; 10] = [
        Component::VectorEmbeddings,
        Component::EpisodicMemory,
        Component::SemanticGraph,
        Component::ProceduralMemory,
        Component::AgentState,
        Component::WorkflowState,
        Component::Sessions,
        Component::Artifacts,
        Component::EventLog,
        Component::HookHistory,
    ];

    /// The configuration section name, e.g. `vector_embeddings`.
    pub fn name(self) -> &'static str {
        match self {
            Component::VectorEmbeddings => "vector_embeddings",
            Component::EpisodicMemory => "episodic_memory",
            Component::SemanticGraph => "semantic_graph",
            Component::ProceduralMemory => "procedural_memory",
            Component::AgentState => "agent_state",
            Component::WorkflowState => "workflow_state",
            Component::Sessions => "sessions",
            Component::Artifacts => "artifacts",
            Component::EventLog => "event_log",
            Component::HookHistory => "hook_history",
        }
    }
}

impl std::str::FromStr for Component {
    type Err = Error;

    /// Parses a configuration section name, e.g. `event_log`.
    ///
    /// # Errors
    /// `InvalidInput` naming the valid names.
    fn from_str(name: &str) -> Result<Component> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
                Error::invalid_input(format!(
                    "unknown component `{name}`; the components are {}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend a component can be placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// In-process maps (always compiled in).
    Memory,
    /// The embedded sled database (cargo feature `sled`).
    Sled,
    /// PostgreSQL (cargo feature `postgres`).
    Postgres,
    /// The in-process HNSW vector engine (`vector_embeddings` only), keeping its vectors in
    /// memory or, with a `path`, in sled.
    Hnsw,
}

impl BackendChoice {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Memory => "memory",
            BackendChoice::Sled => "sled",
            BackendChoice::Postgres => "postgres",
            BackendChoice::Hnsw => "hnsw",
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
