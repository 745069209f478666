//! [`VectorStore`] over any [`StorageBackend`]: an exact scan of the collection's vectors.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, Key, MAX_SCAN_LIMIT, Result, StorageBackend, WriteBatch,
    check_batch_len,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::codec::{StoredVector, encode};
use super::kernel::{Candidate, Query, TopK};
use super::keys::VectorKey;
use super::{
    CollectionImport, CollectionInfo, Metadata, Metric, SearchHit, SearchRequest,
    VectorExportSource, VectorRecord, VectorStore, check_dimension, check_import_into,
    check_vector, decode_vector_import, export_vectors,
};
use crate::codec::{check_id, decode_record, encode_record, unescape_id};
use crate::portable::{ExportPage, PortableStore};
use crate::retry::{retry, settled};

/// Vectors deleted per batch when a deleted collection is swept.
const SWEEP_PAGE: usize = 1_000;

/// The generic vector store: one value per vector, exact scan on search.
///
/// Search reads every vector of the collection, page by page, verifies its checksum, scores it
/// and keeps the best `k` in a bounded heap: one pass over the collection's bytes. `count`
/// walks the collection's keys the same way. [`HnswVectorStore`](super::HnswVectorStore) is
/// the approximate engine over the same keys.
#[derive(Debug, Clone)]
pub struct GenericVectorStore {
    backend: Arc<dyn StorageBackend>,
}

/// The stored collection record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CollectionRecord {
    #[serde(flatten)]
    pub(super) info: CollectionInfo,
    /// Names this incarnation of the collection inside vector keys.
    pub(super) generation: String,
}

/// A collection as read, with the exact bytes for use as a write precondition.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) key: Key,
    pub(super) bytes: Bytes,
    pub(super) record: CollectionRecord,
}

impl Loaded {
    pub(super) fn vector_key(&self, id: &str) -> Result<Key> {
        VectorKey::Vector {
            collection: &self.record.info.name,
            generation: &self.record.generation,
            id,
        }
        .key()
    }

    fn vectors_prefix(&self) -> String {
        VectorKey::vectors_prefix(&self.record.info.name, &self.record.generation)
    }

    pub(super) fn segments_prefix(&self) -> String {
        VectorKey::segments_prefix(&self.record.info.name, &self.record.generation)
    }

    pub(super) fn dimension(&self) -> usize {
        self.record.info.dimension
    }
}

