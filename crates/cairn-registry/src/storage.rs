//! The `Storage` handle: one backend per component, scoped to a tenant on request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use cairn_core::{Result, StorageBackend, TenantId};
use cairn_stores::portable::PortableStore;
use cairn_stores::{
    AgentStateStore, ArtifactStore, EpisodicStore, EventLogStore, GenericAgentStateStore,
    GenericArtifactStore, GenericEpisodicStore, GenericEventLogStore, GenericGraphStore,
    GenericHookHistoryStore, GenericProceduralStore, GenericSessionStore, GenericVectorStore,
    GenericWorkflowStore, GraphStore, HnswParams, HnswVectorStore, HookHistoryStore,
    ProceduralStore, SessionStore, VectorStore, WorkflowStore,
};

use crate::component::{BackendChoice, Component};
use crate::config::StorageConfig;
use crate::open::{Engine, open_used};

/// Every component's backend, opened from a [`StorageConfig`].
///
/// Components on the same backend share one engine (one sled database, one PostgreSQL pool).
#[derive(Debug, Clone)]
pub struct Storage {
    backends: BTreeMap<Component, (BackendChoice, Arc<dyn StorageBackend>)>,
    /// The HNSW engines, one per tenant, when vector embeddings use `hnsw`.
    hnsw: Option<Arc<HnswEngines>>,
    /// The PostgreSQL backend when some component uses it: the native stores need it.
    #[cfg(feature = "postgres")]
    postgres: Option<cairn_postgres::PostgresBackend>,
    /// Every opened engine, once each.
    engines: Vec<Engine>,
}

impl Storage {
    /// Opens the backends `config` asks for.
    ///
    /// # Errors
    /// `Config` when a backend's feature is off or its settings are invalid (for example a
    /// missing PostgreSQL URL); the backend's own errors when it cannot be opened.
    pub async fn open(config: &StorageConfig) -> Result<Storage> {
        config.validate()?;
        let hnsw = match config.hnsw() {
            Some(section) => Some(Arc::new(HnswEngines::new(section.hnsw_params()?))),
            None => None,
        };
        let opened = open_used(config).await?;
        let backends = Component::ALL
            .iter()
            .map(|c| {
                let choice = config.backend_of(*c);
                (*c, (choice, opened.backends[&choice].clone()))
            })
            .collect();
        Ok(Storage {
            backends,
            hnsw,
            #[cfg(feature = "postgres")]
            postgres: opened.postgres,
            engines: opened.engines,
        })
    }

    /// Makes every write acknowledged so far durable, whatever the backends' modes (sled
    /// flushes and fsyncs; memory and PostgreSQL have nothing pending).
    ///
    /// # Errors
    /// `Backend` when a flush fails.
    pub async fn flush(&self) -> Result<()> {
        for engine in &self.engines {
            engine.flush().await?;
        }
        Ok(())
    }

    /// Every tenant holding data in some component's backend, in byte order of their ids.
    /// An administrative read across tenants (for export, copy and statistics).
    ///
    /// # Errors
    /// The backends' errors; on PostgreSQL `PermissionDenied` when the configured URL's user
    /// is subject to row-level security (listing tenants needs an owner or `BYPASSRLS` user).
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut tenants = BTreeSet::new();
        for engine in &self.engines {
            tenants.extend(engine.tenants().await?);
        }
        Ok(tenants.into_iter().collect())
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
            .map(|(c, (choice, backend))| (*c, (*choice, backend.tenant(tenant))))
            .collect();
        TenantStorage {
            tenant: tenant.clone(),
            backends,
            hnsw: self.hnsw.clone(),
            #[cfg(feature = "postgres")]
            postgres: self.postgres.as_ref().map(|pg| pg.scoped(tenant)),
        }
    }
}

