//! PostgreSQL-native implementations of component store traits from `cairn-stores`.
//!
//! Each store keeps its records in tables of its own (migration `0002_vectors_events.sql`)
//! instead of encoding them into `kv_store`, and runs on the same pool, role and
//! per-transaction tenant setting as [`PostgresBackend`](crate::PostgresBackend): every
//! operation is a transaction that starts with `set_config('app.tenant_id', $1, true)`, and
//! row-level security on every table keeps tenants apart. Each store passes the same testkit
//! suite as the generic implementation of its trait.

mod event_log;
mod vectors;

pub(crate) use event_log::EnsuredMonths;
pub use event_log::PostgresEventLogStore;
pub use vectors::{PostgresVectorStore, VECTOR_DEFAULT_EF_SEARCH};
