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

cairn_testkit::generic_store_suites!(backend);
