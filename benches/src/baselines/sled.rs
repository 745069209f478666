//! A raw `sled::Db`: the floor under `cairn-sled`.
//!
//! Opened with the same cache size and background flush interval as the backend it is
//! compared with. In `safe` mode, where the backend returns from a write only after it is on
//! disk, the baseline calls `flush()` after each write call as well.

use std::path::Path;

use bytes::Bytes;
use cairn_core::Key;
use cairn_sled::SledConfig;

use crate::BenchResult;
use crate::harness::Target;

/// A sled database used directly: plain keys in the default tree, blocking calls inline.
#[derive(Debug)]
pub(crate) struct RawSled {
    db: sled::Db,
    flush_each_write: bool,
}

impl RawSled {
    /// Opens a fresh database at `path` configured like a backend opened with `config`.
    pub(crate) fn open(path: &Path, config: &SledConfig) -> BenchResult<RawSled> {
        let interval = config.mode.flush_interval_ms();
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_mb.saturating_mul(1024 * 1024))
            .flush_every_ms(interval)
            .open()?;
        Ok(RawSled {
            db,
            flush_each_write: interval.is_none(),
        })
    }

    /// Writes every pending change to disk and fsyncs.
    pub(crate) fn flush(&self) -> BenchResult<()> {
        self.db.flush()?;
        Ok(())
    }

    fn after_write(&self) -> BenchResult<()> {
        if self.flush_each_write {
            self.flush()?;
        }
        Ok(())
    }
}

impl Target for RawSled {
    async fn get(&mut self, key: &Key) -> BenchResult<Option<usize>> {
        Ok(self.db.get(key.as_bytes())?.map(|value| value.len()))
    }

    async fn set(&mut self, key: &Key, value: Bytes) -> BenchResult<()> {
        self.db.insert(key.as_bytes(), value.as_ref())?;
        self.after_write()
    }

    async fn get_batch(&mut self, keys: &[Key]) -> BenchResult<usize> {
        let mut found = 0;
        for key in keys {
            found += usize::from(self.db.get(key.as_bytes())?.is_some());
        }
        Ok(found)
    }

    async fn set_batch(&mut self, entries: Vec<(Key, Bytes)>) -> BenchResult<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in &entries {
            batch.insert(key.as_bytes(), value.as_ref());
        }
        self.db.apply_batch(batch)?;
        self.after_write()
    }

    async fn scan(&mut self, prefix: &str, limit: usize) -> BenchResult<usize> {
        let mut read = 0;
        for entry in self.db.scan_prefix(prefix).take(limit) {
            entry?;
            read += 1;
        }
        Ok(read)
    }

    async fn list_keys(&mut self, prefix: &str) -> BenchResult<usize> {
        let mut listed = 0;
        for key in self.db.scan_prefix(prefix).keys() {
            key?;
            listed += 1;
        }
        Ok(listed)
    }
}
