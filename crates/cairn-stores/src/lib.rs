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

pub mod artifacts;
pub mod codec;
pub mod graph;
pub mod paging;
pub mod procedural;

pub use codec::MAX_ID_BYTES;
pub use graph::{
    AsOf, Bitemporal, Direction, Entity, EntityInput, GenericGraphStore, GraphStore, Relationship,
    RelationshipInput, TraversalHit, TraverseRequest,
};
pub use paging::{MAX_PAGE_LIMIT, Page, PageRequest};
pub use procedural::{
    GenericProceduralStore, OutcomeStats, ProceduralStore, Procedure, StoredProcedure,
};

mod retry;
pub mod sessions;
pub mod vectors;

pub use artifacts::{
    Artifact, ArtifactInfo, ArtifactReader, ArtifactRef, ArtifactStore, GenericArtifactStore,
    PutOptions,
};
pub use sessions::{GenericSessionStore, Session, SessionStore};
pub use vectors::{
    CollectionInfo, GenericVectorStore, Metric, SearchHit, SearchRequest, VectorRecord, VectorStore,
};