impl GenericVectorStore {
    /// A vector store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericVectorStore { backend }
    }

    /// The backend the store writes to.
    pub(super) fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.backend
    }

    pub(super) async fn load(&self, name: &str) -> Result<Option<Loaded>> {
        check_id("collection name", name)?;
        let key = VectorKey::Collection { name }.key()?;
        let Some(bytes) = self.backend.get(&key).await? else {
            return Ok(None);
        };
        let record = decode_record(&bytes)?;
        Ok(Some(Loaded { key, bytes, record }))
    }

    pub(super) async fn load_required(&self, name: &str) -> Result<Loaded> {
        self.load(name).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "vector collection does not exist")
                .with_context("collection", name)
        })
    }

    async fn try_create(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<Option<CollectionInfo>> {
        if let Some(existing) = self.load(name).await? {
            let info = existing.record.info;
            if info.dimension != dimension || info.metric != metric {
                return Err(Error::conflict(format!(
                    "collection exists with dimension {} and metric {:?}",
                    info.dimension, info.metric
                ))
                .with_context("collection", name));
            }
            return Ok(Some(info));
        }
        let record = CollectionRecord {
            info: CollectionInfo {
                name: name.to_owned(),
                dimension,
                metric,
                created_at: crate::agent_state::saved_now(),
            },
            generation: new_generation(),
        };
        let key = VectorKey::Collection { name }.key()?;
        let created = self
            .backend
            .compare_and_swap(&key, None, Some(encode_record(&record)?.into()))
            .await;
        Ok(settled(created)?.map(|()| record.info))
    }

    /// Writes `records` (ids already checked) if the collection is still the one loaded.
    async fn try_write(&self, name: &str, records: &[VectorRecord]) -> Result<Option<()>> {
        let loaded = self.load_required(name).await?;
        self.try_write_to(&loaded, records).await
    }

    /// Writes `records` (ids already checked) if the collection is still `loaded`; `None` when
    /// it changed meanwhile.
    ///
    /// # Errors
    /// `InvalidInput` for a vector [`check_vector`] rejects; the backend's errors.
    pub(super) async fn try_write_to(
        &self,
        loaded: &Loaded,
        records: &[VectorRecord],
    ) -> Result<Option<()>> {
        let mut batch = WriteBatch::new().check(loaded.key.clone(), Some(loaded.bytes.clone()));
        for record in records {
            check_vector(
                &record.vector,
                loaded.dimension(),
                loaded.record.info.metric,
            )?;
            let value = encode(&record.vector, &record.metadata)?;
            batch = batch.put(loaded.vector_key(&record.id)?, value);
        }
        batch.validate()?;
        settled(self.backend.write_batch(batch).await)
    }

    /// Deletes every key under `prefix`, page by page.
    pub(super) async fn sweep(&self, prefix: &str) -> Result<()> {
        loop {
            let page = self.backend.scan(prefix, None, SWEEP_PAGE).await?;
            let keys: Vec<Key> = page.entries.into_iter().map(|(key, _)| key).collect();
            if keys.is_empty() {
                return Ok(());
            }
            self.backend.delete_batch(&keys).await?;
        }
    }

    /// Calls `visit` with the id and verified stored form of every vector of `loaded`, in key
    /// order.
    ///
    /// # Errors
    /// `Corruption` when a stored vector fails its integrity check; the first error of
    /// `visit`; the backend's errors.
    pub(super) async fn for_each_vector(
        &self,
        loaded: &Loaded,
        mut visit: impl FnMut(String, StoredVector<'_>) -> Result<()>,
    ) -> Result<()> {
        let prefix = loaded.vectors_prefix();
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .backend
                .scan(&prefix, after.as_ref(), MAX_SCAN_LIMIT)
                .await?;
            for (key, value) in &page.entries {
                let stored = StoredVector::decode(value, loaded.dimension())
                    .map_err(|e| e.with_context("key", key))?;
                visit(id_of(key)?, stored)?;
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Writes the collections and vectors of an import in one batch (see
    /// [`PortableStore::import`]): each missing collection is created as the records carry it,
    /// an existing one keeps its record and generation.
    ///
    /// # Errors
    /// `InvalidInput` when an existing collection has another dimension or metric (nothing is
    /// written); the backend's errors.
    pub(super) async fn import_collections(&self, plan: &[CollectionImport]) -> Result<()> {
        retry("import", || self.try_import(plan)).await
    }

    async fn try_import(&self, plan: &[CollectionImport]) -> Result<Option<()>> {
        let mut batch = WriteBatch::new();
        for import in plan {
            let loaded = match self.load(&import.info.name).await? {
                Some(loaded) => {
                    check_import_into(&loaded.record.info, &import.info)?;
                    batch = batch.check(loaded.key.clone(), Some(loaded.bytes.clone()));
                    loaded
                }
                None => {
                    let record = CollectionRecord {
                        info: import.info.clone(),
                        generation: new_generation(),
                    };
                    let key = VectorKey::Collection {
                        name: &import.info.name,
                    }
                    .key()?;
                    let bytes = Bytes::from(encode_record(&record)?);
                    batch = batch
                        .check(key.clone(), None)
                        .put(key.clone(), bytes.clone());
                    Loaded { key, bytes, record }
                }
            };
            for vector in &import.vectors {
                let value = encode(&vector.vector, &vector.metadata)?;
                batch = batch.put(loaded.vector_key(&vector.id)?, value);
            }
        }
        batch.validate()?;
        settled(self.backend.write_batch(batch).await)
    }

    async fn scan_top_k(&self, loaded: &Loaded, request: SearchRequest) -> Result<TopK<Bytes>> {
        let prefix = loaded.vectors_prefix();
        let query = Query::new(request.vector, loaded.record.info.metric);
        let mut scanner = Scanner {
            query: &query,
            filter: &request.filter,
            threshold: request.min_score.map(|min| query.rank(min)),
            dimension: loaded.dimension(),
            top: TopK::new(request.k),
            buffer: Vec::with_capacity(loaded.dimension()),
        };
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .backend
                .scan(&prefix, after.as_ref(), MAX_SCAN_LIMIT)
                .await?;
            for (key, value) in page.entries {
                scanner.visit(key, value)?;
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(scanner.top),
            }
        }
    }
}

/// One search's state while it walks the collection.
struct Scanner<'a> {
    query: &'a Query,
    filter: &'a Metadata,
    /// The worst acceptable rank, from `min_score`.
    threshold: Option<f32>,
    dimension: usize,
    top: TopK<Bytes>,
    /// Reused for every vector's components.
    buffer: Vec<f32>,
}

impl Scanner<'_> {
    fn visit(&mut self, key: Key, value: Bytes) -> Result<()> {
        let stored = StoredVector::decode(&value, self.dimension)
            .map_err(|e| e.with_context("key", &key))?;
        stored.read_into(&mut self.buffer);
        let score = self.query.score(&self.buffer);
        let rank = self.query.rank(score);
        if self.threshold.is_some_and(|t| rank < t) || !self.top.admits(rank) {
            return Ok(());
        }
        if !self.filter.is_empty() && !matches(&stored.metadata()?, self.filter) {
            return Ok(());
        }
        self.top.offer(Candidate {
            rank,
            score,
            id: id_of(&key)?,
            payload: value,
        });
        Ok(())
    }
}

/// A fresh generation id.
fn new_generation() -> String {
    Uuid::now_v7().simple().to_string()
}

/// Whether `metadata` holds every pair of `filter` with an equal value.
pub(super) fn matches(metadata: &Metadata, filter: &Metadata) -> bool {
    filter
        .iter()
        .all(|(name, wanted)| metadata.get(name) == Some(wanted))
}

fn id_of(key: &Key) -> Result<String> {
    unescape_id(key.as_str().rsplit('/').next().unwrap_or_default())
}

fn hit(candidate: Candidate<Bytes>, dimension: usize) -> Result<SearchHit> {
    let metadata = StoredVector::decode(&candidate.payload, dimension)?.metadata()?;
    Ok(SearchHit {
        id: candidate.id,
        score: candidate.score,
        metadata,
    })
}

#[async_trait]
impl VectorStore for GenericVectorStore {
    async fn create_collection(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<CollectionInfo> {
        check_id("collection name", name)?;
        check_dimension(dimension)?;
        retry("create_collection", || {
            self.try_create(name, dimension, metric)
        })
        .await
    }

    async fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        Ok(self.load(name).await?.map(|loaded| loaded.record.info))
    }

    async fn delete_collection(&self, name: &str) -> Result<bool> {
        let deleted = retry("delete_collection", || async move {
            let Some(loaded) = self.load(name).await? else {
                return Ok(Some(None));
            };
            let swap = self
                .backend
                .compare_and_swap(&loaded.key, Some(loaded.bytes.clone()), None)
                .await;
            Ok(settled(swap)?.map(|()| Some(loaded)))
        })
        .await?;
        match deleted {
            Some(loaded) => {
                self.sweep(&loaded.vectors_prefix()).await?;
                self.sweep(&loaded.segments_prefix()).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        vector: Vec<f32>,
        metadata: Metadata,
    ) -> Result<()> {
        check_id("vector id", id)?;
        let records = [VectorRecord {
            id: id.to_owned(),
            vector,
            metadata,
        }];
        retry("upsert", || self.try_write(collection, &records)).await
    }

    async fn upsert_batch(&self, collection: &str, records: Vec<VectorRecord>) -> Result<()> {
        check_batch_len(records.len() + 1)?;
        for record in &records {
            check_id("vector id", &record.id)?;
        }
        retry("upsert_batch", || self.try_write(collection, &records)).await
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<VectorRecord>> {
        check_id("vector id", id)?;
        let loaded = self.load_required(collection).await?;
        let key = loaded.vector_key(id)?;
        let Some(value) = self.backend.get(&key).await? else {
            return Ok(None);
        };
        let stored = StoredVector::decode(&value, loaded.dimension())
            .map_err(|e| e.with_context("key", &key))?;
        Ok(Some(VectorRecord {
            id: id.to_owned(),
            vector: stored.components(),
            metadata: stored.metadata()?,
        }))
    }

    async fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        check_id("vector id", id)?;
        let loaded = self.load_required(collection).await?;
        self.backend.delete(&loaded.vector_key(id)?).await
    }

    async fn count(&self, collection: &str) -> Result<u64> {
        let loaded = self.load_required(collection).await?;
        let prefix = loaded.vectors_prefix();
        let mut count = 0u64;
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .backend
                .scan(&prefix, after.as_ref(), MAX_SCAN_LIMIT)
                .await?;
            count += page.entries.len() as u64;
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(count),
            }
        }
    }

    async fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<SearchHit>> {
        let loaded = self.load_required(collection).await?;
        request.validate(&loaded.record.info)?;
        let top = self.scan_top_k(&loaded, request).await?;
        top.into_sorted()
            .into_iter()
            .map(|candidate| hit(candidate, loaded.dimension()))
            .collect()
    }
}

/// The generic store as an export reads it.
struct Export<'a>(&'a GenericVectorStore);

