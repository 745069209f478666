//! The component-store suites on sled (balanced mode, a temporary directory per test),
//! through each store's generic implementation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_core::StorageBackend;
use cairn_sled::{SledBackend, SledConfig};

async fn backend() -> Arc<dyn StorageBackend> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "cairn-sled-components-{}-{}",
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
