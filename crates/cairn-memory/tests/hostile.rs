//! The hostile-input catalogue on the in-memory backend.

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;

async fn backend() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::hostile_suite!(backend);
