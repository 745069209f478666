//! Moving a live tenant from one backend to another without stopping its writers:
//! [`MigratingBackend`].
//!
//! The move goes through four [`MigrationPhase`]s, switched at run time with
//! [`MigratingBackend::set_phase`] (every tenant handle made from one migrating backend shares
//! its phase):
//!
//! | phase | writes go to | reads come from | decides conditional writes |
//! |---|---|---|---|
//! | [`DualWrite`](MigrationPhase::DualWrite) | old, then new | old | old |
//! | [`ReadNewFallback`](MigrationPhase::ReadNewFallback) | new, then old | new, else old | new |
//! | [`ReadNew`](MigrationPhase::ReadNew) | new, then old | new | new |
//! | [`NewOnly`](MigrationPhase::NewOnly) | new | new | new |
//!
//! The usual run: start in `DualWrite` (from now on every write reaches both sides), run
//! [`MigratingBackend::backfill`] to copy what only the old side has, move to
//! `ReadNewFallback` and `ReadNew` while watching for errors (the old side still receives every
//! write, so moving back is safe), then to `NewOnly` and retire the old backend. Leaving
//! `NewOnly` is refused: the old side has missed writes since.
//!
//! # Consistency
//! - Every write takes per-key locks (256 stripes, hashed by tenant and key) for its keys
//!   and applies to the deciding side first; only if that succeeds does the other side get
//!   the same effect, unconditionally. Two writers of one key therefore apply in the same order
//!   on both sides, and a backfill never overwrites a newer write or resurrects a deleted key.
//!   The locks are per process: every writer of the tenant must go through migrating backends
//!   made from one [`MigratingBackend::new`].
//! - If the second side fails, the call returns that error (with the context
//!   `migration_side = secondary`) although the first side applied it; repeating the call (puts
//!   and deletes are idempotent) or a backfill brings the sides together again.
//! - `ReadNewFallback` merges both sides in `get`, `exists`, `get_batch`, `list_keys` and
//!   `scan`, the new side's value winning.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Mutex, MutexGuard};

use crate::backend::StorageBackend;
use crate::batch::{BatchOp, WriteBatch};
use crate::characteristics::{StorageBackendType, StorageCharacteristics};
use crate::error::{Error, Result};
use crate::key::{Key, TenantId};
use crate::scan::ScanPage;

/// Number of lock stripes shared by the handles of one migration.
const STRIPES: usize = 256;

/// Where a [`MigratingBackend`] reads and writes; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MigrationPhase {
    /// Writes to both sides (old first), reads from the old side.
    DualWrite,
    /// Writes to both sides (new first), reads from the new side, falling back to the old.
    ReadNewFallback,
    /// Writes to both sides (new first), reads from the new side only.
    ReadNew,
    /// The new side only.
    NewOnly,
}

impl MigrationPhase {
    /// Every phase, in migration order.
    pub const ALL: [MigrationPhase; 4] = [
        MigrationPhase::DualWrite,
        MigrationPhase::ReadNewFallback,
        MigrationPhase::ReadNew,
        MigrationPhase::NewOnly,
    ];

    fn from_index(index: u8) -> MigrationPhase {
        MigrationPhase::ALL[usize::from(index).min(MigrationPhase::ALL.len() - 1)]
    }

    fn index(self) -> u8 {
        match self {
            MigrationPhase::DualWrite => 0,
            MigrationPhase::ReadNewFallback => 1,
            MigrationPhase::ReadNew => 2,
            MigrationPhase::NewOnly => 3,
        }
    }
}

/// What one [`MigratingBackend::backfill`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Entries of the old side looked at.
    pub scanned: u64,
    /// Entries copied because the new side lacked them.
    pub copied: u64,
}

/// State shared by every tenant handle of one migration.
struct Shared {
    phase: AtomicU8,
    stripes: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

/// Which keys a write locks.
enum Locks<'a> {
    Keys(Vec<&'a Key>),
    All,
}

/// A [`StorageBackend`] that moves a tenant from an `old` to a `new` backend while it is in
/// use; see the [module docs](self) for the phases and guarantees.
#[derive(Clone)]
pub struct MigratingBackend {
    old: Arc<dyn StorageBackend>,
    new: Arc<dyn StorageBackend>,
    shared: Arc<Shared>,
}

impl fmt::Debug for MigratingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigratingBackend")
            .field("tenant", self.old.tenant_id())
            .field("phase", &self.phase())
            .field("old", &self.old.backend_type())
            .field("new", &self.new.backend_type())
            .finish_non_exhaustive()
    }
}

