//! The `Storage` handle: one backend per component, scoped to a tenant on request.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::{Result, StorageBackend, TenantId};
use cairn_stores::{
    AgentStateStore, ArtifactStore, EpisodicStore, EventLogStore, GenericAgentStateStore,
    GenericArtifactStore, GenericEpisodicStore, GenericEventLogStore, GenericGraphStore,
    GenericHookHistoryStore, GenericProceduralStore, GenericSessionStore, GenericVectorStore,
    GenericWorkflowStore, GraphStore, HookHistoryStore, ProceduralStore, SessionStore, VectorStore,
    WorkflowStore,
};

use crate::component::{BackendChoice, Component};
use crate::config::StorageConfig;
use crate::open::open_used;

/// Every component's backend, opened from a [`StorageConfig`].
///
/// Components on the same backend share one engine (one sled database, one PostgreSQL pool).
#[derive(Debug, Clone)]
pub struct Storage {
    backends: BTreeMap<Component, (BackendChoice, Arc<dyn StorageBackend>)>,
}

impl Storage {
    /// Opens the backends `config` asks for.
    ///
    /// # Errors
    /// `Config` when a backend's feature is off or its settings are invalid (for example a
    /// missing PostgreSQL URL); the backend's own errors when it cannot be opened.
    pub async fn open(config: &StorageConfig) -> Result<Storage> {
        let open = open_used(config).await?;
        let backends = Component::ALL
            .iter()
            .map(|c| {
                let choice = config.backend_of(*c);
                (*c, (choice, open[&choice].clone()))
            })
            .collect();
        Ok(Storage { backends })
    }

    /// Which backend `component` is on.
    pub fn backend_choice(&self, component: Component) -> BackendChoice {
        self.backends[&component].0
    }

    /// The default tenant's view.
    pub fn default_tenant(&self) -> TenantStorage {
        self.tenant(&TenantId::default_tenant())
    }

    /// `tenant`'s view of every component.
    pub fn tenant(&self, tenant: &TenantId) -> TenantStorage {
        let backends = self
            .backends
            .iter()
            .map(|(c, (_, backend))| (*c, backend.tenant(tenant)))
            .collect();
        TenantStorage {
            tenant: tenant.clone(),
            backends,
        }
    }
}

/// One tenant's component stores.
#[derive(Debug, Clone)]
pub struct TenantStorage {
    tenant: TenantId,
    backends: BTreeMap<Component, Arc<dyn StorageBackend>>,
}

impl TenantStorage {
    /// The tenant.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    /// The key-value backend `component` is stored in, scoped to this tenant.
    pub fn backend(&self, component: Component) -> Arc<dyn StorageBackend> {
        self.backends[&component].clone()
    }

    /// Vector embeddings ([`Component::VectorEmbeddings`]).
    pub fn vectors(&self) -> Arc<dyn VectorStore> {
        Arc::new(GenericVectorStore::new(
            self.backend(Component::VectorEmbeddings),
        ))
    }

    /// Conversation turns ([`Component::EpisodicMemory`]).
    pub fn episodic(&self) -> Arc<dyn EpisodicStore> {
        Arc::new(GenericEpisodicStore::new(
            self.backend(Component::EpisodicMemory),
        ))
    }

    /// The bi-temporal knowledge graph ([`Component::SemanticGraph`]).
    pub fn graph(&self) -> Arc<dyn GraphStore> {
        Arc::new(GenericGraphStore::new(
            self.backend(Component::SemanticGraph),
        ))
    }

    /// Procedures with outcome counters ([`Component::ProceduralMemory`]).
    pub fn procedural(&self) -> Arc<dyn ProceduralStore> {
        Arc::new(GenericProceduralStore::new(
            self.backend(Component::ProceduralMemory),
        ))
    }

    /// Versioned agent snapshots ([`Component::AgentState`]).
    pub fn agent_state(&self) -> Arc<dyn AgentStateStore> {
        Arc::new(GenericAgentStateStore::new(
            self.backend(Component::AgentState),
        ))
    }

    /// Workflow runs ([`Component::WorkflowState`]).
    pub fn workflows(&self) -> Arc<dyn WorkflowStore> {
        Arc::new(GenericWorkflowStore::new(
            self.backend(Component::WorkflowState),
        ))
    }

    /// Sessions with a time to live ([`Component::Sessions`]).
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::new(GenericSessionStore::new(self.backend(Component::Sessions)))
    }

    /// Content-addressed artifacts ([`Component::Artifacts`]).
    pub fn artifacts(&self) -> Arc<dyn ArtifactStore> {
        Arc::new(GenericArtifactStore::new(
            self.backend(Component::Artifacts),
        ))
    }

    /// The event log ([`Component::EventLog`]).
    pub fn events(&self) -> Arc<dyn EventLogStore> {
        Arc::new(GenericEventLogStore::new(self.backend(Component::EventLog)))
    }

    /// Hook executions ([`Component::HookHistory`]).
    pub fn hooks(&self) -> Arc<dyn HookHistoryStore> {
        Arc::new(GenericHookHistoryStore::new(
            self.backend(Component::HookHistory),
        ))
    }
}
