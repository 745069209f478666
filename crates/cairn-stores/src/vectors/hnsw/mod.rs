//! [`HnswVectorStore`]: the in-process approximate vector engine over any key-value backend
//! (memory or sled), which sees every write at once.
//!
//! The key-value store stays the source of truth, in the generic store's layout (see
//! [`keys`](crate::vectors::keys)), so either store can open the same data. In memory, each
//! collection has immutable sealed segments (rows plus an HNSW graph built by
//! instant-distance), a small buffer of recent writes scanned exactly, and tombstones for rows
//! replaced or deleted since they were sealed. A background task seals a full buffer into a new
//! segment and merges segments that are many or mostly deleted; sealed segments are persisted
//! as key-value records (on persistent backends) and checked against the vectors on load.
//! Design and invariants: `docs/stores/vectors.md`.

mod graph;
mod persist;
mod segment;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend, check_batch_len};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedMutexGuard, watch};

use self::segment::{Probe, Segment, Top};
use self::state::{Plan, Slot, State};
use super::generic::{GenericVectorStore, Loaded};
use super::kernel::Query;
use super::{
    CollectionInfo, MAX_EF_SEARCH, Metadata, Metric, SearchHit, SearchRequest, VectorRecord,
    VectorStore, decode_vector_import,
};
use crate::codec::check_id;
use crate::portable::{ExportPage, PortableStore};
use crate::retry::retry;

/// The engine's tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HnswParams {
    /// Links per node (`M`). instant-distance fixes it at 32; other values are rejected.
    pub m: usize,
    /// Candidates explored while building a segment's graph: 1 to 4096.
    pub ef_construction: usize,
    /// Default beam width of a search (a request's `ef_search` overrides it): 1 to
    /// [`MAX_EF_SEARCH`].
    pub ef_search: usize,
    /// Buffered writes that trigger sealing a new segment: 1 to 1,000,000.
    pub seal_threshold: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: graph::M,
            ef_construction: 128,
            ef_search: 100,
            seal_threshold: 4_096,
        }
    }
}

impl HnswParams {
    /// Checks every parameter's range.
    ///
    /// # Errors
    /// `InvalidInput` naming the first parameter out of range.
    pub fn validate(&self) -> Result<()> {
        if self.m != graph::M {
            return Err(Error::invalid_input(format!(
                "m must be {} (instant-distance fixes it), got {}",
                graph::M,
                self.m
            )));
        }
        let ranges = [
            ("ef_construction", self.ef_construction, 4_096),
            ("ef_search", self.ef_search, MAX_EF_SEARCH),
            ("seal_threshold", self.seal_threshold, 1_000_000),
        ];
        for (name, value, max) in ranges {
            if value == 0 || value > max {
                return Err(Error::invalid_input(format!(
                    "{name} must be 1 to {max}, got {value}"
                )));
            }
        }
        Ok(())
    }
}

/// The HNSW vector engine: [`VectorStore`] with approximate search that sees every
/// acknowledged write.
///
/// Clones share one engine. Build one store per backend handle (tenant) and share it: two
/// engines on the same data each keep their own index, and a write through one is not seen by
/// the other's index (the registry hands out one engine per tenant). Searches hold a
/// collection's read lock while they score, writes its write lock briefly; sealing and merging
/// run on tokio's blocking pool, so the engine needs a tokio runtime.
#[derive(Clone)]
pub struct HnswVectorStore {
    inner: Arc<Inner>,
}

struct Inner {
    kv: GenericVectorStore,
    params: HnswParams,
    /// Whether segments are persisted (the backend outlives the process).
    persist: bool,
    collections: Mutex<HashMap<String, Arc<Collection>>>,
}

/// One generation of one collection.
struct Collection {
    loaded: Loaded,
    /// Serialises writes (key-value write, then index update) and the initial load.
    write: Arc<tokio::sync::Mutex<()>>,
    state: OnceLock<RwLock<State>>,
    sealing: AtomicBool,
    force: AtomicBool,
    /// Bumped whenever the sealer finishes a round.
    rounds: watch::Sender<u64>,
    failure: Mutex<Option<Error>>,
}

impl fmt::Debug for HnswVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.inner.collections.lock().keys().cloned().collect();
        f.debug_struct("HnswVectorStore")
            .field("params", &self.inner.params)
            .field("persist", &self.inner.persist)
            .field("collections", &names)
            .finish_non_exhaustive()
    }
}

