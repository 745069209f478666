//! The typed configuration: `[storage]`, its backend sections and per-component overrides.

use std::fmt;
use std::path::PathBuf;

use cairn_core::{Error, ErrorKind, Result};
use cairn_stores::HnswParams;
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

    /// The HNSW engine's settings when vector embeddings use `backend = "hnsw"`.
    pub fn hnsw(&self) -> Option<&ComponentConfig> {
        self.vector_embeddings
            .as_ref()
            .filter(|c| c.backend == BackendChoice::Hnsw)
    }

    /// Checks the rules serde cannot: `hnsw` only for vector embeddings, engine settings only
    /// with `hnsw`, and each engine setting in range.
    ///
    /// # Errors
    /// `Config` naming the section and the rule.
    pub fn validate(&self) -> Result<()> {
        if self.backend == BackendChoice::Hnsw {
            return Err(Error::new(
                ErrorKind::Config,
                "[storage] backend = \"hnsw\" is not a storage backend: hnsw is the vector \
                 engine, set it under [storage.vector_embeddings]",
            ));
        }
        for component in Component::ALL {
            let Some(section) = self.component(component) else {
                continue;
            };
            if section.backend == BackendChoice::Hnsw {
                if component != Component::VectorEmbeddings {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "[storage.{component}] backend = \"hnsw\": hnsw serves only \
                             vector_embeddings"
                        ),
                    ));
                }
                section.hnsw_params()?;
            } else if section.has_engine_settings() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "[storage.{component}]: path, m, ef_construction, ef_search and \
                         seal_threshold apply only with backend = \"hnsw\""
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `[storage.<component>]`: where one component lives, and with `backend = "hnsw"` (vector
/// embeddings only) the engine's settings; an absent setting takes [`HnswParams::default`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The component's backend.
    pub backend: BackendChoice,
    /// `hnsw`: the sled directory of the engine's vectors and segments; absent: memory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `hnsw`: links per node; instant-distance fixes it at 32.
    #[serde(default)]
    pub m: Option<usize>,
    /// `hnsw`: candidates explored while building a segment (1 to 4096).
    #[serde(default)]
    pub ef_construction: Option<usize>,
    /// `hnsw`: default search beam width (1 to 1000); a request may override it.
    #[serde(default)]
    pub ef_search: Option<usize>,
    /// `hnsw`: buffered writes that trigger sealing a segment (1 to 1,000,000).
    #[serde(default)]
    pub seal_threshold: Option<usize>,
}

impl ComponentConfig {
    /// A section that only names a backend.
    pub fn new(backend: BackendChoice) -> ComponentConfig {
        ComponentConfig {
            backend,
            path: None,
            m: None,
            ef_construction: None,
            ef_search: None,
            seal_threshold: None,
        }
    }

    fn has_engine_settings(&self) -> bool {
        self.path.is_some()
            || self.m.is_some()
            || self.ef_construction.is_some()
            || self.ef_search.is_some()
            || self.seal_threshold.is_some()
    }

    /// The engine parameters this section sets, defaults elsewhere.
    ///
    /// # Errors
    /// `Config` naming the parameter out of range.
    pub fn hnsw_params(&self) -> Result<HnswParams> {
        let defaults = HnswParams::default();
        let params = HnswParams {
            m: self.m.unwrap_or(defaults.m),
            ef_construction: self.ef_construction.unwrap_or(defaults.ef_construction),
            ef_search: self.ef_search.unwrap_or(defaults.ef_search),
            seal_threshold: self.seal_threshold.unwrap_or(defaults.seal_threshold),
        };
        params.validate().map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "invalid [storage.vector_embeddings] settings: {}",
                    e.message()
                ),
            )
            .with_source(e)
        })?;
        Ok(params)
    }
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
    /// One setting, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
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
