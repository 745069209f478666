#![deny(missing_docs)]
//! Embedded, persistent Cairn backend on [sled](https://docs.rs/sled/0.34).
//!
//! [`SledBackend`] stores every tenant's keys in one sled tree, each key prefixed by its
//! tenant (see the `encoding` module), so scans are range reads and tenants never meet.
//! Batches without checks use sled's atomic batches; batches with checks and batch deletes use
//! sled transactions.
//!
//! Durability follows [`SledMode`]: `safe` returns from a write only after `fsync`;
//! `balanced` and `fast` flush in the background every 100 ms / 1000 ms, so a crash may lose
//! that window. Point operations and small batches run inline (they touch sled's page cache);
//! the fsync of `safe` mode runs on sled's own thread pool, and operations whose work grows
//! with the data (`list_keys`, `clear`, batches above 256 operations) run on tokio's blocking
//! pool, so no async worker waits on the disk for long.
//!
//! It is not shared across processes: sled locks its directory.
//!
//! ```
//! use cairn_core::{Bytes, Key, StorageBackend};
//! use cairn_sled::{SledBackend, SledConfig, SledMode};
//!
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let mut config = SledConfig::new(dir.path().join("db"));
//! config.mode = SledMode::Safe;
//! let storage = SledBackend::open(config).await?;
//! storage.set(&Key::new("k")?, Bytes::from_static(b"v")).await?;
//! assert_eq!(storage.get(&Key::new("k")?).await?, Some(Bytes::from_static(b"v")));
//! # Ok::<(), cairn_core::Error>(())
//! # }).unwrap();
//! ```

mod config;
mod encoding;
mod error;
mod flusher;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{
    BatchOp, Bytes, Check, Error, ErrorKind, Key, MAX_BATCH_OPS, MAX_KEY_BYTES, MAX_SCAN_LIMIT,
    MAX_VALUE_BYTES, Result, ScanPage, StorageBackend, StorageBackendType, StorageCharacteristics,
    TenantId, WriteBatch, check_batch_len, check_prefix, check_scan_limit, check_value,
};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

pub use crate::config::{SledConfig, SledMode};
use crate::encoding::{decode, encode, tenant_prefix, upper_bound};
use crate::error::{from_join, from_sled};
use crate::flusher::Flusher;

/// Name of the sled tree holding every tenant's keys.
const KV_TREE: &str = "cairn_kv";

/// Keys removed per atomic batch while clearing a tenant.
const CLEAR_CHUNK: usize = 10_000;

/// Batches up to this many operations run inline; larger ones on the blocking pool. A small
/// batch costs a few microseconds, less than the hand-off to another thread.
const INLINE_BATCH_OPS: usize = 256;

#[derive(Debug)]
struct Engine {
    /// Declared first so it stops (and drops its handle on the database) before the rest.
    flusher: Option<Flusher>,
    db: sled::Db,
    tree: sled::Tree,
    mode: SledMode,
}

/// A sled database; clones and [`StorageBackend::tenant`] handles share it.
#[derive(Debug, Clone)]
pub struct SledBackend {
    engine: Arc<Engine>,
    tenant: TenantId,
    prefix: Vec<u8>,
}

/// Why a sled transaction stopped.
#[derive(Debug)]
enum Abort {
    CheckFailed,
}

impl SledBackend {
    /// Opens (or creates) the database at `config.path`, scoped to the default tenant.
    ///
    /// A directory lock still held by a handle that was just dropped (sled's background threads
    /// release it a moment later) is waited for, up to 2 seconds.
    ///
    /// # Errors
    /// `Backend` when the directory cannot be opened (for example another process holds it),
    /// `Corruption` when sled finds damaged files.
    pub async fn open(config: SledConfig) -> Result<SledBackend> {
        let engine = tokio::task::spawn_blocking(move || open_engine(&config))
            .await
            .map_err(from_join)??;
        let tenant = TenantId::default_tenant();
        Ok(SledBackend {
            prefix: tenant_prefix(&tenant),
            engine: Arc::new(engine),
            tenant,
        })
    }

    /// Flushes every pending write to disk and fsyncs.
    ///
    /// # Errors
    /// `Backend` when the write or fsync fails.
    pub async fn flush(&self) -> Result<()> {
        self.engine.db.flush_async().await.map_err(from_sled)?;
        Ok(())
    }

