//! The component-store suites against PostgreSQL (needs `DATABASE_URL`), through each
//! store's generic implementation over the key-value backend.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;

/// A fresh tenant on the shared test database; each case gets its own.
async fn backend() -> Arc<dyn StorageBackend> {
    let backend = common::backend().await;
    backend.tenant(&common::random_tenant())
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
