//! Moving each component from the generic store on memory to the native PostgreSQL store
//! (needs `DATABASE_URL`) while a live writer uses it: the store-level migration cases of
//! `cairn_testkit::migrating_stores`, between two implementations that share no layout.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;
use cairn_postgres::{
    PostgresAgentStateStore, PostgresArtifactStore, PostgresBackend, PostgresEpisodicStore,
    PostgresEventLogStore, PostgresGraphStore, PostgresHookHistoryStore, PostgresProceduralStore,
    PostgresSessionStore, PostgresVectorStore, PostgresWorkflowStore,
};
use cairn_stores::{
    GenericAgentStateStore, GenericArtifactStore, GenericEpisodicStore, GenericEventLogStore,
    GenericGraphStore, GenericHookHistoryStore, GenericProceduralStore, GenericSessionStore,
    GenericVectorStore, GenericWorkflowStore,
};
use cairn_testkit::migrating_stores;

fn memory() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

/// A handle on a fresh tenant of the shared test database.
async fn fresh_tenant() -> PostgresBackend {
    common::backend().await.scoped(&common::random_tenant())
}

/// One test per case: the generic `$generic` over memory (old) and the native `$native` on
/// a fresh tenant (new).
macro_rules! memory_to_postgres {
    ($($test:ident: $case:ident($generic:ident, $native:ident)),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                migrating_stores::$case(
                    Arc::new($generic::new(memory())),
                    Arc::new($native::new(&fresh_tenant().await)),
                )
                .await;
            }
        )+
    };
}

memory_to_postgres!(
    migrating_episodic_moves_live:
        episodic_moves_live(GenericEpisodicStore, PostgresEpisodicStore),
    migrating_sessions_move_live: sessions_move_live(GenericSessionStore, PostgresSessionStore),
    migrating_agent_state_moves_live:
        agent_state_moves_live(GenericAgentStateStore, PostgresAgentStateStore),
    migrating_event_log_moves_live:
        event_log_moves_live(GenericEventLogStore, PostgresEventLogStore),
    migrating_hooks_move_live: hooks_move_live(GenericHookHistoryStore, PostgresHookHistoryStore),
    migrating_procedural_moves_live:
        procedural_moves_live(GenericProceduralStore, PostgresProceduralStore),
    migrating_workflows_move_live:
        workflows_move_live(GenericWorkflowStore, PostgresWorkflowStore),
    migrating_vectors_move_live: vectors_move_live(GenericVectorStore, PostgresVectorStore),
    migrating_artifacts_move_live:
        artifacts_move_live(GenericArtifactStore, PostgresArtifactStore),
    migrating_graph_moves_live: graph_moves_live(GenericGraphStore, PostgresGraphStore),
    migrating_racing_writers_of_one_record_agree:
        racing_writers_of_one_record_agree(GenericSessionStore, PostgresSessionStore),
    migrating_racing_artifact_references_agree:
        racing_artifact_references_agree(GenericArtifactStore, PostgresArtifactStore),
    migrating_phases_route_and_new_only_is_final:
        phases_route_and_new_only_is_final(GenericEpisodicStore, PostgresEpisodicStore),
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_secondary_failures_carry_their_side() {
    migrating_stores::secondary_failures_carry_their_side(
        memory(),
        Arc::new(PostgresEpisodicStore::new(&fresh_tenant().await)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_backfill_pages_hold_writes_back() {
    migrating_stores::backfill_pages_hold_writes_back(
        memory(),
        Arc::new(PostgresEpisodicStore::new(&fresh_tenant().await)),
    )
    .await;
}
