#![deny(missing_docs)]
//! The Cairn storage contract.
//!
//! `cairn-core` defines what every Cairn backend is: the object-safe [`StorageBackend`]
//! trait (a byte-level key-value store scoped to one tenant), validated [`Key`]s and
//! [`TenantId`]s, atomic [`WriteBatch`]es with preconditions, paginated ordered scans, the
//! [`StorageCharacteristics`] a caller can branch on, and the one [`Error`] type. The
//! [`layer`] module wraps any backend in opt-in retry and timeout behaviour; [`migrating`]
//! moves a tenant between two backends while it is in use.
//!
//! It is not a backend and names no database driver: the engines live in `cairn-memory`,
//! `cairn-sled` and `cairn-postgres`.
//!
//! Limits shared by every backend: keys up to [`MAX_KEY_BYTES`] bytes, values up to
//! [`MAX_VALUE_BYTES`], batches up to [`MAX_BATCH_OPS`] operations, scan pages up to
//! [`MAX_SCAN_LIMIT`] entries.
//!
//! ```
//! use cairn_core::{Key, TenantId, WriteBatch, ErrorKind};
//!
//! let key = Key::new("agents/7/state")?;
//! let batch = WriteBatch::new()
//!     .check(key.clone(), None)
//!     .put(key, &b"{}"[..]);
//! assert_eq!(batch.ops().len(), 1);
//! assert_eq!(Key::new("").unwrap_err().kind(), ErrorKind::InvalidInput);
//! assert!(TenantId::new("acme").is_ok());
//! # Ok::<(), cairn_core::Error>(())
//! ```

mod backend;
mod batch;
mod characteristics;
mod error;
mod key;
pub mod layer;
pub mod migrating;
mod scan;

pub use backend::{StorageBackend, StorageBackendExt};
pub use batch::{
    BatchOp, Check, MAX_BATCH_OPS, MAX_VALUE_BYTES, WriteBatch, check_batch_len, check_value,
};
pub use bytes::Bytes;
pub use characteristics::{StorageBackendType, StorageCharacteristics};
pub use error::{Error, ErrorKind, Result};
pub use key::{Key, MAX_KEY_BYTES, MAX_TENANT_BYTES, TenantId, check_prefix, prefix_upper_bound};
pub use scan::{MAX_SCAN_LIMIT, ScanPage, check_scan_limit};