/// The HNSW engines of one [`Storage`]: one per tenant, created on first use, so every
/// handle of a tenant shares one in-memory index.
#[derive(Debug)]
struct HnswEngines {
    params: HnswParams,
    engines: Mutex<HashMap<TenantId, Arc<HnswVectorStore>>>,
}

impl HnswEngines {
    fn new(params: HnswParams) -> HnswEngines {
        HnswEngines {
            params,
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s engine over `backend` (already scoped to `tenant`).
    fn engine(&self, tenant: &TenantId, backend: Arc<dyn StorageBackend>) -> Arc<HnswVectorStore> {
        let mut engines = self
            .engines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        engines
            .entry(tenant.clone())
            .or_insert_with(|| {
                Arc::new(
                    HnswVectorStore::new(backend, self.params)
                        .expect("the HNSW parameters were validated when the storage opened"),
                )
            })
            .clone()
    }
}

/// One tenant's component stores.
///
/// A component on PostgreSQL gets the native store where `cairn-postgres` has one (vectors,
/// event log, episodic memory, semantic graph, agent state, sessions, hook history,
/// procedural memory, workflow state, artifacts); every other component gets the generic store
/// over its key-value backend.
#[derive(Debug, Clone)]
pub struct TenantStorage {
    tenant: TenantId,
    backends: BTreeMap<Component, (BackendChoice, Arc<dyn StorageBackend>)>,
    hnsw: Option<Arc<HnswEngines>>,
    /// The PostgreSQL backend on this tenant, when some component uses it.
    #[cfg(feature = "postgres")]
    postgres: Option<cairn_postgres::PostgresBackend>,
}

impl TenantStorage {
    /// The tenant.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    /// The key-value backend `component` is stored in, scoped to this tenant.
    pub fn backend(&self, component: Component) -> Arc<dyn StorageBackend> {
        self.backends[&component].1.clone()
    }

    /// `component`'s store as a [`PortableStore`]: the same store its accessor returns (native
    /// or generic), to export, import, copy or fingerprint its records.
    pub fn portable(&self, component: Component) -> Arc<dyn PortableStore> {
        match component {
            Component::EpisodicMemory => self.episodic(),
            Component::ProceduralMemory => self.procedural(),
            Component::AgentState => self.agent_state(),
            Component::WorkflowState => self.workflows(),
            Component::Sessions => self.sessions(),
            Component::EventLog => self.events(),
            Component::HookHistory => self.hooks(),
            Component::SemanticGraph => self.graph(),
            Component::VectorEmbeddings => self.vectors(),
            Component::Artifacts => self.artifacts(),
        }
    }

    /// The PostgreSQL backend on this tenant when `component` is stored there.
    #[cfg(feature = "postgres")]
    fn postgres_for(&self, component: Component) -> Option<&cairn_postgres::PostgresBackend> {
        match self.backends[&component].0 {
            BackendChoice::Postgres => self.postgres.as_ref(),
            BackendChoice::Memory | BackendChoice::Sled | BackendChoice::Hnsw => None,
        }
    }

    /// Vector embeddings ([`Component::VectorEmbeddings`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresVectorStore`] (pgvector, HNSW); with `hnsw` this tenant's
    /// [`HnswVectorStore`], the same engine on every call and every handle of the tenant;
    /// elsewhere the generic store.
    pub fn vectors(&self) -> Arc<dyn VectorStore> {
        if let Some(engines) = &self.hnsw {
            return engines.engine(&self.tenant, self.backend(Component::VectorEmbeddings));
        }
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::VectorEmbeddings) {
            return Arc::new(cairn_postgres::PostgresVectorStore::new(pg));
        }
        Arc::new(GenericVectorStore::new(
            self.backend(Component::VectorEmbeddings),
        ))
    }

    /// Conversation turns ([`Component::EpisodicMemory`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresEpisodicStore`], elsewhere the generic store.
    pub fn episodic(&self) -> Arc<dyn EpisodicStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::EpisodicMemory) {
            return Arc::new(cairn_postgres::PostgresEpisodicStore::new(pg));
        }
        Arc::new(GenericEpisodicStore::new(
            self.backend(Component::EpisodicMemory),
        ))
    }

    /// The bi-temporal knowledge graph ([`Component::SemanticGraph`]): on PostgreSQL the
    /// native [`cairn_postgres::PostgresGraphStore`] (version tables, GiST as-of indexes,
    /// recursive traversal), elsewhere the generic store.
    pub fn graph(&self) -> Arc<dyn GraphStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::SemanticGraph) {
            return Arc::new(cairn_postgres::PostgresGraphStore::new(pg));
        }
        Arc::new(GenericGraphStore::new(
            self.backend(Component::SemanticGraph),
        ))
    }

    /// Procedures with outcome counters ([`Component::ProceduralMemory`]): on PostgreSQL the
    /// native [`cairn_postgres::PostgresProceduralStore`] (counters and rankings in SQL),
    /// elsewhere the generic store.
    pub fn procedural(&self) -> Arc<dyn ProceduralStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::ProceduralMemory) {
            return Arc::new(cairn_postgres::PostgresProceduralStore::new(pg));
        }
        Arc::new(GenericProceduralStore::new(
            self.backend(Component::ProceduralMemory),
        ))
    }

    /// Versioned agent snapshots ([`Component::AgentState`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresAgentStateStore`], elsewhere the generic store.
    pub fn agent_state(&self) -> Arc<dyn AgentStateStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::AgentState) {
            return Arc::new(cairn_postgres::PostgresAgentStateStore::new(pg));
        }
        Arc::new(GenericAgentStateStore::new(
            self.backend(Component::AgentState),
        ))
    }

    /// Workflow runs ([`Component::WorkflowState`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresWorkflowStore`] (`workflows` table), elsewhere the generic
    /// store.
    pub fn workflows(&self) -> Arc<dyn WorkflowStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::WorkflowState) {
            return Arc::new(cairn_postgres::PostgresWorkflowStore::new(pg));
        }
        Arc::new(GenericWorkflowStore::new(
            self.backend(Component::WorkflowState),
        ))
    }

    /// Sessions with a time to live ([`Component::Sessions`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresSessionStore`] (`sessions` table), elsewhere the generic store.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::Sessions) {
            return Arc::new(cairn_postgres::PostgresSessionStore::new(pg));
        }
        Arc::new(GenericSessionStore::new(self.backend(Component::Sessions)))
    }

    /// Content-addressed artifacts ([`Component::Artifacts`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresArtifactStore`] (deduplicated rows, chunk rows), elsewhere
    /// the generic store.
    pub fn artifacts(&self) -> Arc<dyn ArtifactStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::Artifacts) {
            return Arc::new(cairn_postgres::PostgresArtifactStore::new(pg));
        }
        Arc::new(GenericArtifactStore::new(
            self.backend(Component::Artifacts),
        ))
    }

    /// The event log ([`Component::EventLog`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresEventLogStore`] (partitioned table), elsewhere the generic
    /// store.
    pub fn events(&self) -> Arc<dyn EventLogStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::EventLog) {
            return Arc::new(cairn_postgres::PostgresEventLogStore::new(pg));
        }
        Arc::new(GenericEventLogStore::new(self.backend(Component::EventLog)))
    }

    /// Hook executions ([`Component::HookHistory`]): on PostgreSQL the native
    /// [`cairn_postgres::PostgresHookHistoryStore`] (`hook_executions` table), elsewhere the
    /// generic store.
    pub fn hooks(&self) -> Arc<dyn HookHistoryStore> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres_for(Component::HookHistory) {
            return Arc::new(cairn_postgres::PostgresHookHistoryStore::new(pg));
        }
        Arc::new(GenericHookHistoryStore::new(
            self.backend(Component::HookHistory),
        ))
    }
}
