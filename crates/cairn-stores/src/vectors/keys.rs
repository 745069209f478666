//! The key layout of [`GenericVectorStore`](super::GenericVectorStore).
//!
//! ```text
//! vec/c/<collection>                        collection record (versioned JSON)
//! vec/v/<collection>/<generation>/<id>      one vector (versioned binary, see the codec)
//! ```
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
        }
    }

    /// The prefix of every vector of one generation of a collection.
    pub fn vectors_prefix(collection: &str, generation: &str) -> String {
        vectors_path(collection, generation).prefix()
    }

    /// The prefix of every vector of every collection.
    pub fn all_vectors_prefix() -> String {
        KeyPath::new(SCOPE).name("v").prefix()
    }
}

fn vectors_path(collection: &str, generation: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("v").id(collection).id(generation)
}
