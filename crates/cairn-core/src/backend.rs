//! The `StorageBackend` trait and its extension trait.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::characteristics::{StorageBackendType, StorageCharacteristics};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Key, TenantId};
use crate::scan::ScanPage;

/// A byte-level key-value store scoped to one tenant.
///
/// Every handle belongs to exactly one tenant: the one it was opened with
/// ([`TenantId::DEFAULT`] unless the backend's builder says otherwise) or the one passed to
/// [`StorageBackend::tenant`]. No method reads or writes another tenant's keys.
///
/// The trait is object safe and is used as `Arc<dyn StorageBackend>`.
#[async_trait]
pub trait StorageBackend: Send + Sync + Debug {
    /// Reads the value stored under `key`.
    ///
    /// # Behavior
    /// - Returns `Ok(None)` when the key is absent.
    /// - Returns the exact bytes last written, including empty values.
    async fn get(&self, key: &Key) -> Result<Option<Bytes>>;

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// # Behavior
    /// - A following `get` returns `value`.
    /// - A value larger than `characteristics().max_value_bytes` is `InvalidInput` and the
    ///   stored value is unchanged.
    async fn set(&self, key: &Key, value: Bytes) -> Result<()>;

    /// Removes `key`.
    ///
    /// # Behavior
    /// - Returns `true` when the key existed, `false` otherwise; deleting a missing key is not
    ///   an error.
    async fn delete(&self, key: &Key) -> Result<bool>;

    /// Tells whether `key` is present.
    ///
    /// # Behavior
    /// - Returns `true` exactly when `get` would return `Some`.
    async fn exists(&self, key: &Key) -> Result<bool>;

    /// Lists every key that starts with `prefix`, in ascending byte order.
    ///
    /// # Behavior
    /// - The empty prefix lists every key of the tenant.
    /// - `%`, `_` and `\` in the prefix are plain characters.
    /// - A prefix with a NUL or above `max_key_bytes` is `InvalidInput`.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>>;

    /// Reads several keys.
    ///
    /// # Behavior
    /// - Returns one entry per requested key, in request order; `None` for absent keys.
    /// - Repeated keys are answered each time.
    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>>;

    /// Stores several values atomically.
    ///
    /// # Behavior
    /// - Either every entry is written or none is (for example when one value is too large).
    /// - For a key given twice the last entry wins.
    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()>;

    /// Removes several keys atomically.
    ///
    /// # Behavior
    /// - Returns how many distinct keys existed and were removed.
    async fn delete_batch(&self, keys: &[Key]) -> Result<u64>;

    /// Removes every key of this handle's tenant.
    ///
    /// # Behavior
    /// - Keys of other tenants are untouched.
    async fn clear(&self) -> Result<()>;

    /// Applies a [`WriteBatch`] atomically.
    ///
    /// # Behavior
    /// - All checks are evaluated against the current state; if any fails the result is
    ///   `Conflict` and nothing is written.
    /// - Otherwise every operation applies, in order, as one atomic step: a reader sees all
    ///   of them or none, and a crash keeps all or none.
    /// - An empty batch succeeds and does nothing.
    async fn write_batch(&self, batch: WriteBatch) -> Result<()>;

    /// Replaces the value of `key` only if it currently holds `expected`.
    ///
    /// # Behavior
    /// - `expected = None` requires the key to be absent (create-only write).
    /// - `new = None` deletes the key.
    /// - When the current value differs from `expected` the result is `Conflict` and nothing
    ///   changes; of several concurrent swaps from the same value exactly one succeeds.
    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()>;

    /// Reads up to `limit` entries whose keys start with `prefix` and sort after `after`.
    ///
    /// # Behavior
    /// - Entries come in ascending byte order of their keys.
    /// - `after = None` starts at the first key; otherwise only keys strictly greater than
    ///   `after` are returned.
    /// - `next_after` is `Some` exactly when more matching entries follow; passing it as
    ///   `after` continues the scan without gaps or repeats.
    /// - `limit` must be 1 to `max_scan_limit`, else `InvalidInput`.
    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage>;

    /// A handle on the same engine scoped to `tenant`.
    ///
    /// # Behavior
    /// - The new handle shares connections, caches and files with this one.
    /// - It never sees this handle's keys unless both name the same tenant.
    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend>;

    /// The tenant this handle is scoped to.
    fn tenant_id(&self) -> &TenantId;

    /// Which engine this is.
    fn backend_type(&self) -> StorageBackendType;

    /// What the engine guarantees and its limits.
    fn characteristics(&self) -> StorageCharacteristics;
}

/// Conveniences over [`StorageBackend`], available on every backend.
#[async_trait]
pub trait StorageBackendExt: StorageBackend {
    /// Stores `value` only if `key` is absent; `Conflict` when it exists.
    async fn create(&self, key: &Key, value: Bytes) -> Result<()> {
        self.compare_and_swap(key, None, Some(value)).await
    }

    /// Like [`StorageBackend::get`], but a missing key is `NotFound`.
    async fn get_required(&self, key: &Key) -> Result<Bytes> {
        self.get(key).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "key not found").with_context("key", key)
        })
    }

    /// Reads every entry under `prefix` page by page, in key order.
    async fn scan_all(&self, prefix: &str, page_size: usize) -> Result<Vec<(Key, Bytes)>> {
        let mut out = Vec::new();
        let mut after: Option<Key> = None;
        loop {
            let page = self.scan(prefix, after.as_ref(), page_size).await?;
            out.extend(page.entries);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }
}

impl<T: StorageBackend + ?Sized> StorageBackendExt for T {}
