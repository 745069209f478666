//! The hostile-input catalogue against PostgreSQL (needs `DATABASE_URL`).

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;

/// A fresh tenant on the shared test database; each case gets its own.
async fn backend() -> Arc<dyn StorageBackend> {
    let backend = common::backend().await;
    backend.tenant(&common::random_tenant())
}

cairn_testkit::hostile_suite!(backend);
