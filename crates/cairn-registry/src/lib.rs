#![deny(missing_docs)]
//! Cairn's registry: layered configuration and the backend of every component.
//!
//! [`load`] reads the configuration with figment — built-in defaults, then the shipped
//! `config/default.toml`, then a user file (`CAIRN_CONFIG` or an explicit path), then
//! `CAIRN_STORAGE__...` environment variables. [`Storage::open`] opens each backend in use
//! once (one sled database, one PostgreSQL pool) and gives each of the ten components its
//! backend: the global `backend` or the component's own `[storage.<component>]` override.
//!
//! Vector embeddings may also use `backend = "hnsw"`: the in-process HNSW engine
//! ([`cairn_stores::HnswVectorStore`]) over memory or sled, one engine per tenant.
//!
//! This is the only crate that reads configuration or the environment. Backends are compiled
//! in by cargo features (`sled`, `postgres`; memory is always there); asking for one that is
//! not compiled in is a `Config` error naming the feature.
//!
//! ```
//! use cairn_registry::{BackendChoice, Component, Storage, from_toml};
//!
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let config = from_toml(r#"
//!     [storage]
//!     backend = "memory"
//! "#)?;
//! let storage = Storage::open(&config).await?;
//! assert_eq!(storage.backend_choice(Component::EventLog), BackendChoice::Memory);
//! # Ok::<(), cairn_core::Error>(())
//! # }).unwrap();
//! ```

pub mod admin;
mod component;
mod config;
mod load;
mod open;
mod storage;

pub use component::{BackendChoice, Component};
pub use config::{BackendSection, CairnConfig, ComponentConfig, StorageConfig};
pub use load::{CONFIG_ENV, from_toml, load};
pub use open::compiled_backends;
pub use storage::{Storage, TenantStorage};
