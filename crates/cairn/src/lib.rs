#![deny(missing_docs)]
//! Cairn: the storage layer for LLM-agent runtimes.
//!
//! This facade re-exports what an application needs: the key-value contract
//! ([`StorageBackend`], [`Key`], [`TenantId`], [`Error`]), the component stores
//! ([`stores`]), and the registry that builds every store from layered configuration
//! ([`Storage`], [`load_config`]).
//!
//! Cargo features pick the backends compiled in: `memory` (always), `sled` (default) and
//! `postgres`. Asking the configuration for a backend that is not compiled in is an error
//! naming the feature.
//!
//! ```
//! use cairn::{Component, Storage, TenantId};
//!
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let config = cairn::config_from_toml("[storage]\nbackend = \"memory\"")?;
//! let storage = Storage::open(&config).await?;
//! let acme = storage.tenant(&TenantId::new("acme")?);
//! assert_eq!(acme.tenant_id().as_str(), "acme");
//! assert_eq!(acme.backend(Component::Sessions).backend_type(), cairn::StorageBackendType::Memory);
//! # Ok::<(), cairn::Error>(())
//! # }).unwrap();
//! ```

pub use cairn_core::{
    BatchOp, Bytes, Check, Error, ErrorKind, Key, Result, ScanPage, StorageBackend,
    StorageBackendExt, StorageBackendType, StorageCharacteristics, TenantId, WriteBatch,
};
pub use cairn_registry::admin;
pub use cairn_registry::{
    BackendChoice, Component, Storage, StorageConfig, TenantStorage, compiled_backends,
    from_toml as config_from_toml, load as load_config,
};
pub use cairn_stores as stores;

/// The backends, for callers that build one directly instead of through configuration.
pub mod backends {
    pub use cairn_memory::MemoryBackend;
    #[cfg(feature = "postgres")]
    pub use cairn_postgres::{PostgresBackend, PostgresConfig};
    #[cfg(feature = "sled")]
    pub use cairn_sled::{SledBackend, SledConfig, SledMode};
}
