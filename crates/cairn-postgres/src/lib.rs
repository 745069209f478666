#![deny(missing_docs)]
//! PostgreSQL backend for Cairn.
//!
//! [`PostgresBackend`] implements [`cairn_core::StorageBackend`] on one table, `kv_store`,
//! through a connection pool (deadpool-postgres, tokio-postgres). Tenants are separated by
//! the database itself with row-level security; [`migrate`] holds the embedded migration runner
//! that `auto_migrate` and `cargo xtask migrate` use.
//!
//! [`PostgresVectorStore`], [`PostgresEventLogStore`], [`PostgresSessionStore`] and
//! [`PostgresHookHistoryStore`] are native implementations of the `cairn-stores` traits
//! `VectorStore` (pgvector tables with HNSW indexes), `EventLogStore` (a monthly-partitioned
//! table), `SessionStore` (TTL checked in every statement) and `HookHistoryStore` (statistics
//! in SQL) on tables of their own, built on a [`PostgresBackend`]
//! (see [`PostgresBackend::scoped`]) and sharing its pool, role and per-transaction tenant.
//! So are [`PostgresProceduralStore`] (`ProceduralStore`: atomic counters and rankings in
//! SQL), [`PostgresWorkflowStore`] (`WorkflowStore`: the state machine enforced under a row
//! lock) and [`PostgresArtifactStore`] (`ArtifactStore`: per-tenant deduplicated rows, content
//! streamed through chunk rows in one transaction).
//! [`PostgresGraphStore`] does the same for `GraphStore`: versioned rows with GiST as-of
//! indexes, traversals as one recursive statement.
//!
//! # How it works
//! - Data flows as a non-superuser role (`app_role`, default `cairn_app`) that cannot bypass
//!   row-level security: every pooled connection runs `SET ROLE` and checks this before its
//!   first use, and [`PostgresBackend::connect`] fails with `PermissionDenied` otherwise.
//! - Every operation is one transaction that first calls
//!   `set_config('app.tenant_id', $1, true)`: the tenant is transaction-local and never a
//!   session value that concurrent tasks could share. `BEGIN`, the tenant setting, the
//!   prepared statement and `COMMIT` are pipelined: one round trip per operation
//!   (`write_batch` with checks takes two).
//! - Batches are single statements over `UNNEST`ed arrays; prefix scans are key ranges on a
//!   `COLLATE "C"` primary key, so keys order as bytes as on every Cairn backend.
//! - Conditional writes rely on the primary key and row locks: a lost race is
//!   [`ErrorKind::Conflict`](cairn_core::ErrorKind::Conflict), never a silent overwrite.
//!
//! # What it is not
//! - Not a general SQL layer: it stores opaque bytes under string keys.
//! - No TLS yet: connections use `NoTls`, so keep the server on a trusted network or a local
//!   socket.
//! - It does not create databases or set passwords; the migrations create the `cairn_app`
//!   role and the table.
//!
//! # Limits
//! Keys up to [`cairn_core::MAX_KEY_BYTES`], values up to [`cairn_core::MAX_VALUE_BYTES`],
//! batches up to [`cairn_core::MAX_BATCH_OPS`] operations and
//! [`MAX_STATEMENT_PAYLOAD_BYTES`] of keys and values (PostgreSQL's 1 GiB message limit),
//! scan pages up to [`cairn_core::MAX_SCAN_LIMIT`]. The database must use UTF-8.
//!
//! # Quick start
//! ```no_run
//! use cairn_core::{Key, StorageBackend, TenantId};
//! use cairn_postgres::{PostgresBackend, PostgresConfig};
//!
//! # async fn demo() -> cairn_core::Result<()> {
//! let config = PostgresConfig::new("postgresql://postgres@127.0.0.1:5432/cairn");
//! let storage = PostgresBackend::connect(config).await?; // migrates, then checks the role
//! let acme = storage.tenant(&TenantId::new("acme")?);
//! let key = Key::new("agents/7/state")?;
//! acme.set(&key, "{}".into()).await?;
//! assert_eq!(acme.get(&key).await?.as_deref(), Some(&b"{}"[..]));
//! # Ok(())
//! # }
//! ```

mod backend;
mod config;
mod conn;
mod error;
pub mod migrate;
mod pool;
mod sql;
mod stores;

pub use backend::{MAX_STATEMENT_PAYLOAD_BYTES, PostgresBackend};
pub use config::PostgresConfig;
pub use migrate::{MigrationReport, MigrationState, MigrationStatus, migrate_up, migration_status};
pub use stores::{
    PostgresAgentStateStore, PostgresEpisodicStore, PostgresEventLogStore, PostgresGraphStore,
    PostgresHookHistoryStore, PostgresSessionStore, PostgresVectorStore, VECTOR_DEFAULT_EF_SEARCH,
};
pub use stores::{PostgresArtifactStore, PostgresProceduralStore, PostgresWorkflowStore};
