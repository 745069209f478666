//! Configuration of the sled backend.

use std::path::PathBuf;

use serde::Deserialize;

/// When acknowledged writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SledMode {
    /// Flushed in the background every 1000 ms; a crash may lose the last second.
    Fast,
    /// Flushed in the background every 100 ms; a crash may lose the last 100 ms.
    #[default]
    Balanced,
    /// Every write call returns only after its data is flushed and fsynced.
    Safe,
}

impl SledMode {
    /// The background flush interval, `None` when every write flushes itself.
    pub fn flush_interval_ms(self) -> Option<u64> {
        match self {
            SledMode::Fast => Some(1000),
            SledMode::Balanced => Some(100),
            SledMode::Safe => None,
        }
    }
}

/// Settings of a [`SledBackend`](crate::SledBackend).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SledConfig {
    /// Directory of the database; created when missing.
    pub path: PathBuf,
    /// Page cache size in MiB.
    pub cache_capacity_mb: u64,
    /// Durability mode.
    pub mode: SledMode,
    /// Delete the directory when the last handle is dropped (tests and scratch data).
    pub temporary: bool,
}

impl SledConfig {
    /// Defaults (512 MiB cache, `balanced`) at `path`.
    pub fn new(path: impl Into<PathBuf>) -> SledConfig {
        SledConfig {
            path: path.into(),
            ..SledConfig::default()
        }
    }
}

impl Default for SledConfig {
    fn default() -> Self {
        SledConfig {
            path: PathBuf::from("./cairn-data"),
            cache_capacity_mb: 512,
            mode: SledMode::default(),
            temporary: false,
        }
    }
}
