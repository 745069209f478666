//! Copies from the generic stores on memory to the generic stores on sled: the portable
//! records of each component mean the same on both backends.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;
use cairn_stores::{
    AgentStateStore, EpisodicStore, EventLogStore, GenericAgentStateStore, GenericEpisodicStore,
    GenericEventLogStore, GenericGraphStore, GenericHookHistoryStore, GenericProceduralStore,
    GenericSessionStore, GenericWorkflowStore, GraphStore, HookHistoryStore, ProceduralStore,
    SessionStore, WorkflowStore,
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
