//! Moving a component from one store implementation to another while its agents keep
//! writing: the store-level counterpart of [`cairn_core::migrating::MigratingBackend`].
//!
//! [`MigratingBackend`](cairn_core::migrating::MigratingBackend) moves a tenant between two key-value
//! backends, so it serves the generic stores only. The wrappers here move a *component store*
//! between any two implementations of its trait, which need not share a layout (the generic
//! episodic store on sled to the native PostgreSQL one): [`MigratingSessionStore`],
//! [`MigratingEpisodicStore`], [`MigratingAgentStateStore`], [`MigratingEventLogStore`],
//! [`MigratingHookHistoryStore`], [`MigratingProceduralStore`], [`MigratingWorkflowStore`]
//! [`MigratingVectorStore`], [`MigratingArtifactStore`] and [`MigratingGraphStore`]. Each implements its component trait over an `old` and a `new`
//! store and one [`StoreMigration`], which holds the phase, the write gate and the backfill.
//!
//! The phases are [`MigrationPhase`]'s, with the same switching rule
//! ([`StoreMigration::set_phase`]; leaving `NewOnly` is refused):
//!
//! | phase | writes decided by | then mirrored to | reads from |
//! |---|---|---|---|
//! | [`DualWrite`](MigrationPhase::DualWrite) | old | new | old |
//! | [`ReadNewFallback`](MigrationPhase::ReadNewFallback) | new | old | new; single-record reads that find nothing there, old |
//! | [`ReadNew`](MigrationPhase::ReadNew) | new | old | new |
//! | [`NewOnly`](MigrationPhase::NewOnly) | new | — | new |
//!
//! The usual run: wrap in `DualWrite`, run [`StoreMigration::backfill`] to copy what only the
//! old side holds, move to `ReadNewFallback`, `ReadNew` and `NewOnly`, retire the old store.
//! The backfill must finish before leaving `DualWrite`: from then on the new side assigns
//! sequence numbers and versions, which must continue the old side's.
//!
//! # Consistency
//! - The deciding side runs the call; the other side gets its *result*: a write whose store
//!   assigns ids, times or versions (a turn's `seq`, an event's id, a session's expiry, a
//!   snapshot's version) is mirrored by importing the returned record's portable encoding
//!   ([`crate::portable`]), read back from the deciding side where the call does not return
//!   the whole record; a delete is repeated on the other side. Both sides thus hold the same
//!   records, so their [`fingerprint`](crate::portable::fingerprint)s agree.
//! - Every write holds the migration's gate shared and the lock of its record's identity
//!   (session, agent, procedure, workflow id, vector collection, artifact hash, graph id;
//!   64 stripes) for both sides, so two writers of one record apply in the same order on
//!   both; writes that only create records (events, hook executions, generated ids) take the
//!   gate alone. Writes that remove by time or import arbitrary records (`drop_before`,
//!   `purge_expired`, `import`) hold the gate exclusively, and so does `put_stream`, whose
//!   artifact is known only once stored. The backfill holds it exclusively for each page (export one page of old, import it into
//!   new), so it never overwrites a newer mirrored write nor brings back a deleted record.
//! - The gate and locks are per process: every writer of the component must go through
//!   wrappers sharing one [`StoreMigration`] (clones of one wrapper).
//! - If the second side fails, the call returns that error with the context
//!   `migration_side = secondary` although the first side applied it; a backfill (before
//!   `ReadNewFallback`) or repeating the call brings the sides together again.

mod agent_state;
mod artifacts;
mod episodic;
mod event_log;
mod graph;
mod hooks;
mod procedural;
mod sessions;
mod vectors;
mod workflow;

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError};

use cairn_core::migrating::MigrationPhase;
use cairn_core::{Bytes, Error, Result};
use serde::Serialize;
use tokio::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::portable::{PortableStore, check_export_limit, encode_portable};

