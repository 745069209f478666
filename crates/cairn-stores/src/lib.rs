#![deny(missing_docs)]
//! Cairn's typed component stores.
//!
//! Each store is a small trait with serde record types and ONE generic implementation over
//! `Arc<dyn StorageBackend>`: a typed key layout and a codec per store, values carrying a
//! format version byte, and record plus index keys written together with `write_batch`, so a
//! crash never leaves a dangling index entry. A backend that does a component better natively
//! (PostgreSQL) implements the same trait and passes the same testkit suite.
//!
//! A store instance works on the tenant of the backend handle it was built from. The
//! [`migrating`] wrappers move a component from one store implementation to another while it
//! is in use.
//!
//! What it is not: a query engine. Each store answers the reads its trait names, through
//! ordered key ranges; the vector store scans exactly or, in [`HnswVectorStore`], walks an in-process HNSW index,
//! and listings page with [`PageRequest`]. Limits: caller ids up to [`MAX_ID_BYTES`] bytes,
//! pages up to [`MAX_PAGE_LIMIT`] items, and the key-value limits of `cairn-core`.
//!
//! ```
//! use std::sync::Arc;
//! use cairn_core::StorageBackend;
//! use cairn_memory::MemoryBackend;
//! use cairn_stores::episodic::{Role, Turn, TurnPage};
//! use cairn_stores::{EpisodicStore, GenericEpisodicStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let backend: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
//! let episodic = GenericEpisodicStore::new(backend);
//! episodic.append("chat-1", Turn::new(Role::User, "hello")).await?;
//! let turns = episodic.read("chat-1", TurnPage::first(10)).await?;
//! assert_eq!(turns[0].content, "hello");
//! # Ok::<(), cairn_core::Error>(())
//! # }).unwrap();
//! ```

pub mod agent_state;
pub mod artifacts;
pub mod codec;
pub mod dump;
pub mod episodic;
pub mod event_log;
pub mod graph;
pub mod hooks;
mod kvops;
pub mod migrating;
pub mod paging;
pub mod portable;
pub mod procedural;
mod retry;
pub mod sessions;
pub mod stream;
pub mod vectors;
pub mod workflow;

pub use agent_state::{AgentSnapshot, AgentStateStore, GenericAgentStateStore, SnapshotInfo};
pub use artifacts::{
    Artifact, ArtifactInfo, ArtifactReader, ArtifactRef, ArtifactStore, GenericArtifactStore,
    PutOptions,
};
pub use codec::MAX_ID_BYTES;
pub use episodic::{EpisodicStore, GenericEpisodicStore, TurnRecord};
pub use event_log::{EventLogStore, EventRecord, GenericEventLogStore};
pub use graph::{
    AsOf, Bitemporal, Direction, Entity, EntityInput, GenericGraphStore, GraphRecord, GraphStore,
    Relationship, RelationshipInput, TraversalHit, TraverseRequest,
};
pub use hooks::{GenericHookHistoryStore, HookHistoryStore, HookRecord, HookStats};
pub use migrating::{
    BackfillReport, MigratingAgentStateStore, MigratingArtifactStore, MigratingEpisodicStore,
    MigratingEventLogStore, MigratingGraphStore, MigratingHookHistoryStore,
    MigratingProceduralStore, MigratingSessionStore, MigratingVectorStore, MigratingWorkflowStore,
    StoreMigration,
};
pub use paging::{MAX_PAGE_LIMIT, Page, PageRequest};
pub use procedural::{
    GenericProceduralStore, OutcomeStats, ProceduralStore, Procedure, StoredProcedure,
};
pub use sessions::{GenericSessionStore, Session, SessionStore};
pub use vectors::{
    CollectionInfo, GenericVectorStore, HnswParams, HnswVectorStore, Metric, SearchHit,
    SearchRequest, VectorRecord, VectorStore,
};
pub use workflow::{GenericWorkflowStore, Workflow, WorkflowStatus, WorkflowStore};
