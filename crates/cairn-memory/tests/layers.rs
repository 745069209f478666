//! The retry and timeout layers on the in-memory backend: the layer cases with injected
//! faults, and the whole key-value conformance suite through
//! `RetryLayer(TimeoutLayer(MemoryBackend))`, which shows that the layers forward every method
//! faithfully.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::StorageBackend;
use cairn_core::layer::{RetryLayer, TimeoutLayer};
use cairn_memory::MemoryBackend;

async fn backend() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::layer_suite!(backend);

mod through_layers {
    use super::*;

    /// A fresh memory backend behind both layers (generous deadline: the suite moves 16 MiB
    /// values and runs concurrent swaps).
    async fn layered() -> Arc<dyn StorageBackend> {
        let timed = TimeoutLayer::wrap(super::backend().await, Duration::from_secs(60));
        RetryLayer::wrap(timed, cairn_testkit::layers::quick_policy(3))
    }

    cairn_testkit::kv_suite!(layered);
}
