//! Copies from the generic stores on memory to the generic stores on sled: the portable
//! records of each component mean the same on both backends.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;
use cairn_stores::portable::PortableStore;
use cairn_stores::vectors::{SearchRequest, VectorRecord, encode_vector_record};
use cairn_stores::{
    AgentStateStore, ArtifactStore, EpisodicStore, EventLogStore, GenericAgentStateStore,
    GenericArtifactStore, GenericEpisodicStore, GenericEventLogStore, GenericGraphStore,
    GenericHookHistoryStore, GenericProceduralStore, GenericSessionStore, GenericVectorStore,
    GenericWorkflowStore, GraphStore, HnswParams, HnswVectorStore, HookHistoryStore,
    ProceduralStore, SessionStore, VectorStore, WorkflowStore,
};
use cairn_testkit::portable::{self, Portable};

/// For one component: the generic store on a fresh memory backend as the source, the same
/// store on a fresh sled database as the target, and the copy case between them.
macro_rules! memory_to_sled {
    ($trait:ident, $store:ident, $case:ident, $test:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let on = |backend: Arc<dyn StorageBackend>| -> Portable<dyn $trait> {
                let store = Arc::new($store::new(backend));
                (store.clone(), store)
            };
            let memory: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
            portable::$case(on(memory), on(common::temporary_backend().await)).await;
        }
    };
}

memory_to_sled!(
    SessionStore,
    GenericSessionStore,
    sessions_copy_faithfully,
    sessions_memory_to_sled
);
memory_to_sled!(
    EpisodicStore,
    GenericEpisodicStore,
    episodic_copy_faithfully,
    episodic_memory_to_sled
);
memory_to_sled!(
    AgentStateStore,
    GenericAgentStateStore,
    agent_state_copy_faithfully,
    agent_state_memory_to_sled
);
memory_to_sled!(
    EventLogStore,
    GenericEventLogStore,
    event_log_copy_faithfully,
    event_log_memory_to_sled
);
memory_to_sled!(
    HookHistoryStore,
    GenericHookHistoryStore,
    hooks_copy_faithfully,
    hooks_memory_to_sled
);
memory_to_sled!(
    ProceduralStore,
    GenericProceduralStore,
    procedural_copy_faithfully,
    procedural_memory_to_sled
);
memory_to_sled!(
    WorkflowStore,
    GenericWorkflowStore,
    workflow_copy_faithfully,
    workflow_memory_to_sled
);
memory_to_sled!(
    GraphStore,
    GenericGraphStore,
    graph_copy_faithfully,
    graph_memory_to_sled
);
memory_to_sled!(
    ArtifactStore,
    GenericArtifactStore,
    artifacts_copy_faithfully,
    artifacts_memory_to_sled
);
memory_to_sled!(
    VectorStore,
    GenericVectorStore,
    vectors_copy_faithfully,
    vectors_memory_to_sled
);

/// Vectors from the generic store on memory into the HNSW engine over sled: the import goes
/// through the engine, whose index answers counts and searches at once; then back out of the
/// engine into a fresh generic store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_memory_to_hnsw_and_back() {
    let memory: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
    let generic = Arc::new(GenericVectorStore::new(memory));
    let params = HnswParams {
        seal_threshold: 4,
        ..HnswParams::default()
    };
    let engine = Arc::new(HnswVectorStore::new(common::temporary_backend().await, params).unwrap());
    portable::vectors_copy_faithfully((generic.clone(), generic), (engine.clone(), engine.clone()))
        .await;
    // The index is loaded now: an imported vector is counted and found at once.
    let info = engine.collection("small").await.unwrap().unwrap();
    let late = VectorRecord {
        id: "late".into(),
        vector: vec![0.25, -0.5, 1.0],
        metadata: Default::default(),
    };
    let before = engine.count("small").await.unwrap();
    engine
        .import(&[encode_vector_record(&info, Some(&late)).unwrap()])
        .await
        .unwrap();
    assert_eq!(engine.count("small").await.unwrap(), before + 1);
    let hits = engine
        .search("small", SearchRequest::new(late.vector.clone(), 1))
        .await
        .unwrap();
    assert_eq!(hits[0].id, "late");
    let back: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
    let back = Arc::new(GenericVectorStore::new(back));
    portable::copy_and_compare(engine.as_ref(), back.as_ref()).await;
}