impl MigratingBackend {
    /// Starts moving `old`'s tenant to `new`, in [`MigrationPhase::DualWrite`].
    ///
    /// # Errors
    /// `InvalidInput` when the two handles are scoped to different tenants.
    pub fn new(
        old: Arc<dyn StorageBackend>,
        new: Arc<dyn StorageBackend>,
    ) -> Result<MigratingBackend> {
        if old.tenant_id() != new.tenant_id() {
            return Err(Error::invalid_input(
                "the old and new backends of a migration must be scoped to the same tenant",
            )
            .with_context("old_tenant", old.tenant_id().as_str())
            .with_context("new_tenant", new.tenant_id().as_str()));
        }
        Ok(MigratingBackend {
            old,
            new,
            shared: Arc::new(Shared {
                phase: AtomicU8::new(MigrationPhase::DualWrite.index()),
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                hasher: std::collections::hash_map::RandomState::new(),
            }),
        })
    }

    /// The current phase.
    pub fn phase(&self) -> MigrationPhase {
        MigrationPhase::from_index(self.shared.phase.load(Ordering::SeqCst))
    }

    /// Switches every handle of this migration to `phase`. Calls already running finish in
    /// the phase they started in.
    ///
    /// # Errors
    /// `InvalidInput` when leaving [`MigrationPhase::NewOnly`]: the old side has missed writes.
    pub fn set_phase(&self, phase: MigrationPhase) -> Result<()> {
        let new_index = phase.index();
        self.shared
            .phase
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| {
                let leaving_new_only =
                    current == MigrationPhase::NewOnly.index() && new_index != current;
                (!leaving_new_only).then_some(new_index)
            })
            .map(drop)
            .map_err(|_| {
                Error::invalid_input(
                    "a migration in the new-only phase cannot go back: the old backend has \
                     missed writes since",
                )
            })
    }

    /// The old backend, scoped to this handle's tenant.
    pub fn old_side(&self) -> &Arc<dyn StorageBackend> {
        &self.old
    }

    /// The new backend, scoped to this handle's tenant.
    pub fn new_side(&self) -> &Arc<dyn StorageBackend> {
        &self.new
    }

    /// Copies every entry under `prefix` that the old side has and the new side lacks into
    /// the new side, `page_size` keys at a time, for this handle's tenant.
    ///
    /// # Behavior
    /// - Safe while writers run: each page holds the locks of its keys and re-reads both sides
    ///   under them, so a concurrent write is never overwritten and a concurrently deleted key
    ///   never comes back.
    /// - Running it again copies only what is still missing.
    ///
    /// # Errors
    /// `InvalidInput` for a bad prefix or page size, or when the migration is (or gets, while
    /// copying) in [`MigrationPhase::NewOnly`], where the old side no longer sees deletes; the
    /// backends' errors.
    pub async fn backfill(&self, prefix: &str, page_size: usize) -> Result<BackfillReport> {
        let mut report = BackfillReport::default();
        let mut after: Option<Key> = None;
        loop {
            let page = self.old.scan(prefix, after.as_ref(), page_size).await?;
            let keys: Vec<Key> = page.entries.into_iter().map(|(key, _)| key).collect();
            if !keys.is_empty() {
                let _locks = self.lock(Locks::Keys(keys.iter().collect())).await;
                if self.phase() == MigrationPhase::NewOnly {
                    return Err(Error::invalid_input(
                        "backfill refused: the migration is in the new-only phase, where the \
                         old backend no longer sees deletes",
                    ));
                }
                let scanned = keys.len() as u64;
                let old_values = self.old.get_batch(&keys).await?;
                let new_values = self.new.get_batch(&keys).await?;
                let missing: Vec<(Key, Bytes)> = keys
                    .into_iter()
                    .zip(old_values.into_iter().zip(new_values))
                    .filter_map(|(key, values)| match values {
                        (Some(value), None) => Some((key, value)),
                        _ => None,
                    })
                    .collect();
                report.scanned += scanned;
                report.copied += missing.len() as u64;
                self.new.set_batch(missing).await?;
            }
            match page.next_after {
                Some(last) => after = Some(last),
                None => return Ok(report),
            }
        }
    }

    /// Locks the stripes of `locks`, in stripe order (so batches never deadlock).
    async fn lock(&self, locks: Locks<'_>) -> Vec<MutexGuard<'_, ()>> {
        let stripes: Vec<usize> = match locks {
            Locks::All => (0..self.shared.stripes.len()).collect(),
            Locks::Keys(keys) => {
                let tenant = self.old.tenant_id().as_str();
                let mut stripes: Vec<usize> = keys
                    .into_iter()
                    .map(|key| {
                        let hash = self.shared.hasher.hash_one((tenant, key.as_str()));
                        (hash % self.shared.stripes.len() as u64) as usize
                    })
                    .collect();
                stripes.sort_unstable();
                stripes.dedup();
                stripes
            }
        };
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.shared.stripes[stripe].lock().await);
        }
        guards
    }

    /// Runs a write: `op` on the deciding side (`primary = true`), then, when the phase writes
    /// both sides and the first succeeded, on the other (`primary = false`), holding `locks`.
    /// Returns the deciding side's result.
    async fn write<T, F, Fut>(&self, locks: Locks<'_>, op: F) -> Result<T>
    where
        F: Fn(Arc<dyn StorageBackend>, bool) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let _locks = self.lock(locks).await;
        let (primary, secondary) = match self.phase() {
            MigrationPhase::DualWrite => (&self.old, Some(&self.new)),
            MigrationPhase::ReadNewFallback | MigrationPhase::ReadNew => {
                (&self.new, Some(&self.old))
            }
            MigrationPhase::NewOnly => (&self.new, None),
        };
        let value = op(Arc::clone(primary), true).await?;
        if let Some(secondary) = secondary {
            op(Arc::clone(secondary), false)
                .await
                .map_err(|err| err.with_context("migration_side", "secondary"))?;
        }
        Ok(value)
    }

    /// The side reads come from, and whether they fall back to the old side.
    fn read_side(&self) -> (&Arc<dyn StorageBackend>, bool) {
        match self.phase() {
            MigrationPhase::DualWrite => (&self.old, false),
            MigrationPhase::ReadNewFallback => (&self.new, true),
            MigrationPhase::ReadNew | MigrationPhase::NewOnly => (&self.new, false),
        }
    }
}

