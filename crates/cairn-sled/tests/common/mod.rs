//! The sled factory shared by the suites: balanced mode, a temporary directory per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_core::StorageBackend;
use cairn_sled::{SledBackend, SledConfig};

/// A fresh sled database that deletes its directory when dropped.
pub(crate) async fn temporary_backend() -> Arc<dyn StorageBackend> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "cairn-sled-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut config = SledConfig::new(std::env::temp_dir().join(name));
    config.temporary = true;
    config.cache_capacity_mb = 64;
    Arc::new(
        SledBackend::open(config)
            .await
            .expect("open temporary sled"),
    )
}
