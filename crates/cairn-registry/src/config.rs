//! The typed configuration: `[storage]`, its backend sections and per-component overrides.

use std::fmt;
use std::path::PathBuf;

use cairn_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::component::{BackendChoice, Component};

/// The whole configuration file: everything lives under `[storage]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CairnConfig {
    /// Storage settings.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// `[storage]`: the global backend, the data directory, backend settings and per-component
/// overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Backend of every component without an override.
    pub backend: BackendChoice,
    /// Data directory of the embedded backends; sled lives in `<path>/sled`.
    pub path: PathBuf,
    /// `[storage.sled]`: `cache_capacity_mb`, `mode` (`fast | balanced | safe`).
    pub sled: BackendSection,
    /// `[storage.postgres]`: `url`, `pool_size`, timeouts, `app_role`,
    /// `enforce_tenant_isolation`, `auto_migrate`.
    pub postgres: BackendSection,
    /// Override for vector embeddings.
    pub vector_embeddings: Option<ComponentConfig>,
    /// Override for episodic memory.
    pub episodic_memory: Option<ComponentConfig>,
    /// Override for the semantic graph.
    pub semantic_graph: Option<ComponentConfig>,
    /// Override for procedural memory.
    pub procedural_memory: Option<ComponentConfig>,
    /// Override for agent state.
    pub agent_state: Option<ComponentConfig>,
    /// Override for workflow state.
    pub workflow_state: Option<ComponentConfig>,
    /// Override for sessions.
    pub sessions: Option<ComponentConfig>,
    /// Override for artifacts.
    pub artifacts: Option<ComponentConfig>,
    /// Override for the event log.
    pub event_log: Option<ComponentConfig>,
    /// Override for hook history.
    pub hook_history: Option<ComponentConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: BackendChoice::Sled,
            path: PathBuf::from("./cairn-data"),
            sled: BackendSection::default(),
            postgres: BackendSection::default(),
            vector_embeddings: None,
            episodic_memory: None,
            semantic_graph: None,
            procedural_memory: None,
            agent_state: None,
            workflow_state: None,
            sessions: None,
            artifacts: None,
            event_log: None,
            hook_history: None,
        }
    }
}

impl StorageConfig {
    /// A configuration placing every component on `backend`.
    pub fn with_backend(backend: BackendChoice) -> StorageConfig {
        StorageConfig {
            backend,
            ..StorageConfig::default()
        }
    }

    /// The override section of `component`, if any.
    pub fn component(&self, component: Component) -> Option<&ComponentConfig> {
        match component {
            Component::VectorEmbeddings => self.vector_embeddings.as_ref(),
            Component::EpisodicMemory => self.episodic_memory.as_ref(),
            Component::SemanticGraph => self.semantic_graph.as_ref(),
            Component::ProceduralMemory => self.procedural_memory.as_ref(),
            Component::AgentState => self.agent_state.as_ref(),
            Component::WorkflowState => self.workflow_state.as_ref(),
            Component::Sessions => self.sessions.as_ref(),
            Component::Artifacts => self.artifacts.as_ref(),
            Component::EventLog => self.event_log.as_ref(),
            Component::HookHistory => self.hook_history.as_ref(),
        }
    }

    /// The backend `component` uses: its override, else the global backend.
    pub fn backend_of(&self, component: Component) -> BackendChoice {
        self.component(component)
            .map_or(self.backend, |c| c.backend)
    }
}

/// `[storage.<component>]`: where one component lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The component's backend.
    pub backend: BackendChoice,
}

/// The raw settings of one backend, checked against that backend's typed config when the
/// backend is opened (so a build without the backend's feature still reads the file).
///
/// `Debug` never prints the values: they may hold passwords.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct BackendSection(Map<String, Value>);

#[cfg_attr(
    not(any(feature = "sled", feature = "postgres")),
    allow(
        dead_code,
        reason = "only the sled and postgres backends have settings"
    )
)]
impl BackendSection {
    /// Sets `key` unless the section already has it.
    pub(crate) fn with_default(mut self, key: &str, value: Value) -> BackendSection {
        self.0.entry(key.to_owned()).or_insert(value);
        self
    }

    /// Sets one setting (for programmatic configuration).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }

    /// Converts the section into the backend's typed config.
    ///
    /// # Errors
    /// `Config` naming the section when a key is unknown or a value has the wrong type.
    pub(crate) fn parse<T: DeserializeOwned>(self, section: &str) -> Result<T> {
        serde_json::from_value(Value::Object(self.0)).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("invalid [storage.{section}] settings: {e}"),
            )
            .with_source(e)
        })
    }
}

impl fmt::Debug for BackendSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish_non_exhaustive()
    }
}
