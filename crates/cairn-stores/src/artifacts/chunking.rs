//! Cutting content that arrives in pieces of any size into fixed-size chunks while hashing
//! it: the part of writing an artifact that does not depend on where the chunks go. Every
//! artifact store (the generic one and native ones) writes content through a [`Chunker`].

use std::mem;

use cairn_core::Bytes;

/// Chunk bytes an artifact store buffers before it writes them in one batch (one
/// `set_batch`, one statement).
pub const FLUSH_BYTES: usize = 8 << 20;

/// Cuts content into chunks of exactly `chunk_size` bytes (the last one may be shorter) and
/// computes its BLAKE3 hash on the way, so the hash is always Cairn's, never a caller's.
#[derive(Debug)]
pub struct Chunker {
    chunk_size: usize,
    hasher: blake3::Hasher,
    partial: Vec<u8>,
    size: u64,
    chunks: u64,
}

/// What a [`Chunker`] saw, once the content ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    /// BLAKE3 of the content, 64 lowercase hex digits.
    pub hash: String,
    /// Content length in bytes.
    pub size: u64,
    /// Number of chunks, the last one included.
    pub chunks: u64,
}

impl Chunker {
    /// A chunker for chunks of `chunk_size` bytes (at least 1; 0 is treated as 1).
    pub fn new(chunk_size: usize) -> Chunker {
        Chunker {
            chunk_size: chunk_size.max(1),
            hasher: blake3::Hasher::new(),
            partial: Vec::new(),
            size: 0,
            chunks: 0,
        }
    }

    /// Appends `bytes` to the content and returns the chunks it completed, in order. Whole
    /// chunks inside `bytes` are returned as slices of it, without copying.
    pub fn push(&mut self, mut bytes: Bytes) -> Vec<Bytes> {
        self.hasher.update(&bytes);
        self.size += bytes.len() as u64;
        let mut full = Vec::new();
        while !bytes.is_empty() {
            if self.partial.is_empty() && bytes.len() >= self.chunk_size {
                full.push(bytes.split_to(self.chunk_size));
                continue;
            }
            let take = (self.chunk_size - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes.split_to(take));
            if self.partial.len() == self.chunk_size {
                full.push(Bytes::from(mem::take(&mut self.partial)));
            }
        }
        self.chunks += full.len() as u64;
        full
    }

    /// Ends the content: the last, shorter chunk if one is pending, and the summary.
    pub fn finish(mut self) -> (Option<Bytes>, Chunked) {
        let last = (!self.partial.is_empty()).then(|| Bytes::from(mem::take(&mut self.partial)));
        let chunks = self.chunks + u64::from(last.is_some());
        let summary = Chunked {
            hash: self.hasher.finalize().to_hex().to_string(),
            size: self.size,
            chunks,
        };
        (last, summary)
    }
}

/// BLAKE3 of `content`, 64 lowercase hex digits: the address of an artifact.
pub fn content_hash(content: &[u8]) -> String {
    blake3::hash(content).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn chunks_reassemble_whatever_the_pieces(
            content in prop::collection::vec(any::<u8>(), 0..200),
            chunk_size in 1usize..17,
            cuts in prop::collection::vec(0usize..200, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(content.len())).collect();
            cuts.push(0);
            cuts.push(content.len());
            cuts.sort_unstable();
            let mut chunker = Chunker::new(chunk_size);
            let mut chunks = Vec::new();
            for window in cuts.windows(2) {
                let piece = Bytes::copy_from_slice(&content[window[0]..window[1]]);
                chunks.extend(chunker.push(piece));
            }
            let (last, summary) = chunker.finish();
            chunks.extend(last);
            prop_assert!(chunks.iter().all(|c| c.len() == chunk_size || c.len() < chunk_size));
            prop_assert!(chunks.iter().rev().skip(1).all(|c| c.len() == chunk_size));
            prop_assert_eq!(chunks.concat(), content.clone());
            prop_assert_eq!(summary.chunks, chunks.len() as u64);
            prop_assert_eq!(summary.size, content.len() as u64);
            prop_assert_eq!(summary.hash, content_hash(&content));
        }
    }
}
