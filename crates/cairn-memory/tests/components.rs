//! The component-store suites on the in-memory backend (a fresh backend per test).

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;

async fn backend() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::graph_generic_suite!(backend);
cairn_testkit::procedural_generic_suite!(backend);
