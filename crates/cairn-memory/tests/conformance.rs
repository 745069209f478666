//! The shared conformance suite on the in-memory backend, used as `Arc<dyn StorageBackend>`.

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;

async fn backend() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::kv_suite!(backend);
