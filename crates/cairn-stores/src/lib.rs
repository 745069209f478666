#![deny(missing_docs)]
//! Cairn's typed component stores.
//!
//! Each store is a small trait with serde record types and ONE generic implementation over
//! `Arc<dyn StorageBackend>`: a typed key layout and a codec per store, values carrying a
//! format version byte, and record plus index keys written together with `write_batch`, so a
//! crash never leaves a dangling index entry. A backend that does a component better natively
//! (PostgreSQL) implements the same trait and passes the same testkit suite.
//!
//! A store instance works on the tenant of the backend handle it was built from.

pub mod agent_state;
pub mod artifacts;
pub mod codec;
pub mod episodic;
pub mod event_log;
pub mod graph;
pub mod hooks;
mod kvops;
pub mod paging;
pub mod procedural;
mod retry;
pub mod sessions;
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
    AsOf, Bitemporal, Direction, Entity, EntityInput, GenericGraphStore, GraphStore, Relationship,
    RelationshipInput, TraversalHit, TraverseRequest,
};
pub use hooks::{GenericHookHistoryStore, HookHistoryStore, HookRecord, HookStats};
pub use paging::{MAX_PAGE_LIMIT, Page, PageRequest};
pub use procedural::{
    GenericProceduralStore, OutcomeStats, ProceduralStore, Procedure, StoredProcedure,
};
pub use sessions::{GenericSessionStore, Session, SessionStore};
pub use vectors::{
    CollectionInfo, GenericVectorStore, Metric, SearchHit, SearchRequest, VectorRecord, VectorStore,
};
pub use workflow::{GenericWorkflowStore, Workflow, WorkflowStatus, WorkflowStore};