impl Collection {
    fn new(loaded: Loaded) -> Collection {
        Collection {
            loaded,
            write: Arc::new(tokio::sync::Mutex::new(())),
            state: OnceLock::new(),
            sealing: AtomicBool::new(false),
            force: AtomicBool::new(false),
            rounds: watch::channel(0).0,
            failure: Mutex::new(None),
        }
    }

    fn info(&self) -> &CollectionInfo {
        &self.loaded.record.info
    }

    fn due(&self, params: &HnswParams) -> bool {
        self.state.get().is_some_and(|state| {
            state
                .read()
                .due(params.seal_threshold, self.force.load(Ordering::SeqCst))
        })
    }
}

impl HnswVectorStore {
    /// An engine on `backend`'s tenant.
    ///
    /// # Errors
    /// `InvalidInput` when [`HnswParams::validate`] fails.
    pub fn new(backend: Arc<dyn StorageBackend>, params: HnswParams) -> Result<HnswVectorStore> {
        params.validate()?;
        let persist = backend.characteristics().persistent;
        Ok(HnswVectorStore {
            inner: Arc::new(Inner {
                kv: GenericVectorStore::new(backend),
                params,
                persist,
                collections: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The engine's parameters.
    pub fn params(&self) -> HnswParams {
        self.inner.params
    }

    /// Seals every buffered write of the collections this engine has open, runs due merges,
    /// and waits until the background sealer is done: afterwards searches walk graphs only
    /// (until the next write). For benchmarks and tests; writes never wait for sealing.
    ///
    /// # Errors
    /// The first error a seal met (a failed build or segment write) since the last call.
    pub async fn wait_sealed(&self) -> Result<()> {
        let collections: Vec<Arc<Collection>> =
            self.inner.collections.lock().values().cloned().collect();
        for collection in collections {
            collection.force.store(true, Ordering::SeqCst);
            let result = self.wait_idle(&collection).await;
            collection.force.store(false, Ordering::SeqCst);
            result?;
        }
        Ok(())
    }

    async fn wait_idle(&self, collection: &Arc<Collection>) -> Result<()> {
        loop {
            let mut rounds = collection.rounds.subscribe();
            if let Some(err) = collection.failure.lock().take() {
                return Err(err);
            }
            if !collection.sealing.load(Ordering::SeqCst) && !collection.due(&self.inner.params) {
                return Ok(());
            }
            self.schedule(collection)?;
            rounds
                .changed()
                .await
                .map_err(|e| Error::new(ErrorKind::Backend, "sealer vanished").with_source(e))?;
        }
    }

    /// The open collection `name`, read from the key-value store.
    async fn open(&self, name: &str) -> Result<Arc<Collection>> {
        let loaded = self.inner.kv.load_required(name).await?;
        let mut map = self.inner.collections.lock();
        if let Some(existing) = map.get(name) {
            if existing.loaded.record.generation == loaded.record.generation {
                return Ok(existing.clone());
            }
        }
        let collection = Arc::new(Collection::new(loaded));
        map.insert(name.to_owned(), collection.clone());
        Ok(collection)
    }

    /// The collection's index, loading it first if needed.
    async fn state<'c>(&self, collection: &'c Arc<Collection>) -> Result<&'c RwLock<State>> {
        if let Some(state) = collection.state.get() {
            return Ok(state);
        }
        let _write = collection.write.lock().await;
        self.load_state(collection).await
    }

    /// Loads the index from the key-value store; the caller holds the write lock.
    async fn load_state<'c>(&self, collection: &'c Arc<Collection>) -> Result<&'c RwLock<State>> {
        if let Some(state) = collection.state.get() {
            return Ok(state);
        }
        let kv = &self.inner.kv;
        let loaded = &collection.loaded;
        let (segments, broken) = if self.inner.persist {
            persist::load(kv, loaded).await?
        } else {
            (Vec::new(), Vec::new())
        };
        for &number in &broken {
            persist::remove(kv, loaded, number).await?;
        }
        // Numbers are never reused, not even a broken segment's.
        let next = broken.iter().map(|n| n + 1).max().unwrap_or(0);
        let mut state = State::new(loaded.dimension(), next);
        let mut segments = segments;
        let mut by_id: HashMap<String, (usize, usize)> = HashMap::new();
        for (index, segment) in segments.iter().enumerate() {
            for (row, id) in segment.ids.iter().enumerate() {
                by_id.insert(id.clone(), (index, row));
            }
        }
        // A vector is live in the newest segment that holds exactly its components; every
        // other vector goes to the buffer, and unclaimed segment rows stay tombstoned.
        let mut placed = Vec::new();
        let mut components = Vec::with_capacity(loaded.dimension());
        kv.for_each_vector(loaded, |id, stored| {
            stored.read_into(&mut components);
            let meta = stored.metadata()?;
            match by_id.get(&id) {
                Some(&(index, row)) if segments[index].vector(row) == components.as_slice() => {
                    segments[index].metadata[row] = meta;
                    placed.push((id, index, row));
                }
                _ => state.upsert(id, &components, meta),
            }
            Ok(())
        })
        .await?;
        for segment in segments {
            state.add_segment(Slot::all_dead(Arc::new(segment)));
        }
        for (id, index, row) in placed {
            state.place(id, index, row);
        }
        let state = collection.state.get_or_init(|| RwLock::new(state));
        self.schedule(collection)?;
        Ok(state)
    }

    /// Starts the background sealer for `collection` when it has work and is not running.
    ///
    /// # Errors
    /// `Unsupported` outside a tokio runtime.
    fn schedule(&self, collection: &Arc<Collection>) -> Result<()> {
        if !collection.due(&self.inner.params) {
            return Ok(());
        }
        let runtime = runtime()?;
        if collection.sealing.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let (store, collection) = (self.clone(), collection.clone());
        runtime.spawn(async move { store.seal_loop(collection).await });
        Ok(())
    }

    /// Seals and merges until nothing is due; records the first failure and stops there.
    async fn seal_loop(&self, collection: Arc<Collection>) {
        loop {
            let result = self.seal_due(&collection).await;
            if let Err(err) = result {
                *collection.failure.lock() = Some(err);
            }
            collection.sealing.store(false, Ordering::SeqCst);
            collection.rounds.send_modify(|n| *n += 1);
            let failed = collection.failure.lock().is_some();
            if failed
                || !collection.due(&self.inner.params)
                || collection.sealing.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }

    async fn seal_due(&self, collection: &Arc<Collection>) -> Result<()> {
        let Some(state) = collection.state.get() else {
            return Ok(());
        };
        let params = &self.inner.params;
        loop {
            let plan = state.read().plan(
                params.seal_threshold,
                collection.force.load(Ordering::SeqCst),
            );
            let Some(plan) = plan else {
                return Ok(());
            };
            self.seal(collection, state, plan).await?;
        }
    }

    /// Builds `plan`'s segment off the async workers, persists it, installs it, then deletes
    /// the merged segments' records.
    async fn seal(
        &self,
        collection: &Collection,
        state: &RwLock<State>,
        mut plan: Plan,
    ) -> Result<()> {
        let info = collection.info();
        let built = if plan.ids.is_empty() {
            None
        } else {
            let (number, dimension, metric) = (plan.number, info.dimension, info.metric);
            let ef = self.inner.params.ef_construction;
            let ids = std::mem::take(&mut plan.ids);
            let vectors = std::mem::take(&mut plan.vectors);
            let metadata = std::mem::take(&mut plan.metadata);
            let (segment, order) = tokio::task::spawn_blocking(move || {
                Segment::build(number, dimension, metric, ef, ids, vectors, metadata)
            })
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Backend, "building an HNSW segment failed").with_source(e)
            })??;
            if self.inner.persist
                && persist::save(&self.inner.kv, &collection.loaded, &segment)
                    .await?
                    .is_none()
            {
                // The collection was deleted meanwhile: nothing to install.
                return Ok(());
            }
            Some((Arc::new(segment), order))
        };
        state.write().install(&plan, built);
        if self.inner.persist {
            for &number in &plan.victims {
                persist::remove(&self.inner.kv, &collection.loaded, number).await?;
            }
        }
        Ok(())
    }

    /// Writes `records` (ids checked) to the key-value store, then to the index, under the
    /// collection's write lock.
    async fn write(&self, name: &str, records: Vec<VectorRecord>) -> Result<()> {
        let (collection, _guard) = retry("upsert", || self.try_write(name, &records)).await?;
        let state = self.load_state(&collection).await?;
        {
            let mut state = state.write();
            for record in records {
                state.upsert(record.id, &record.vector, record.metadata);
            }
        }
        self.schedule(&collection)
    }

    async fn try_write(
        &self,
        name: &str,
        records: &[VectorRecord],
    ) -> Result<Option<(Arc<Collection>, OwnedMutexGuard<()>)>> {
        runtime()?;
        let collection = self.open(name).await?;
        let guard = collection.write.clone().lock_owned().await;
        self.load_state(&collection).await?;
        Ok(self
            .inner
            .kv
            .try_write_to(&collection.loaded, records)
            .await?
            .map(|()| (collection, guard)))
    }
}

