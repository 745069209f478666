#![deny(missing_docs)]
//! In-memory Cairn backend.
//!
//! [`MemoryBackend`] keeps each tenant's entries in its own table inside the process: a hash
//! map (foldhash) for point reads and writes plus an ordered key index for prefix scans, both
//! behind one lock per tenant. Batches, checks and compare-and-swap run under that lock, so
//! they are atomic.
//!
//! It is not persistent: everything is gone when the last handle is dropped. Use it for tests
//! and for components whose data may be rebuilt.
//!
//! ```
//! use std::sync::Arc;
//! use cairn_core::{Bytes, Key, StorageBackend, TenantId};
//! use cairn_memory::MemoryBackend;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let storage: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
//! let acme = storage.tenant(&TenantId::new("acme")?);
//! acme.set(&Key::new("greeting")?, Bytes::from_static(b"hello")).await?;
//! assert_eq!(storage.get(&Key::new("greeting")?).await?, None);
//! # Ok::<(), cairn_core::Error>(())
//! # }).unwrap();
//! ```

mod table;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, Key, MAX_BATCH_OPS, MAX_KEY_BYTES, MAX_SCAN_LIMIT, MAX_VALUE_BYTES, Result,
    ScanPage, StorageBackend, StorageBackendType, StorageCharacteristics, TenantId, WriteBatch,
    check_batch_len, check_prefix, check_scan_limit, check_value,
};
use parking_lot::RwLock;

use crate::table::Table;

type Tenants = RwLock<HashMap<TenantId, Arc<RwLock<Table>>>>;

/// An in-process backend; clones and [`StorageBackend::tenant`] handles share the same data.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    tenants: Arc<Tenants>,
    tenant: TenantId,
    table: Arc<RwLock<Table>>,
}

impl MemoryBackend {
    /// An empty backend scoped to the default tenant.
    pub fn new() -> MemoryBackend {
        let tenants = Arc::new(Tenants::default());
        let tenant = TenantId::default_tenant();
        let table = table_for(&tenants, &tenant);
        MemoryBackend {
            tenants,
            tenant,
            table,
        }
    }
}

impl MemoryBackend {
    /// Every tenant holding at least one key, in byte order of their ids. An administrative
    /// read across tenants, for export and statistics tools.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> = self
            .tenants
            .read()
            .iter()
            .filter(|(_, table)| !table.read().is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        tenants.sort();
        tenants
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

fn table_for(tenants: &Tenants, tenant: &TenantId) -> Arc<RwLock<Table>> {
    if let Some(table) = tenants.read().get(tenant) {
        return table.clone();
    }
    tenants.write().entry(tenant.clone()).or_default().clone()
}

#[async_trait]
impl StorageBackend for MemoryBackend {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        Ok(self.table.read().get(key.as_str()).cloned())
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        check_value(&value)?;
        self.table.write().insert(key, value);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        Ok(self.table.write().remove(key.as_str()))
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        Ok(self.table.read().contains(key.as_str()))
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        check_prefix(prefix)?;
        Ok(self.table.read().keys(prefix))
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        check_batch_len(keys.len())?;
        let table = self.table.read();
        Ok(keys
            .iter()
            .map(|k| table.get(k.as_str()).cloned())
            .collect())
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        check_batch_len(entries.len())?;
        for (_, value) in &entries {
            check_value(value)?;
        }
        let mut table = self.table.write();
        for (key, value) in entries {
            table.insert(&key, value);
        }
        Ok(())
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        check_batch_len(keys.len())?;
        let mut table = self.table.write();
        Ok(keys
            .iter()
            .map(|k| u64::from(table.remove(k.as_str())))
            .sum())
    }

    async fn clear(&self) -> Result<()> {
        self.table.write().clear();
        Ok(())
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        batch.validate()?;
        let (ops, checks) = batch.into_parts();
        let mut table = self.table.write();
        if !table.checks_hold(&checks) {
            return Err(Error::conflict("a write batch check did not hold"));
        }
        table.apply(ops);
        Ok(())
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
        let mut table = self.table.write();
        if table.get(key.as_str()) != expected.as_ref() {
            return Err(
                Error::conflict("current value differs from the expected one")
                    .with_context("key", key),
            );
        }
        match new {
            Some(value) => table.insert(key, value),
            None => {
                table.remove(key.as_str());
            }
        }
        Ok(())
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        check_prefix(prefix)?;
        check_scan_limit(limit)?;
        let entries = self
            .table
            .read()
            .scan(prefix, after.map(Key::as_str), limit + 1);
        Ok(ScanPage::from_overfetched(entries, limit))
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(MemoryBackend {
            tenants: self.tenants.clone(),
            tenant: tenant.clone(),
            table: table_for(&self.tenants, tenant),
        })
    }

    fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    fn backend_type(&self) -> StorageBackendType {
        StorageBackendType::Memory
    }

    fn characteristics(&self) -> StorageCharacteristics {
        StorageCharacteristics {
            persistent: false,
            durable_on_ack: false,
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
