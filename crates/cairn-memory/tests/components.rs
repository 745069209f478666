//! The component-store suites on the in-memory backend, through each store's generic
//! implementation.

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;

async fn backend() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::graph_generic_suite!(backend);
cairn_testkit::procedural_generic_suite!(backend);
cairn_testkit::artifacts_generic_suite!(backend);
cairn_testkit::sessions_generic_suite!(backend);
cairn_testkit::vectors_generic_suite!(backend);
cairn_testkit::episodic_generic_suite!(backend);
cairn_testkit::agent_state_generic_suite!(backend);
cairn_testkit::workflow_generic_suite!(backend);
cairn_testkit::event_log_generic_suite!(backend);
cairn_testkit::hooks_generic_suite!(backend);
