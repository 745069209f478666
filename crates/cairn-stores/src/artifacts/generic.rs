//! [`ArtifactStore`] over any [`StorageBackend`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, Key, MAX_VALUE_BYTES, Result, StorageBackend, WriteBatch,
    check_scan_limit,
};
use futures::StreamExt;
use time::OffsetDateTime;

use super::chunking::content_hash;
use super::keys::ArtifactKey;
use super::reader::kv_chunk_stream;
use super::record::ArtifactRecord;
use super::upload::{DELETE_BATCH, Upload, Uploaded, chunk_keys, delete_chunks};
use super::{
    Artifact, ArtifactInfo, ArtifactReader, ArtifactRef, ArtifactStore, ChunkStream,
    DEFAULT_CHUNK_SIZE, PutOptions, check_hash, check_portable_artifact,
};
use crate::paging::Page;
use crate::portable::{ExportPage, PortableStore, decode_portable, encode_portable, scan_export};
use crate::retry::{retry, settled};

/// The generic artifact store: one record per content hash, content in chunk values.
///
/// Content is cut into chunks of the store's chunk size (default [`DEFAULT_CHUNK_SIZE`]),
/// each its own value, so no value is ever larger than a chunk. The chunk size of an
/// artifact is recorded with it: stores with different chunk sizes read each other's data.
///
/// Limits: a put that fails after writing chunks (or a crash) can leave an unreferenced blob
/// behind; it is never read, but its space is only reclaimed by clearing the tenant.
#[derive(Debug, Clone)]
pub struct GenericArtifactStore {
    backend: Arc<dyn StorageBackend>,
    chunk_size: usize,
}

/// A record as read, with the exact bytes for use as a write precondition.
#[derive(Debug)]
struct Loaded {
    key: Key,
    bytes: Bytes,
    record: ArtifactRecord,
}

/// How a put's reference was taken.
#[derive(Debug)]
enum Commit {
    /// The put's blob became the artifact's content.
    Created(ArtifactRef),
    /// The content was already stored; the put's blob is not needed.
    Joined(ArtifactRef),
}

/// What a release did.
#[derive(Debug)]
enum Released {
    /// References remain.
    Remaining(u64),
    /// The last reference went; chunks from `swept` on still need deleting.
    Freed {
        blob: String,
        swept: u64,
        chunks: u64,
    },
}

impl GenericArtifactStore {
    /// An artifact store on `backend`'s tenant with chunks of [`DEFAULT_CHUNK_SIZE`].
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericArtifactStore {
            backend,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// An artifact store whose new content is cut into chunks of `chunk_size` bytes.
    ///
    /// # Errors
    /// `InvalidInput` when `chunk_size` is 0 or above the backend value limit.
    pub fn with_chunk_size(backend: Arc<dyn StorageBackend>, chunk_size: usize) -> Result<Self> {
        if chunk_size == 0 || chunk_size > MAX_VALUE_BYTES {
            return Err(Error::invalid_input(format!(
                "chunk size must be 1 to {MAX_VALUE_BYTES} bytes, got {chunk_size}"
            )));
        }
        Ok(GenericArtifactStore {
            backend,
            chunk_size,
        })
    }

    /// The chunk size new content is cut into.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    async fn load(&self, hash: &str) -> Result<Option<Loaded>> {
        let key = ArtifactKey::Record { hash }.key()?;
        let Some(bytes) = self.backend.get(&key).await? else {
            return Ok(None);
        };
        let record = ArtifactRecord::decode(&bytes).map_err(|e| e.with_context("key", &key))?;
        Ok(Some(Loaded { key, bytes, record }))
    }

    /// Replaces `loaded` with `record` if it is unchanged.
    async fn swap(&self, loaded: &Loaded, record: &ArtifactRecord) -> Result<Option<()>> {
        let new = Bytes::from(record.encode()?);
        settled(
            self.backend
                .compare_and_swap(&loaded.key, Some(loaded.bytes.clone()), Some(new))
                .await,
        )
    }

    /// Takes a reference to already stored content; `Some(None)` when it is not stored.
    async fn try_join(&self, hash: &str) -> Result<Option<Option<ArtifactRef>>> {
        let Some(loaded) = self.load(hash).await? else {
            return Ok(Some(None));
        };
        let mut record = loaded.record.clone();
        record.info.refcount += 1;
        let joined = self.swap(&loaded, &record).await?;
        Ok(joined.map(|()| Some(record.info.to_ref())))
    }

    async fn try_commit(&self, upload: &Uploaded, options: &PutOptions) -> Result<Option<Commit>> {
        if let Some(joined) = self.try_join(&upload.hash).await? {
            return Ok(match joined {
                Some(reference) => Some(Commit::Joined(reference)),
                None => self.try_create(upload, options).await?.map(Commit::Created),
            });
        }
        Ok(None)
    }