    /// Every tenant holding at least one key, in byte order of their ids. An administrative
    /// read across tenants, for export and statistics tools: it seeks once per tenant.
    ///
    /// # Errors
    /// `Backend` when sled fails; `Corruption` for a stored key that names no valid tenant.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        self.blocking(|this| {
            let mut tenants = Vec::new();
            let mut from = Vec::new();
            while let Some(entry) = this.engine.tree.range(from..).next() {
                let (key, _) = entry.map_err(from_sled)?;
                let len = key.first().map_or(0, |&len| usize::from(len));
                let tenant = key
                    .get(1..1 + len)
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .and_then(|id| TenantId::new(id).ok())
                    .ok_or_else(|| Error::corruption("stored key names no valid tenant"))?;
                from = upper_bound(&key[..1 + len]);
                tenants.push(tenant);
            }
            tenants.sort();
            Ok(tenants)
        })
        .await
    }

    /// Makes a finished write durable when the mode promises it.
    async fn after_write(&self) -> Result<()> {
        match self.engine.mode {
            SledMode::Safe => self.flush().await,
            SledMode::Balanced | SledMode::Fast => match &self.engine.flusher {
                Some(flusher) if flusher.failed() => Err(Error::new(
                    ErrorKind::Backend,
                    "the background flush failed; writes are no longer made durable",
                )),
                _ => Ok(()),
            },
        }
    }

    fn key(&self, key: &Key) -> Vec<u8> {
        encode(&self.prefix, key.as_str())
    }

    /// Runs a batch of `ops` operations: inline when small, else on the blocking pool.
    async fn batch<T, F>(&self, ops: usize, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SledBackend) -> Result<T> + Send + 'static,
    {
        if ops <= INLINE_BATCH_OPS {
            work(self)
        } else {
            self.blocking(work).await
        }
    }

    /// Runs `work` on the blocking pool with a clone of this handle.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SledBackend) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(from_join)?
    }

    fn read_range(&self, start: Vec<u8>, end: Vec<u8>, limit: usize) -> Result<Vec<(Key, Bytes)>> {
        self.engine
            .tree
            .range(start..end)
            .take(limit)
            .map(|entry| {
                let (k, v) = entry.map_err(from_sled)?;
                Ok((decode(&self.prefix, &k)?, Bytes::copy_from_slice(&v)))
            })
            .collect()
    }

    fn transaction<T>(
        &self,
        body: impl Fn(&TransactionalTree) -> std::result::Result<T, ConflictableTransactionError<Abort>>,
    ) -> Result<T> {
        self.engine.tree.transaction(body).map_err(|e| match e {
            TransactionError::Abort(Abort::CheckFailed) => {
                Error::conflict("a write batch check did not hold")
            }
            TransactionError::Storage(e) => from_sled(e),
        })
    }
}

/// How long `open` waits for the directory lock held by a handle of this process that was just
/// dropped: sled's background threads release it a moment after the last handle goes.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Part of the message sled gives when another handle holds the directory lock.
const LOCK_HELD: &str = "could not acquire lock";

fn open_engine(config: &SledConfig) -> Result<Engine> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let db = loop {
        let opened = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_capacity_mb.saturating_mul(1024 * 1024))
            .flush_every_ms(config.mode.flush_interval_ms())
            .temporary(config.temporary)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains(LOCK_HELD) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => {
                break other
                    .map_err(|e| from_sled(e).with_context("path", config.path.display()))?;
            }
        }
    };
    let tree = db.open_tree(KV_TREE).map_err(from_sled)?;
    let flusher = match config.mode.flush_interval_ms() {
        Some(ms) => Some(
            Flusher::start(db.clone(), Duration::from_millis(ms)).map_err(|e| {
                Error::new(ErrorKind::Backend, "cannot start the flush thread").with_source(e)
            })?,
        ),
        None => None,
    };
    Ok(Engine {
        flusher,
        db,
        tree,
        mode: config.mode,
    })
}

