//! Reading a blob chunk by chunk while verifying it against the artifact's hash. The
//! verification is written once here; where the chunks come from is a [`ChunkSource`].

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Key, Result, StorageBackend};
use futures::StreamExt;

use super::ChunkStream;
use super::keys::ArtifactKey;
use super::record::ArtifactRecord;

/// Where a reader gets the chunks of one artifact's blob.
#[async_trait]
pub trait ChunkSource: Send + Sync + 'static {
    /// Chunks `from`, `from + 1`, … in order, as many as the source reads at once: empty
    /// exactly when chunk `from` is missing.
    ///
    /// # Errors
    /// The storage's errors.
    async fn fetch(&self, from: u64) -> Result<Vec<Bytes>>;

    /// Whether the artifact is still stored with this blob: tells a damaged artifact (a chunk
    /// is missing) from one released while it was being read.
    ///
    /// # Errors
    /// The storage's errors.
    async fn still_stored(&self) -> Result<bool>;
}

/// The chunks of a blob of the generic store, one `get` each.
struct KvChunks {
    backend: Arc<dyn StorageBackend>,
    record_key: Key,
    blob: String,
}

#[async_trait]
impl ChunkSource for KvChunks {
    async fn fetch(&self, from: u64) -> Result<Vec<Bytes>> {
        let key = ArtifactKey::Chunk {
            blob: &self.blob,
            index: from,
        }
        .key()?;
        Ok(self.backend.get(&key).await?.into_iter().collect())
    }

    async fn still_stored(&self) -> Result<bool> {
        Ok(match self.backend.get(&self.record_key).await? {
            Some(bytes) => {
                ArtifactRecord::decode(&bytes).is_ok_and(|current| current.blob == self.blob)
            }
            None => false,
        })
    }
}

/// Streams the chunks of the generic store's `record`, stored at `record_key`.
pub(crate) fn kv_chunk_stream(
    backend: Arc<dyn StorageBackend>,
    record_key: Key,
    record: ArtifactRecord,
) -> ChunkStream<'static> {
    let source = KvChunks {
        backend,
        record_key,
        blob: record.blob.clone(),
    };
    chunk_stream(source, record)
}

/// One read in progress.
struct Reading<S> {
    source: S,
    record: ArtifactRecord,
    fetched: VecDeque<Bytes>,
    next: u64,
    hasher: blake3::Hasher,
    finished: bool,
}

/// Streams the chunks of `record`'s blob from `source` in order, checking each chunk's length
/// and, at the end, the BLAKE3 hash of the whole content: the last item is a `Corruption`
/// error when the content does not match, or a chunk is missing or has the wrong length
/// (`NotFound` when the artifact was released while being read).
pub fn chunk_stream<S: ChunkSource>(source: S, record: ArtifactRecord) -> ChunkStream<'static> {
    let reading = Reading {
        source,
        record,
        fetched: VecDeque::new(),
        next: 0,
        hasher: blake3::Hasher::new(),
        finished: false,
    };
    futures::stream::unfold(reading, Reading::step).boxed()
}

impl<S: ChunkSource> Reading<S> {
    async fn step(mut self) -> Option<(Result<Bytes>, Reading<S>)> {
        if self.finished {
            return None;
        }
        if self.next == self.record.chunks {
            // Only reached for empty content: verify the hash of nothing.
            self.finished = true;
            return self.verify().err().map(|err| (Err(err), self));
        }
        let item = self.read_next().await;
        if item.is_err() {
            self.finished = true;
        }
        Some((item, self))
    }

    async fn read_next(&mut self) -> Result<Bytes> {
        let index = self.next;
        if self.fetched.is_empty() {
            self.fetched = self.source.fetch(index).await?.into();
        }
        let Some(chunk) = self.fetched.pop_front() else {
            return Err(self.missing(index).await);
        };
        if chunk.len() as u64 != self.record.chunk_len(index) {
            return Err(Error::corruption("artifact chunk has the wrong length")
                .with_context("hash", &self.record.info.hash)
                .with_context("chunk", index));
        }
        self.hasher.update(&chunk);
        self.next += 1;
        if self.next == self.record.chunks {
            self.finished = true;
            self.verify()?;
        }
        Ok(chunk)
    }

    fn verify(&self) -> Result<()> {
        let actual = self.hasher.finalize().to_hex();
        if actual.as_str() != self.record.info.hash {
            return Err(
                Error::corruption("artifact content does not match its hash")
                    .with_context("hash", &self.record.info.hash)
                    .with_context("actual", actual),
            );
        }
        Ok(())
    }

    /// The error for a missing chunk: `Corruption` when the artifact is still stored with
    /// this blob, `NotFound` when it was released meanwhile.
    async fn missing(&self, index: u64) -> Error {
        let err = match self.source.still_stored().await {
            Ok(true) => Error::corruption("artifact chunk is missing"),
            Ok(false) => Error::new(
                ErrorKind::NotFound,
                "artifact was released while being read",
            ),
            Err(err) => return err,
        };
        err.with_context("hash", &self.record.info.hash)
            .with_context("chunk", index)
    }
}
