//! Reading a blob chunk by chunk while verifying it against the artifact's hash.

use std::sync::Arc;

use cairn_core::{Bytes, Error, ErrorKind, Key, Result, StorageBackend};
use futures::StreamExt;

use super::ChunkStream;
use super::keys::ArtifactKey;
use super::record::ArtifactRecord;

/// One read in progress.
struct Reading {
    backend: Arc<dyn StorageBackend>,
    record_key: Key,
    record: ArtifactRecord,
    next: u64,
    hasher: blake3::Hasher,
    finished: bool,
}

/// Streams the chunks of `record`'s blob in order; the last item is an error when the content
/// does not match its hash or a chunk is missing or has the wrong length.
pub(crate) fn chunk_stream(
    backend: Arc<dyn StorageBackend>,
    record_key: Key,
    record: ArtifactRecord,
) -> ChunkStream<'static> {
    let reading = Reading {
        backend,
        record_key,
        record,
        next: 0,
        hasher: blake3::Hasher::new(),
        finished: false,
    };
    futures::stream::unfold(reading, Reading::step).boxed()
}

impl Reading {
    async fn step(mut self) -> Option<(Result<Bytes>, Reading)> {
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
        let key = ArtifactKey::Chunk {
            blob: &self.record.blob,
            index,
        }
        .key()?;
        let Some(chunk) = self.backend.get(&key).await? else {
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

    /// The error for a missing chunk: `Corruption` when the artifact's record still points at
    /// this blob, `NotFound` when the artifact was released meanwhile.
    async fn missing(&self, index: u64) -> Error {
        let still_there = match self.backend.get(&self.record_key).await {
            Ok(Some(bytes)) => {
                ArtifactRecord::decode(&bytes).is_ok_and(|current| current.blob == self.record.blob)
            }
            Ok(None) => false,
            Err(err) => return err,
        };
        let err = if still_there {
            Error::corruption("artifact chunk is missing")
        } else {
            Error::new(
                ErrorKind::NotFound,
                "artifact was released while being read",
            )
        };
        err.with_context("hash", &self.record.info.hash)
            .with_context("chunk", index)
    }
}
