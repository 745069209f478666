//! Copies between the native PostgreSQL stores and the generic stores over PostgreSQL's
//! key-value table, in both directions (needs `DATABASE_URL`): the portable records of each
//! component mean the same to both implementations.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_postgres::{PostgresBackend, PostgresSessionStore};
use cairn_stores::GenericSessionStore;
use cairn_testkit::portable::{self, Portable};

/// A handle on a fresh tenant of the shared test database.
async fn fresh_tenant() -> PostgresBackend {
    common::backend().await.scoped(&common::random_tenant())
}

async fn native_sessions() -> Portable<dyn cairn_stores::SessionStore> {
    let store = Arc::new(PostgresSessionStore::new(&fresh_tenant().await));
    (store.clone(), store)
}

async fn generic_sessions() -> Portable<dyn cairn_stores::SessionStore> {
    let backend: Arc<dyn StorageBackend> = Arc::new(fresh_tenant().await);
    let store = Arc::new(GenericSessionStore::new(backend));
    (store.clone(), store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_native_to_generic() {
    portable::sessions_copy_faithfully(native_sessions().await, generic_sessions().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_generic_to_native() {
    portable::sessions_copy_faithfully(generic_sessions().await, native_sessions().await).await;
}
