//! The key layout of [`GenericVectorStore`](super::GenericVectorStore).
//!
//! ```text
//! vec/c/<collection>                        collection record (versioned JSON)
//! vec/v/<collection>/<generation>/<id>      one vector (versioned binary, see the codec)
//! vec/s/<collection>/<generation>/<segment>/<chunk>   one chunk of a sealed HNSW segment
//! vec/s/<collection>/<generation>/<segment>/m         that segment's manifest (versioned JSON)
//! ```
//!
//! Segments are written only by the HNSW engine, as a cache of its index: the vectors stay the
//! source of truth, and a segment that is missing, damaged or stale is rebuilt from them.
//!
//! The generation is a fresh id per created collection, so the vectors of a deleted
//! collection are never seen by a later collection of the same name, even before they are
//! swept. Public for tooling and integrity tests.

use cairn_core::{Key, Result};

use crate::codec::KeyPath;

const SCOPE: &str = "vec";

/// One key of the vector store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKey<'a> {
    /// A collection's record.
    Collection {
        /// The collection's name.
        name: &'a str,
    },
    /// One vector of one generation of a collection.
    Vector {
        /// The collection's name.
        collection: &'a str,
        /// The collection's generation.
        generation: &'a str,
        /// The vector's id.
        id: &'a str,
    },
    /// The manifest of one sealed HNSW segment.
    SegmentManifest {
        /// The collection's name.
        collection: &'a str,
        /// The collection's generation.
        generation: &'a str,
        /// The segment's number, unique within the generation.
        segment: u64,
    },
    /// One chunk of a sealed HNSW segment's payload.
    SegmentChunk {
        /// The collection's name.
        collection: &'a str,
        /// The collection's generation.
        generation: &'a str,
        /// The segment's number.
        segment: u64,
        /// The chunk's position in the payload.
        chunk: u64,
    },
}

impl VectorKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the names make the key too long.
    pub fn key(&self) -> Result<Key> {
        match *self {
            VectorKey::Collection { name } => KeyPath::new(SCOPE).name("c").id(name).key(),
            VectorKey::Vector {
                collection,
                generation,
                id,
            } => vectors_path(collection, generation).id(id).key(),
            VectorKey::SegmentManifest {
                collection,
                generation,
                segment,
            } => segments_path(collection, generation)
                .u64(segment)
                .name("m")
                .key(),
            VectorKey::SegmentChunk {
                collection,
                generation,
                segment,
                chunk,
            } => segments_path(collection, generation)
                .u64(segment)
                .u64(chunk)
                .key(),
        }
    }

    /// The prefix of every key of one HNSW segment.
    pub fn segment_prefix(collection: &str, generation: &str, segment: u64) -> String {
        segments_path(collection, generation).u64(segment).prefix()
    }

    /// The prefix of every HNSW segment key of one generation of a collection.
    pub fn segments_prefix(collection: &str, generation: &str) -> String {
        segments_path(collection, generation).prefix()
    }

    /// The prefix of every vector of one generation of a collection.
    pub fn vectors_prefix(collection: &str, generation: &str) -> String {
        vectors_path(collection, generation).prefix()
    }

    /// The prefix of every collection record.
    pub fn collections_prefix() -> String {
        KeyPath::new(SCOPE).name("c").prefix()
    }

    /// The prefix of every vector of every collection.
    pub fn all_vectors_prefix() -> String {
        KeyPath::new(SCOPE).name("v").prefix()
    }
}

fn vectors_path(collection: &str, generation: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("v").id(collection).id(generation)
}

fn segments_path(collection: &str, generation: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("s").id(collection).id(generation)
}
