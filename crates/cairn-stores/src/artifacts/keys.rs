//! The key layout of [`GenericArtifactStore`](super::GenericArtifactStore).
//!
//! ```text
//! ar/o/<hash>              artifact record (versioned JSON: info, blob id, chunk layout)
//! ar/b/<blob>/<index>      chunk `index` of a blob (raw content bytes, at most one chunk size)
//! ```
//!
//! A blob is one uploaded copy of some content, named by a fresh id: content is written under
//! its blob before its hash is known (streamed puts), and the record points at the blob that
//! won the race to store it. Chunk values are raw bytes; their format is fixed by the record's
//! version, and the hash in the record verifies them. Public for tooling and integrity tests.

use cairn_core::{Key, Result};

use crate::codec::KeyPath;

const SCOPE: &str = "ar";

/// One key of the artifact store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKey<'a> {
    /// The record of the artifact with this (canonical) hash.
    Record {
        /// The content hash.
        hash: &'a str,
    },
    /// One chunk of a blob.
    Chunk {
        /// The blob id.
        blob: &'a str,
        /// The chunk's position, from 0.
        index: u64,
    },
}

impl ArtifactKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the key would be invalid (never for canonical hashes and blob ids).
    pub fn key(&self) -> Result<Key> {
        match *self {
            ArtifactKey::Record { hash } => records().id(hash).key(),
            ArtifactKey::Chunk { blob, index } => blobs().id(blob).u64(index).key(),
        }
    }

    /// The prefix of every artifact record.
    pub fn records_prefix() -> String {
        records().prefix()
    }

    /// The prefix of every chunk of every blob.
    pub fn all_chunks_prefix() -> String {
        blobs().prefix()
    }

    /// The prefix of the store's whole key range.
    pub fn scope_prefix() -> String {
        KeyPath::new(SCOPE).prefix()
    }
}

fn records() -> KeyPath {
    KeyPath::new(SCOPE).name("o")
}

fn blobs() -> KeyPath {
    KeyPath::new(SCOPE).name("b")
}