pub use agent_state::MigratingAgentStateStore;
pub use artifacts::MigratingArtifactStore;
pub use episodic::MigratingEpisodicStore;
pub use event_log::MigratingEventLogStore;
pub use graph::MigratingGraphStore;
pub use hooks::MigratingHookHistoryStore;
pub use procedural::MigratingProceduralStore;
pub use sessions::MigratingSessionStore;
pub use vectors::MigratingVectorStore;
pub use workflow::MigratingWorkflowStore;

/// Number of record lock stripes of one migration.
const STRIPES: usize = 64;

/// One side of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The store being left.
    Old,
    /// The store being moved to.
    New,
}

/// What one [`StoreMigration::backfill`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Pages exported from the old side.
    pub pages: u64,
    /// Records imported into the new side (every record of the old side, once).
    pub records: u64,
}

/// What a write locks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The records of one identity (a session, an agent, a procedure, a workflow).
    Record(&'a str),
    /// Only records the call creates (an event, a hook execution, a generated id).
    Created,
    /// Any record: the gate exclusively.
    All,
}

/// Held while a write runs on both sides.
struct Entered<'a> {
    _shared: Option<RwLockReadGuard<'a, ()>>,
    _exclusive: Option<RwLockWriteGuard<'a, ()>>,
    _record: Option<MutexGuard<'a, ()>>,
}

/// The phase, gate and backfill shared by every handle of one component's move from an old
/// to a new store; see the [module docs](self).
pub struct StoreMigration {
    old: Arc<dyn PortableStore>,
    new: Arc<dyn PortableStore>,
    phase: std::sync::Mutex<MigrationPhase>,
    gate: RwLock<()>,
    stripes: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl fmt::Debug for StoreMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreMigration")
            .field("phase", &self.phase())
            .field("old", &self.old)
            .field("new", &self.new)
            .finish_non_exhaustive()
    }
}

impl StoreMigration {
    /// Starts moving the records of `old` to `new`, in [`MigrationPhase::DualWrite`].
    pub fn new(old: Arc<dyn PortableStore>, new: Arc<dyn PortableStore>) -> StoreMigration {
        StoreMigration {
            old,
            new,
            phase: std::sync::Mutex::new(MigrationPhase::DualWrite),
            gate: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> MigrationPhase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Switches every handle of this migration to `phase`. Calls already running finish in
    /// the phase they started in.
    ///
    /// # Errors
    /// `InvalidInput` when leaving [`MigrationPhase::NewOnly`]: the old side has missed writes.
    pub fn set_phase(&self, phase: MigrationPhase) -> Result<()> {
        let mut current = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == MigrationPhase::NewOnly && phase != MigrationPhase::NewOnly {
            return Err(Error::invalid_input(
                "a migration in the new-only phase cannot go back: the old store has missed \
                 writes since",
            ));
        }
        *current = phase;
        Ok(())
    }

    /// The old store.
    pub fn old_side(&self) -> &Arc<dyn PortableStore> {
        &self.old
    }

    /// The new store.
    pub fn new_side(&self) -> &Arc<dyn PortableStore> {
        &self.new
    }

    /// Imports every record of the old side into the new one, `page_size` records at a time.
    ///
    /// # Behavior
    /// - Safe while writers run: each page is exported and imported holding the gate
    ///   exclusively, so no write is half applied meanwhile; a record a writer changed or
    ///   deleted since is exported as it now is (or not at all).
    /// - Running it again changes nothing (imports replace records of the same identity).
    ///
    /// # Errors
    /// `InvalidInput` for a page size outside 1 to
    /// [`MAX_EXPORT_PAGE`](crate::portable::MAX_EXPORT_PAGE), or when the migration is (or
    /// gets, while copying) in [`MigrationPhase::NewOnly`], where the old side no longer sees
    /// writes; the stores' export and import errors (the pages before stay copied).
    pub async fn backfill(&self, page_size: usize) -> Result<BackfillReport> {
        check_export_limit(page_size)?;
        let mut report = BackfillReport::default();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let _gate = self.gate.write().await;
            if self.phase() == MigrationPhase::NewOnly {
                return Err(Error::invalid_input(
                    "backfill refused: the migration is in the new-only phase, where the old \
                     store no longer sees writes",
                ));
            }
            let page = self.old.export_page(after.as_deref(), page_size).await?;
            if !page.records.is_empty() {
                self.new.import(&page.records).await?;
            }
            report.pages += 1;
            report.records += page.records.len() as u64;
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(report),
            }
        }
    }

