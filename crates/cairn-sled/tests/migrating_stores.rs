//! Moving each component from the generic store on memory to the generic store on sled
//! while a live writer uses it: the store-level migration cases of
//! `cairn_testkit::migrating_stores`.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;
use cairn_stores::{
    GenericAgentStateStore, GenericArtifactStore, GenericEpisodicStore, GenericEventLogStore,
    GenericGraphStore, GenericHookHistoryStore, GenericProceduralStore, GenericSessionStore,
    GenericVectorStore, GenericWorkflowStore,
};
use cairn_testkit::migrating_stores;

fn memory() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

/// One test per case: `$store` over memory (old) and over a fresh sled database (new).
macro_rules! memory_to_sled {
    ($($test:ident: $case:ident($store:ident)),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                migrating_stores::$case(
                    Arc::new($store::new(memory())),
                    Arc::new($store::new(common::temporary_backend().await)),
                )
                .await;
            }
        )+
    };
}

memory_to_sled!(
    migrating_episodic_moves_live: episodic_moves_live(GenericEpisodicStore),
    migrating_sessions_move_live: sessions_move_live(GenericSessionStore),
    migrating_agent_state_moves_live: agent_state_moves_live(GenericAgentStateStore),
    migrating_event_log_moves_live: event_log_moves_live(GenericEventLogStore),
    migrating_hooks_move_live: hooks_move_live(GenericHookHistoryStore),
    migrating_procedural_moves_live: procedural_moves_live(GenericProceduralStore),
    migrating_workflows_move_live: workflows_move_live(GenericWorkflowStore),
    migrating_vectors_move_live: vectors_move_live(GenericVectorStore),
    migrating_artifacts_move_live: artifacts_move_live(GenericArtifactStore),
    migrating_graph_moves_live: graph_moves_live(GenericGraphStore),
    migrating_racing_writers_of_one_record_agree:
        racing_writers_of_one_record_agree(GenericSessionStore),
    migrating_racing_artifact_references_agree:
        racing_artifact_references_agree(GenericArtifactStore),
    migrating_phases_route_and_new_only_is_final:
        phases_route_and_new_only_is_final(GenericEpisodicStore),
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_secondary_failures_carry_their_side() {
    migrating_stores::secondary_failures_carry_their_side(
        memory(),
        Arc::new(GenericEpisodicStore::new(common::temporary_backend().await)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_backfill_pages_hold_writes_back() {
    migrating_stores::backfill_pages_hold_writes_back(
        memory(),
        Arc::new(GenericEpisodicStore::new(common::temporary_backend().await)),
    )
    .await;
}