fn checks_hold(
    tx: &TransactionalTree,
    prefix: &[u8],
    checks: &[Check],
) -> std::result::Result<bool, ConflictableTransactionError<Abort>> {
    for check in checks {
        let current = tx.get(encode(prefix, check.key.as_str()))?;
        if current.as_deref() != check.expected.as_deref() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[async_trait]
impl StorageBackend for SledBackend {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let value = self.engine.tree.get(self.key(key)).map_err(from_sled)?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        check_value(&value)?;
        self.engine
            .tree
            .insert(self.key(key), value.as_ref())
            .map_err(from_sled)?;
        self.after_write().await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let existed = self
            .engine
            .tree
            .remove(self.key(key))
            .map_err(from_sled)?
            .is_some();
        if existed {
            self.after_write().await?;
        }
        Ok(existed)
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        self.engine
            .tree
            .contains_key(self.key(key))
            .map_err(from_sled)
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        check_prefix(prefix)?;
        let start = encode(&self.prefix, prefix);
        self.blocking(move |this| {
            this.engine
                .tree
                .range(start.clone()..upper_bound(&start))
                .keys()
                .map(|k| decode(&this.prefix, &k.map_err(from_sled)?))
                .collect()
        })
        .await
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        check_batch_len(keys.len())?;
        let encoded: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        self.batch(keys.len(), move |this| {
            encoded
                .iter()
                .map(|k| {
                    let value = this.engine.tree.get(k).map_err(from_sled)?;
                    Ok(value.map(|v| Bytes::copy_from_slice(&v)))
                })
                .collect()
        })
        .await
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        check_batch_len(entries.len())?;
        let mut batch = sled::Batch::default();
        for (key, value) in &entries {
            check_value(value)?;
            batch.insert(self.key(key), value.as_ref());
        }
        self.batch(entries.len(), move |this| {
            this.engine.tree.apply_batch(batch).map_err(from_sled)
        })
        .await?;
        self.after_write().await
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        check_batch_len(keys.len())?;
        let mut encoded: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        encoded.sort_unstable();
        encoded.dedup();
        let removed = self
            .batch(encoded.len(), move |this| {
                this.transaction(|tx| {
                    let mut removed = 0u64;
                    for key in &encoded {
                        removed += u64::from(tx.remove(key.as_slice())?.is_some());
                    }
                    Ok(removed)
                })
            })
            .await?;
        if removed > 0 {
            self.after_write().await?;
        }
        Ok(removed)
    }

    async fn clear(&self) -> Result<()> {
        let start = self.prefix.clone();
        self.blocking(move |this| {
            loop {
                let mut batch = sled::Batch::default();
                let mut count = 0;
                for key in this
                    .engine
                    .tree
                    .range(start.clone()..upper_bound(&start))
                    .keys()
                    .take(CLEAR_CHUNK)
                {
                    batch.remove(key.map_err(from_sled)?);
                    count += 1;
                }
                if count == 0 {
                    return Ok(());
                }
                this.engine.tree.apply_batch(batch).map_err(from_sled)?;
            }
        })
        .await?;
        self.after_write().await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        let (ops, checks) = batch.into_parts();
        let ops: Vec<(Vec<u8>, Option<Bytes>)> = ops
            .into_iter()
            .map(|op| match op {
                BatchOp::Put { key, value } => (self.key(&key), Some(value)),
                BatchOp::Delete { key } => (self.key(&key), None),
            })
            .collect();
        self.batch(ops.len() + checks.len(), move |this| {
            if checks.is_empty() {
                let mut batch = sled::Batch::default();
                for (key, value) in &ops {
                    match value {
                        Some(value) => batch.insert(key.as_slice(), value.as_ref()),
                        None => batch.remove(key.as_slice()),
                    }
                }
                return this.engine.tree.apply_batch(batch).map_err(from_sled);
            }
            this.transaction(|tx| {
                if !checks_hold(tx, &this.prefix, &checks)? {
                    return Err(ConflictableTransactionError::Abort(Abort::CheckFailed));
                }
                for (key, value) in &ops {
                    match value {
                        Some(value) => tx.insert(key.as_slice(), value.as_ref())?,
                        None => tx.remove(key.as_slice())?,
                    };
                }
                Ok(())
            })
        })
        .await?;
        self.after_write().await
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()> {
        if let Some(value) = &new {
            check_value(value)?;
        }
        let swapped = self
            .engine
            .tree
            .compare_and_swap(self.key(key), expected.as_deref(), new.as_deref())
            .map_err(from_sled)?;
        if swapped.is_err() {
            return Err(
                Error::conflict("current value differs from the expected one")
                    .with_context("key", key),
            );
        }
        self.after_write().await
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        check_prefix(prefix)?;
        check_scan_limit(limit)?;
        let lower = encode(&self.prefix, prefix);
        let end = upper_bound(&lower);
        let start = match after {
            // The smallest encoding strictly greater than `after`: append a NUL byte, which no
            // key contains.
            Some(after) if after.as_str() >= prefix => {
                let mut start = encode(&self.prefix, after.as_str());
                start.push(0);
                start
            }
            _ => lower,
        };
        if start >= end {
            return Ok(ScanPage::default());
        }
        let entries = self.read_range(start, end, limit + 1)?;
        Ok(ScanPage::from_overfetched(entries, limit))
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(SledBackend {
            engine: self.engine.clone(),
            tenant: tenant.clone(),
            prefix: tenant_prefix(tenant),
        })
    }

    fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    fn backend_type(&self) -> StorageBackendType {
        StorageBackendType::Sled
    }

    fn characteristics(&self) -> StorageCharacteristics {
        StorageCharacteristics {
            persistent: true,
            durable_on_ack: self.engine.mode == SledMode::Safe,
            shared_across_processes: false,
            atomic_batches: true,
            conditional_writes: true,
            ordered_scans: true,
            engine_enforced_tenancy: false,
            max_key_bytes: MAX_KEY_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            max_batch_ops: MAX_BATCH_OPS,
            max_scan_limit: MAX_SCAN_LIMIT,
        }
    }
}
