//! Moving a tenant from memory to sled while it is in use: the migrating-backend cases with a
//! memory backend as the old side and a sled database as the new one.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_memory::MemoryBackend;

async fn memory() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::migrating_suite!(memory, common::temporary_backend);