/// `a` and `b` merged by key, `a`'s value winning.
fn merge(a: Vec<(Key, Bytes)>, b: Vec<(Key, Bytes)>) -> Vec<(Key, Bytes)> {
    let mut merged: BTreeMap<Key, Bytes> = b.into_iter().collect();
    merged.extend(a);
    merged.into_iter().collect()
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl StorageBackend for MigratingBackend {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let (side, fallback) = self.read_side();
        match side.get(key).await? {
            None if fallback => self.old.get(key).await,
            found => Ok(found),
        }
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        self.write(Locks::Keys(vec![key]), |side, _| {
            let value = value.clone();
            async move { side.set(key, value).await }
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.write(Locks::Keys(vec![key]), |side, _| async move {
            side.delete(key).await
        })
        .await
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        let (side, fallback) = self.read_side();
        if side.exists(key).await? {
            return Ok(true);
        }
        if fallback {
            return self.old.exists(key).await;
        }
        Ok(false)
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        let (side, fallback) = self.read_side();
        let keys = side.list_keys(prefix).await?;
        if !fallback {
            return Ok(keys);
        }
        let mut merged: std::collections::BTreeSet<Key> = keys.into_iter().collect();
        merged.extend(self.old.list_keys(prefix).await?);
        Ok(merged.into_iter().collect())
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let (side, fallback) = self.read_side();
        let mut values = side.get_batch(keys).await?;
        if !fallback {
            return Ok(values);
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let missing_keys: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
        let old_values = self.old.get_batch(&missing_keys).await?;
        for (i, value) in missing.into_iter().zip(old_values) {
            values[i] = value;
        }
        Ok(values)
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        self.write(
            Locks::Keys(entries.iter().map(|(key, _)| key).collect()),
            |side, _| {
                let entries = entries.clone();
                async move { side.set_batch(entries).await }
            },
        )
        .await
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        self.write(Locks::Keys(keys.iter().collect()), |side, _| async move {
            side.delete_batch(keys).await
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.write(Locks::All, |side, _| async move { side.clear().await })
            .await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        let keys = batch
            .ops()
            .iter()
            .map(|op| op.key())
            .chain(batch.checks().iter().map(|check| &check.key))
            .collect();
        // The deciding side checks; the other gets the writes only.
        let writes = batch
            .ops()
            .iter()
            .cloned()
            .fold(WriteBatch::new(), |b, op| match op {
                BatchOp::Put { key, value } => b.put(key, value),
                BatchOp::Delete { key } => b.delete(key),
            });
        self.write(Locks::Keys(keys), |side, primary| {
            let batch = if primary {
                batch.clone()
            } else {
                writes.clone()
            };
            async move { side.write_batch(batch).await }
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()> {
        self.write(Locks::Keys(vec![key]), |side, primary| {
            let (expected, new) = (expected.clone(), new.clone());
            async move {
                match (primary, new) {
                    (true, new) => side.compare_and_swap(key, expected, new).await,
                    (false, Some(value)) => side.set(key, value).await,
                    (false, None) => side.delete(key).await.map(drop),
                }
            }
        })
        .await
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        let (side, fallback) = self.read_side();
        let page = side.scan(prefix, after, limit).await?;
        if !fallback {
            return Ok(page);
        }
        let old = self.old.scan(prefix, after, limit).await?;
        // A side with more entries than its page covers bounds what the merge may return.
        let bound = [&page, &old]
            .into_iter()
            .filter(|p| p.next_after.is_some())
            .filter_map(|p| p.entries.last().map(|(key, _)| key.clone()))
            .min();
        let more = page.next_after.is_some() || old.next_after.is_some();
        let mut entries = merge(page.entries, old.entries);
        if let Some(bound) = &bound {
            entries.retain(|(key, _)| key <= bound);
        }
        let truncated = entries.len() > limit;
        entries.truncate(limit);
        let next_after = (more || truncated)
            .then(|| entries.last().map(|(key, _)| key.clone()))
            .flatten();
        Ok(ScanPage {
            entries,
            next_after,
        })
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(MigratingBackend {
            old: self.old.tenant(tenant),
            new: self.new.tenant(tenant),
            shared: Arc::clone(&self.shared),
        })
    }

    fn tenant_id(&self) -> &TenantId {
        self.old.tenant_id()
    }

    /// The type of the side that decides writes in the current phase.
    fn backend_type(&self) -> StorageBackendType {
        match self.phase() {
            MigrationPhase::DualWrite => self.old.backend_type(),
            _ => self.new.backend_type(),
        }
    }

    /// While both sides are written, what both guarantee (each flag of both, the smaller of
    /// each limit); in [`MigrationPhase::NewOnly`] the new side's.
    fn characteristics(&self) -> StorageCharacteristics {
        let b = self.new.characteristics();
        if self.phase() == MigrationPhase::NewOnly {
            return b;
        }
        let a = self.old.characteristics();
        StorageCharacteristics {
            persistent: a.persistent && b.persistent,
            durable_on_ack: a.durable_on_ack && b.durable_on_ack,
            shared_across_processes: a.shared_across_processes && b.shared_across_processes,
            atomic_batches: a.atomic_batches && b.atomic_batches,
            conditional_writes: a.conditional_writes && b.conditional_writes,
            ordered_scans: a.ordered_scans && b.ordered_scans,
            engine_enforced_tenancy: a.engine_enforced_tenancy && b.engine_enforced_tenancy,
            max_key_bytes: a.max_key_bytes.min(b.max_key_bytes),
            max_value_bytes: a.max_value_bytes.min(b.max_value_bytes),
            max_batch_ops: a.max_batch_ops.min(b.max_batch_ops),
            max_scan_limit: a.max_scan_limit.min(b.max_scan_limit),
        }
    }
}