    async fn try_create(
        &self,
        upload: &Uploaded,
        options: &PutOptions,
    ) -> Result<Option<ArtifactRef>> {
        let record = ArtifactRecord {
            info: ArtifactInfo {
                hash: upload.hash.clone(),
                size: upload.size,
                content_type: options.content_type.clone(),
                metadata: options.metadata.clone(),
                refcount: 1,
                created_at: OffsetDateTime::now_utc(),
            },
            blob: upload.blob.clone(),
            chunk_size: self.chunk_size as u64,
            chunks: upload.chunks,
        };
        let key = ArtifactKey::Record { hash: &upload.hash }.key()?;
        let created = self
            .backend
            .compare_and_swap(&key, None, Some(record.encode()?.into()))
            .await;
        Ok(settled(created)?.map(|()| record.info.to_ref()))
    }

    /// Takes a reference for a written blob, dropping the blob when the content was already
    /// stored or the reference could not be taken.
    async fn commit(&self, upload: Uploaded, options: &PutOptions) -> Result<ArtifactRef> {
        let commit = retry("artifact put", || self.try_commit(&upload, options)).await;
        let discard = || delete_chunks(self.backend.as_ref(), &upload.blob, 0, upload.chunks);
        match commit {
            Ok(Commit::Created(reference)) => Ok(reference),
            Ok(Commit::Joined(reference)) => discard().await.map(|()| reference),
            Err(err) => Err(with_cleanup(err, discard().await)),
        }
    }

    async fn try_release(&self, hash: &str) -> Result<Option<Released>> {
        let loaded = self.load(hash).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "artifact does not exist").with_context("hash", hash)
        })?;
        let mut record = loaded.record.clone();
        if record.info.refcount > 1 {
            record.info.refcount -= 1;
            let swapped = self.swap(&loaded, &record).await?;
            return Ok(swapped.map(|()| Released::Remaining(record.info.refcount)));
        }
        let swept = record.chunks.min(DELETE_BATCH);
        let mut batch = WriteBatch::new()
            .check(loaded.key.clone(), Some(loaded.bytes.clone()))
            .delete(loaded.key.clone());
        for key in chunk_keys(&record.blob, 0, swept)? {
            batch = batch.delete(key);
        }
        let freed = settled(self.backend.write_batch(batch).await)?;
        Ok(freed.map(|()| Released::Freed {
            blob: record.blob,
            swept,
            chunks: record.chunks,
        }))
    }
}

impl GenericArtifactStore {
    /// Writes the checked `artifacts` of an import: content missing here is uploaded to new
    /// blobs (noted in `uploaded`, for cleanup), then every record is written in one batch
    /// conditional on the records read.
    async fn try_import(
        &self,
        artifacts: &BTreeMap<String, (ArtifactInfo, Bytes)>,
        uploaded: &mut Vec<Uploaded>,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        for (hash, (info, content)) in artifacts {
            let record = match self.load(hash).await? {
                Some(loaded) => {
                    batch = batch.check(loaded.key.clone(), Some(loaded.bytes.clone()));
                    ArtifactRecord {
                        info: info.clone(),
                        ..loaded.record
                    }
                }
                None => {
                    let mut upload = Upload::new(self.backend.as_ref(), self.chunk_size);
                    if let Err(err) = upload.push(content.clone()).await {
                        return Err(with_cleanup(err, upload.abandon().await));
                    }
                    let done = upload.finish().await?;
                    let record = ArtifactRecord {
                        info: info.clone(),
                        blob: done.blob.clone(),
                        chunk_size: self.chunk_size as u64,
                        chunks: done.chunks,
                    };
                    uploaded.push(done);
                    batch = batch.check(ArtifactKey::Record { hash }.key()?, None);
                    record
                }
            };
            batch = batch.put(ArtifactKey::Record { hash }.key()?, record.encode()?);
        }
        batch.validate()?;
        self.backend.write_batch(batch).await
    }
}

/// Notes a failed cleanup on the error that caused it.
fn with_cleanup(err: Error, cleanup: Result<()>) -> Error {
    match cleanup {
        Ok(()) => err,
        Err(cleanup) => err.with_context("cleanup of the written chunks failed", cleanup),
    }
}

#[async_trait]
impl ArtifactStore for GenericArtifactStore {
    async fn put(&self, content: Bytes, options: PutOptions) -> Result<ArtifactRef> {
        options.validate()?;
        let hash = content_hash(&content);
        if let Some(reference) = retry("artifact put", || self.try_join(&hash)).await? {
            return Ok(reference);
        }
        let mut upload = Upload::new(self.backend.as_ref(), self.chunk_size);
        if let Err(err) = upload.push(content).await {
            return Err(with_cleanup(err, upload.abandon().await));
        }
        self.commit(upload.finish().await?, &options).await
    }