/// The tokio runtime the sealer runs on.
///
/// # Errors
/// `Unsupported` outside a tokio runtime.
fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|e| {
        Error::new(
            ErrorKind::Unsupported,
            "the HNSW vector engine seals in the background and needs a tokio runtime",
        )
        .with_source(e)
    })
}

#[async_trait]
impl VectorStore for HnswVectorStore {
    async fn create_collection(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<CollectionInfo> {
        self.inner
            .kv
            .create_collection(name, dimension, metric)
            .await
    }

    async fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        self.inner.kv.collection(name).await
    }

    async fn delete_collection(&self, name: &str) -> Result<bool> {
        let existed = self.inner.kv.delete_collection(name).await?;
        self.inner.collections.lock().remove(name);
        Ok(existed)
    }

    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        vector: Vec<f32>,
        metadata: Metadata,
    ) -> Result<()> {
        check_id("vector id", id)?;
        let record = VectorRecord {
            id: id.to_owned(),
            vector,
            metadata,
        };
        self.write(collection, vec![record]).await
    }

    async fn upsert_batch(&self, collection: &str, records: Vec<VectorRecord>) -> Result<()> {
        check_batch_len(records.len() + 1)?;
        for record in &records {
            check_id("vector id", &record.id)?;
        }
        self.write(collection, records).await
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<VectorRecord>> {
        self.inner.kv.get(collection, id).await
    }

    async fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        check_id("vector id", id)?;
        let open = self.open(collection).await?;
        let _write = open.write.lock().await;
        let state = self.load_state(&open).await?;
        let existed = self
            .inner
            .kv
            .backend()
            .delete(&open.loaded.vector_key(id)?)
            .await?;
        state.write().delete(id);
        self.schedule(&open)?;
        Ok(existed)
    }

    async fn count(&self, collection: &str) -> Result<u64> {
        let open = self.open(collection).await?;
        let state = self.state(&open).await?;
        let count = state.read().count();
        Ok(count as u64)
    }

    async fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<SearchHit>> {
        let open = self.open(collection).await?;
        request.validate(open.info())?;
        let state = self.state(&open).await?;
        let query = Query::new(request.vector, open.info().metric);
        let probe = Probe {
            query: &query,
            filter: &request.filter,
            threshold: request.min_score.map(|min| query.rank(min)),
            k: request.k,
        };
        let ef = request.ef_search.unwrap_or(self.inner.params.ef_search);
        let state = state.read();
        let mut top = Top::new(request.k);
        state.search(&probe, ef, request.exact, &mut top);
        Ok(top
            .into_sorted()
            .into_iter()
            .map(|candidate| SearchHit {
                id: candidate.id,
                score: candidate.score,
                metadata: candidate.payload.clone(),
            })
            .collect())
    }
}

