//! The component-store suites on the in-memory backend, through each store's generic
//! implementation.

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;

async fn backend() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::generic_store_suites!(backend);