    async fn put_stream(
        &self,
        mut content: ChunkStream<'_>,
        options: PutOptions,
    ) -> Result<ArtifactRef> {
        options.validate()?;
        let mut upload = Upload::new(self.backend.as_ref(), self.chunk_size);
        while let Some(piece) = content.next().await {
            let pushed = match piece {
                Ok(bytes) => upload.push(bytes).await,
                Err(err) => Err(err),
            };
            if let Err(err) = pushed {
                return Err(with_cleanup(err, upload.abandon().await));
            }
        }
        self.commit(upload.finish().await?, &options).await
    }

    async fn get(&self, hash: &str) -> Result<Option<Artifact>> {
        match self.open(hash).await? {
            Some(reader) => reader.read_all().await.map(Some),
            None => Ok(None),
        }
    }

    async fn open(&self, hash: &str) -> Result<Option<ArtifactReader>> {
        let hash = check_hash(hash)?;
        let Some(loaded) = self.load(&hash).await? else {
            return Ok(None);
        };
        let info = loaded.record.info.clone();
        let chunks = kv_chunk_stream(self.backend.clone(), loaded.key, loaded.record);
        Ok(Some(ArtifactReader { info, chunks }))
    }

    async fn stat(&self, hash: &str) -> Result<Option<ArtifactInfo>> {
        let hash = check_hash(hash)?;
        Ok(self.load(&hash).await?.map(|loaded| loaded.record.info))
    }

    async fn exists(&self, hash: &str) -> Result<bool> {
        let hash = check_hash(hash)?;
        self.backend
            .exists(&ArtifactKey::Record { hash: &hash }.key()?)
            .await
    }

    async fn release(&self, hash: &str) -> Result<u64> {
        let hash = check_hash(hash)?;
        match retry("artifact release", || self.try_release(&hash)).await? {
            Released::Remaining(remaining) => Ok(remaining),
            Released::Freed {
                blob,
                swept,
                chunks,
            } => delete_chunks(self.backend.as_ref(), &blob, swept, chunks)
                .await
                .map(|()| 0),
        }
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<ArtifactInfo>> {
        check_scan_limit(limit)?;
        let after = match after {
            Some(hash) => Some(
                ArtifactKey::Record {
                    hash: &check_hash(hash)?,
                }
                .key()?,
            ),
            None => None,
        };
        let page = self
            .backend
            .scan(&ArtifactKey::records_prefix(), after.as_ref(), limit)
            .await?;
        let items = page
            .entries
            .iter()
            .map(|(key, bytes)| {
                ArtifactRecord::decode(bytes)
                    .map(|record| record.info)
                    .map_err(|e| e.with_context("key", key))
            })
            .collect::<Result<Vec<_>>>()?;
        let next_after = page
            .next_after
            .and(items.last().map(|info| info.hash.clone()));
        Ok(Page { items, next_after })
    }
}

/// One record per artifact: its [`ArtifactInfo`] and its whole content, read through the
/// verifying reader (see [`check_portable_artifact`] for the memory a page needs). An import
/// replaces the description (reference count included) of content stored here and uploads
/// content missing here in this store's chunk size; every record is written in one batch,
/// and the blobs uploaded by a failed import are removed.
#[async_trait]
impl PortableStore for GenericArtifactStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let (entries, next) = scan_export(
            self.backend.as_ref(),
            &ArtifactKey::records_prefix(),
            after,
            limit,
        )
        .await?;
        let mut records = Vec::with_capacity(entries.len());
        for (key, bytes) in entries {
            let record = ArtifactRecord::decode(&bytes).map_err(|e| e.with_context("key", &key))?;
            let reader = ArtifactReader {
                info: record.info.clone(),
                chunks: kv_chunk_stream(self.backend.clone(), key, record),
            };
            let artifact = reader.read_all().await?;
            records.push(encode_portable(&artifact.info, &artifact.content)?);
        }
        Ok(ExportPage { records, next })
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut artifacts = BTreeMap::new();
        for record in records {
            let (info, content): (ArtifactInfo, &[u8]) = decode_portable(record)?;
            check_portable_artifact(&info, content)?;
            let content = record.slice_ref(content);
            artifacts.insert(info.hash.clone(), (info, content));
        }
        let mut uploaded = Vec::new();
        let imported = self.try_import(&artifacts, &mut uploaded).await;
        if let Err(err) = imported {
            let mut cleanup = Ok(());
            for blob in &uploaded {
                cleanup = cleanup
                    .and(delete_chunks(self.backend.as_ref(), &blob.blob, 0, blob.chunks).await);
            }
            return Err(with_cleanup(err, cleanup));
        }
        Ok(())
    }
}