/// The generic store's records, read from and written to the same keys; an import updates the
/// index of every collection it touches before it returns.
#[async_trait]
impl PortableStore for HnswVectorStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        self.inner.kv.export_page(after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let plan = decode_vector_import(records)?;
        runtime()?;
        // Hold the write lock of every collection open here that the import touches, in name
        // order, so no write comes between the key-value batch and the index update.
        let open: Vec<Arc<Collection>> = {
            let map = self.inner.collections.lock();
            plan.iter()
                .filter_map(|import| map.get(&import.info.name).cloned())
                .collect()
        };
        let mut held = Vec::with_capacity(open.len());
        for collection in open {
            let guard = collection.write.clone().lock_owned().await;
            held.push((collection, guard));
        }
        self.inner.kv.import_collections(&plan).await?;
        for import in plan {
            let collection = self.open(&import.info.name).await?;
            let locked = held.iter().any(|(c, _)| Arc::ptr_eq(c, &collection));
            let _guard = if locked {
                None
            } else {
                Some(collection.write.clone().lock_owned().await)
            };
            // An index not loaded yet reads the imported vectors when it loads.
            if let Some(state) = collection.state.get() {
                let mut state = state.write();
                for record in import.vectors {
                    state.upsert(record.id, &record.vector, record.metadata);
                }
            }
            self.schedule(&collection)?;
        }
        Ok(())
    }
}
