//! Writing content as chunks of a fresh blob of the key-value backend.

use std::mem;

use cairn_core::{Bytes, Key, Result, StorageBackend};
use uuid::Uuid;

use super::chunking::{Chunker, FLUSH_BYTES};
use super::keys::ArtifactKey;

/// Chunks buffered before they are written with one `set_batch`.
const FLUSH_CHUNKS: usize = 1_000;

/// Keys deleted per batch when a blob is removed.
pub(crate) const DELETE_BATCH: u64 = 1_000;

/// A blob being written: a [`Chunker`] cuts and hashes the content, and full chunks are
/// written in batches.
#[derive(Debug)]
pub(crate) struct Upload<'a> {
    backend: &'a dyn StorageBackend,
    blob: String,
    chunker: Chunker,
    pending: Vec<(Key, Bytes)>,
    pending_bytes: usize,
    chunks: u64,
}

/// A completely written blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// The blob id.
    pub(crate) blob: String,
    /// BLAKE3 of the content, lowercase hex.
    pub(crate) hash: String,
    /// Content length.
    pub(crate) size: u64,
    /// Number of chunks.
    pub(crate) chunks: u64,
}

impl<'a> Upload<'a> {
    /// Starts a blob with a fresh id.
    pub(crate) fn new(backend: &'a dyn StorageBackend, chunk_size: usize) -> Upload<'a> {
        Upload {
            backend,
            blob: Uuid::now_v7().simple().to_string(),
            chunker: Chunker::new(chunk_size),
            pending: Vec::new(),
            pending_bytes: 0,
            chunks: 0,
        }
    }

    /// Appends `bytes` to the content.
    ///
    /// # Errors
    /// Backend errors of writing full chunks.
    pub(crate) async fn push(&mut self, bytes: Bytes) -> Result<()> {
        for chunk in self.chunker.push(bytes) {
            self.emit(chunk).await?;
        }
        Ok(())
    }

    /// Writes what is buffered and describes the blob.
    ///
    /// # Errors
    /// Backend errors of the last writes.
    pub(crate) async fn finish(mut self) -> Result<Uploaded> {
        let chunker = mem::replace(&mut self.chunker, Chunker::new(1));
        let (last, summary) = chunker.finish();
        if let Some(last) = last {
            self.emit(last).await?;
        }
        self.flush().await?;
        Ok(Uploaded {
            blob: self.blob,
            hash: summary.hash,
            size: summary.size,
            chunks: self.chunks,
        })
    }

    /// Removes whatever was written of the blob.
    ///
    /// # Errors
    /// Backend errors of the deletes.
    pub(crate) async fn abandon(self) -> Result<()> {
        delete_chunks(self.backend, &self.blob, 0, self.chunks).await
    }

    async fn emit(&mut self, chunk: Bytes) -> Result<()> {
        let key = ArtifactKey::Chunk {
            blob: &self.blob,
            index: self.chunks,
        }
        .key()?;
        self.chunks += 1;
        self.pending_bytes += chunk.len();
        self.pending.push((key, chunk));
        if self.pending_bytes >= FLUSH_BYTES || self.pending.len() >= FLUSH_CHUNKS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let entries = mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.backend.set_batch(entries).await
    }
}

/// The keys of chunks `from..to` of `blob`.
///
/// # Errors
/// `InvalidInput` when a key cannot be built (never for blob ids made by [`Upload`]).
pub(crate) fn chunk_keys(blob: &str, from: u64, to: u64) -> Result<Vec<Key>> {
    (from..to)
        .map(|index| ArtifactKey::Chunk { blob, index }.key())
        .collect()
}

/// Deletes chunks `from..to` of `blob`, [`DELETE_BATCH`] at a time.
///
/// # Errors
/// Backend errors of the deletes.
pub(crate) async fn delete_chunks(
    backend: &dyn StorageBackend,
    blob: &str,
    from: u64,
    to: u64,
) -> Result<()> {
    let mut start = from;
    while start < to {
        let end = to.min(start + DELETE_BATCH);
        backend.delete_batch(&chunk_keys(blob, start, end)?).await?;
        start = end;
    }
    Ok(())
}
