//! What a backend is and what it can do.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// The engines Cairn ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageBackendType {
    /// In-process maps; nothing survives the process.
    Memory,
    /// Embedded sled database in a local directory.
    Sled,
    /// PostgreSQL server.
    Postgres,
}

impl StorageBackendType {
    /// Every backend type, in the order names are listed in errors.
    pub const ALL: [StorageBackendType; 3] = [
        StorageBackendType::Memory,
        StorageBackendType::Sled,
        StorageBackendType::Postgres,
    ];

    /// The name used in configuration: `memory`, `sled` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageBackendType::Memory => "memory",
            StorageBackendType::Sled => "sled",
            StorageBackendType::Postgres => "postgres",
        }
    }
}

impl fmt::Display for StorageBackendType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StorageBackendType {
    type Err = Error;

    /// Parses a configuration name; an unknown name is [`ErrorKind::Config`] listing the valid ones.
    fn from_str(s: &str) -> Result<Self, Error> {
        StorageBackendType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = StorageBackendType::ALL.iter().map(|t| t.as_str()).collect();
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "unknown backend {s:?}; valid backends: {}",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// Plain facts about a backend that a caller can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageCharacteristics {
    /// Data outlives the process.
    pub persistent: bool,
    /// Every acknowledged write survives a crash of the process or machine.
    pub durable_on_ack: bool,
    /// Several processes can use the same data at once.
    pub shared_across_processes: bool,
    /// `write_batch`, `set_batch` and `delete_batch` apply all or nothing.
    pub atomic_batches: bool,
    /// `compare_and_swap` and batch checks are supported.
    pub conditional_writes: bool,
    /// `scan` and `list_keys` return keys in byte order.
    pub ordered_scans: bool,
    /// Tenant isolation is enforced by the engine itself (row-level security), not only by
    /// key prefixes inside Cairn.
    pub engine_enforced_tenancy: bool,
    /// Longest key in bytes.
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Most operations in one batch.
    pub max_batch_ops: usize,
    /// Largest scan page.
    pub max_scan_limit: usize,
}