#[async_trait]
impl VectorExportSource for Export<'_> {
    type Collection = Loaded;

    fn info(collection: &Loaded) -> &CollectionInfo {
        &collection.record.info
    }

    async fn collection_named(&self, name: &str) -> Result<Option<Loaded>> {
        self.0.load(name).await
    }

    async fn collection_after(&self, after: Option<&str>) -> Result<Option<Loaded>> {
        let after = after
            .map(|name| VectorKey::Collection { name }.key())
            .transpose()?;
        let page = self
            .0
            .backend
            .scan(&VectorKey::collections_prefix(), after.as_ref(), 1)
            .await?;
        let Some((key, bytes)) = page.entries.into_iter().next() else {
            return Ok(None);
        };
        let record = decode_record(&bytes).map_err(|e| e.with_context("key", &key))?;
        Ok(Some(Loaded { key, bytes, record }))
    }

    async fn vectors_after(
        &self,
        collection: &Loaded,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VectorRecord>> {
        let prefix = collection.vectors_prefix();
        let mut after = after.map(|id| collection.vector_key(id)).transpose()?;
        let mut out = Vec::new();
        while out.len() < limit {
            let page = self
                .0
                .backend
                .scan(
                    &prefix,
                    after.as_ref(),
                    (limit - out.len()).min(MAX_SCAN_LIMIT),
                )
                .await?;
            for (key, value) in &page.entries {
                let stored = StoredVector::decode(value, collection.dimension())
                    .map_err(|e| e.with_context("key", key))?;
                out.push(VectorRecord {
                    id: id_of(key)?,
                    vector: stored.components(),
                    metadata: stored.metadata()?,
                });
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(out)
    }
}

/// One record per collection and one per vector, in the layout of
/// [`PortableVector`](super::PortableVector); segments are an index cache and not exported.
#[async_trait]
impl PortableStore for GenericVectorStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        export_vectors(&Export(self), after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let plan = decode_vector_import(records)?;
        self.import_collections(&plan).await
    }
}