    /// Waits for the gate and lock `scope` needs.
    async fn enter(&self, scope: Scope<'_>) -> Entered<'_> {
        match scope {
            Scope::All => Entered {
                _shared: None,
                _exclusive: Some(self.gate.write().await),
                _record: None,
            },
            Scope::Created => Entered {
                _shared: Some(self.gate.read().await),
                _exclusive: None,
                _record: None,
            },
            Scope::Record(id) => {
                let shared = self.gate.read().await;
                let stripe = (self.hasher.hash_one(id) % STRIPES as u64) as usize;
                Entered {
                    _shared: Some(shared),
                    _exclusive: None,
                    _record: Some(self.stripes[stripe].lock().await),
                }
            }
        }
    }

    /// The deciding side of a write and the side it is mirrored to, if any.
    fn write_sides(&self) -> (Side, Option<Side>) {
        match self.phase() {
            MigrationPhase::DualWrite => (Side::Old, Some(Side::New)),
            MigrationPhase::ReadNewFallback | MigrationPhase::ReadNew => {
                (Side::New, Some(Side::Old))
            }
            MigrationPhase::NewOnly => (Side::New, None),
        }
    }

    fn portable(&self, side: Side) -> &Arc<dyn PortableStore> {
        match side {
            Side::Old => &self.old,
            Side::New => &self.new,
        }
    }

    /// Runs a write on the deciding side; `run` returns the call's result and the portable
    /// records it wrote, which are then imported into the other side (when the phase writes
    /// both).
    pub(crate) async fn write<T, F, Fut>(&self, scope: Scope<'_>, run: F) -> Result<T>
    where
        F: FnOnce(Side) -> Fut,
        Fut: Future<Output = Result<(T, Vec<Bytes>)>>,
    {
        let _entered = self.enter(scope).await;
        let (primary, secondary) = self.write_sides();
        let (value, records) = run(primary).await?;
        if let Some(secondary) = secondary
            && !records.is_empty()
        {
            self.portable(secondary)
                .import(&records)
                .await
                .map_err(secondary_error)?;
        }
        Ok(value)
    }

    /// Runs a delete on the deciding side, then (when the phase writes both) the same call on
    /// the other; returns the deciding side's result.
    pub(crate) async fn write_both<T, F, Fut>(&self, scope: Scope<'_>, run: F) -> Result<T>
    where
        F: Fn(Side) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let _entered = self.enter(scope).await;
        let (primary, secondary) = self.write_sides();
        let value = run(primary).await?;
        if let Some(secondary) = secondary {
            run(secondary).await.map_err(secondary_error)?;
        }
        Ok(value)
    }

    /// Runs a write on the deciding side, then (when the phase writes both) `mirror` with
    /// the deciding side, the other side and the deciding side's result; returns that result.
    /// For writes whose mirror depends on the outcome (an artifact release: its record while
    /// references remain, a removal at zero).
    pub(crate) async fn write_then<T, F, Fut, M, MFut>(
        &self,
        scope: Scope<'_>,
        run: F,
        mirror: M,
    ) -> Result<T>
    where
        T: Clone,
        F: FnOnce(Side) -> Fut,
        Fut: Future<Output = Result<T>>,
        M: FnOnce(Side, Side, T) -> MFut,
        MFut: Future<Output = Result<()>>,
    {
        let _entered = self.enter(scope).await;
        let (primary, secondary) = self.write_sides();
        let value = run(primary).await?;
        if let Some(secondary) = secondary {
            mirror(primary, secondary, value.clone())
                .await
                .map_err(secondary_error)?;
        }
        Ok(value)
    }

    /// The side reads come from (listings and queries never fall back).
    pub(crate) fn reader(&self) -> Side {
        match self.phase() {
            MigrationPhase::DualWrite => Side::Old,
            MigrationPhase::ReadNewFallback | MigrationPhase::ReadNew | MigrationPhase::NewOnly => {
                Side::New
            }
        }
    }

    /// A single-record read: from the reading side, and in
    /// [`MigrationPhase::ReadNewFallback`] from the old side when the new one finds nothing.
    pub(crate) async fn read_one<T, F, Fut>(&self, read: F) -> Result<Option<T>>
    where
        F: Fn(Side) -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        match self.phase() {
            MigrationPhase::DualWrite => read(Side::Old).await,
            MigrationPhase::ReadNewFallback => match read(Side::New).await? {
                None => read(Side::Old).await,
                found => Ok(found),
            },
            MigrationPhase::ReadNew | MigrationPhase::NewOnly => read(Side::New).await,
        }
    }
}

/// Marks an error of the side a write is mirrored to.
fn secondary_error(err: Error) -> Error {
    err.with_context("migration_side", "secondary")
}

/// The portable records of `items` (records without a blob).
pub(crate) fn portable_records<'a, T: Serialize + 'a>(
    items: impl IntoIterator<Item = &'a T>,
) -> Result<Vec<Bytes>> {
    items
        .into_iter()
        .map(|item| encode_portable(item, &[]))
        .collect()
}

/// Declares a component's migrating wrapper: the struct over an old and a new store and a
/// shared [`StoreMigration`], its constructor, and its [`PortableStore`] implementation (export
/// from the reading side; import on the deciding side, mirrored, holding the gate
/// exclusively).
macro_rules! migrating_store {
    ($(#[$doc:meta])* $name:ident, $store:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            old: std::sync::Arc<dyn $store>,
            new: std::sync::Arc<dyn $store>,
            migration: std::sync::Arc<$crate::migrating::StoreMigration>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("migration", &self.migration)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            /// Starts moving the records of `old` to `new`, in
            /// [`MigrationPhase::DualWrite`](cairn_core::migrating::MigrationPhase::DualWrite). Clones
            /// share the migration.
            pub fn new(old: std::sync::Arc<dyn $store>, new: std::sync::Arc<dyn $store>) -> Self {
                let migration = $crate::migrating::StoreMigration::new(old.clone(), new.clone());
                $name {
                    old,
                    new,
                    migration: std::sync::Arc::new(migration),
                }
            }

            /// The migration: its phase switch and backfill.
            pub fn migration(&self) -> &$crate::migrating::StoreMigration {
                &self.migration
            }

            fn on(&self, side: $crate::migrating::Side) -> &dyn $store {
                match side {
                    $crate::migrating::Side::Old => &*self.old,
                    $crate::migrating::Side::New => &*self.new,
                }
            }
        }

        #[async_trait::async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl $crate::portable::PortableStore for $name {
            /// Exports from the reading side (no fallback). A cursor is only valid in a phase
            /// reading the same side.
            async fn export_page(
                &self,
                after: Option<&[u8]>,
                limit: usize,
            ) -> cairn_core::Result<$crate::portable::ExportPage> {
                self.on(self.migration.reader()).export_page(after, limit).await
            }

            /// Imports into the deciding side, then the same records into the other.
            async fn import(&self, records: &[cairn_core::Bytes]) -> cairn_core::Result<()> {
                self.migration
                    .write($crate::migrating::Scope::All, |side| async move {
                        self.on(side).import(records).await?;
                        Ok(((), records.to_vec()))
                    })
                    .await
            }
        }
    };
}
pub(crate) use migrating_store;
