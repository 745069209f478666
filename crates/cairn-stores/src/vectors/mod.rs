//! Vector embeddings: named collections of fixed-dimension `f32` vectors with metadata, and
//! top-k search by cosine similarity, Euclidean (L2) distance or dot product: exact in
//! [`GenericVectorStore`], approximate (HNSW) with exact re-scoring in [`HnswVectorStore`].
//!
//! # Score convention
//! Every [`SearchHit::score`] is the natural measure of its collection's [`Metric`]:
//! - [`Metric::Cosine`]: cosine similarity in `[-1, 1]`, **higher is better**;
//! - [`Metric::Dot`]: the dot product, **higher is better**;
//! - [`Metric::L2`]: the Euclidean distance (not squared), **lower is better**.
//!
//! Hits always come best first, and [`SearchRequest::min_score`] is the worst acceptable
//! score: a lower bound for cosine and dot, an upper bound on the distance for L2.

mod codec;
mod generic;
mod hnsw;
mod kernel;
pub mod keys;
mod portable;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use generic::GenericVectorStore;
pub use hnsw::{HnswParams, HnswVectorStore};
pub use portable::{
    CollectionImport, PortableVector, PortableVectorMeta, VectorExportSource, check_import_into,
    decode_vector_import, encode_vector_record, export_vectors,
};

/// Largest vector dimension a collection may have.
pub const MAX_DIMENSION: usize = 16_000;

/// Largest `k` a search may ask for.
pub const MAX_K: usize = 10_000;

/// Largest [`SearchRequest::ef_search`] accepted (pgvector's limit for `hnsw.ef_search`).
pub const MAX_EF_SEARCH: usize = 1_000;

/// Free-form metadata attached to a vector: a JSON object.
pub type Metadata = Map<String, Value>;

/// How vectors of a collection are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cosine similarity; higher is better. Zero vectors are rejected.
    Cosine,
    /// Euclidean distance; lower is better.
    L2,
    /// Dot product; higher is better.
    Dot,
}

/// A collection's fixed parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The collection's name.
    pub name: String,
    /// The dimension every vector of the collection has.
    pub dimension: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// When the collection was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A stored vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorRecord {
    /// The vector's id, unique within its collection.
    pub id: String,
    /// The vector's components.
    pub vector: Vec<f32>,
    /// Metadata searched by [`SearchRequest::filter`].
    pub metadata: Metadata,
}

/// A top-k query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// The query vector; it must have the collection's dimension.
    pub vector: Vec<f32>,
    /// How many hits to return at most: 1 to [`MAX_K`].
    pub k: usize,
    /// Metadata equality filter: a vector matches when its metadata holds every pair of the
    /// filter with an equal value. The empty filter matches every vector.
    #[serde(default)]
    pub filter: Metadata,
    /// The worst acceptable score (see the [module docs](self)): hits with a lower cosine or
    /// dot score, or with a larger L2 distance, are left out.
    #[serde(default)]
    pub min_score: Option<f32>,
    /// How many candidates an approximate index explores (HNSW `ef_search`): higher is more
    /// accurate and slower. `None` leaves the store's default. Stores that search exactly (the
    /// generic store, PostgreSQL collections without an index) ignore it.
    #[serde(default)]
    pub ef_search: Option<usize>,
    /// Search exactly: score every vector instead of walking an approximate index (slower,
    /// recall 1). The HNSW engine and PostgreSQL honour it; stores that always search exactly
    /// (the generic store) need nothing more.
    #[serde(default)]
    pub exact: bool,
}

impl SearchRequest {
    /// A request for the `k` nearest vectors to `vector`, without filter or threshold.
    pub fn new(vector: Vec<f32>, k: usize) -> SearchRequest {
        SearchRequest {
            vector,
            k,
            filter: Metadata::new(),
            min_score: None,
            ef_search: None,
            exact: false,
        }
    }

    /// Checks the request against a collection.
    ///
    /// # Errors
    /// `InvalidInput` when `k` is outside 1 to [`MAX_K`], the query vector is not a valid
    /// vector of the collection (see [`check_vector`]), `min_score` is NaN, infinite or, for
    /// L2, negative, or `ef_search` is outside 1 to [`MAX_EF_SEARCH`].
    pub fn validate(&self, collection: &CollectionInfo) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid_input(format!(
                "k must be 1 to {MAX_K}, got {}",
                self.k
            )));
        }
        if let Some(ef) = self.ef_search {
            if ef == 0 || ef > MAX_EF_SEARCH {
                return Err(Error::invalid_input(format!(
                    "ef_search must be 1 to {MAX_EF_SEARCH}, got {ef}"
                )));
            }
        }
        check_vector(&self.vector, collection.dimension, collection.metric)?;
        match self.min_score {
            Some(min) if !min.is_finite() => {
                Err(Error::invalid_input("min_score must be a finite number"))
            }
            Some(min) if collection.metric == Metric::L2 && min < 0.0 => Err(Error::invalid_input(
                "min_score of an L2 collection is a distance, at least 0",
            )),
            _ => Ok(()),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The matching vector's id.
    pub id: String,
    /// Its score under the collection's metric (see the [module docs](self)).
    pub score: f32,
    /// Its metadata.
    pub metadata: Metadata,
}

/// Checks a collection's dimension: 1 to [`MAX_DIMENSION`].
///
/// # Errors
/// `InvalidInput` outside that range.
pub fn check_dimension(dimension: usize) -> Result<()> {
    if dimension == 0 || dimension > MAX_DIMENSION {
        return Err(Error::invalid_input(format!(
            "dimension must be 1 to {MAX_DIMENSION}, got {dimension}"
        )));
    }
    Ok(())
}

/// Checks a vector against a collection's dimension and metric.
///
/// # Errors
/// `InvalidInput` when the length differs from `dimension`, a component is NaN or infinite,
/// the squared length overflows `f32` (so no score can become NaN), or under
/// [`Metric::Cosine`] the squared length is zero (the direction is undefined).
pub fn check_vector(vector: &[f32], dimension: usize, metric: Metric) -> Result<()> {
    if vector.len() != dimension {
        return Err(Error::invalid_input(format!(
            "vector has {} components, the collection's dimension is {dimension}",
            vector.len()
        )));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid_input(format!(
            "vector component {i} is {}, components must be finite",
            vector[i]
        )));
    }
    let squared_norm: f32 = vector.iter().map(|x| x * x).sum();
    if !squared_norm.is_finite() {
        return Err(Error::invalid_input(
            "vector is too large: its squared length overflows f32",
        ));
    }
    if metric == Metric::Cosine && squared_norm == 0.0 {
        return Err(Error::invalid_input(
            "a zero (or vanishingly small) vector has no direction and cannot be compared by \
             cosine",
        ));
    }
    Ok(())
}

/// Stores vectors in named collections and finds the nearest ones.
///
/// Collections, vector ids and the tenant scope come from the backend handle the store was
/// built on. Names and ids are 1 to 256 bytes without NUL.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait VectorStore: crate::portable::PortableStore {
    /// Creates collection `name` with a fixed `dimension` and `metric`.
    ///
    /// # Behavior
    /// - Creating an existing collection with the same dimension and metric is a no-op that
    ///   returns the existing collection.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name or a dimension outside 1 to [`MAX_DIMENSION`];
    /// `Conflict` when the collection exists with another dimension or metric.
    async fn create_collection(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<CollectionInfo>;

    /// Reads a collection's parameters; `None` when it does not exist.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name; `Corruption` when the stored record does not decode.
    async fn collection(&self, name: &str) -> Result<Option<CollectionInfo>>;

    /// Deletes a collection and its vectors; returns whether it existed.
    ///
    /// # Behavior
    /// - Its vectors are invisible at once, even to a collection later created with the same
    ///   name.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name.
    async fn delete_collection(&self, name: &str) -> Result<bool>;

    /// Stores `vector` with `metadata` under `id`, replacing any vector of that id.
    ///
    /// # Errors
    /// `NotFound` when the collection does not exist; `InvalidInput` for a bad id or a vector
    /// that [`check_vector`] rejects (nothing is written).
    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        vector: Vec<f32>,
        metadata: Metadata,
    ) -> Result<()>;

    /// Stores several vectors atomically: all of them or none.
    ///
    /// # Behavior
    /// - For an id given twice the last record wins.
    ///
    /// # Errors
    /// As [`VectorStore::upsert`]; one bad record fails the whole batch and nothing is written.
    async fn upsert_batch(&self, collection: &str, records: Vec<VectorRecord>) -> Result<()>;

    /// Reads a vector; `None` when the collection has no vector `id`.
    ///
    /// # Errors
    /// `NotFound` when the collection does not exist; `InvalidInput` for a bad id;
    /// `Corruption` when the stored vector fails its integrity check.
    async fn get(&self, collection: &str, id: &str) -> Result<Option<VectorRecord>>;

    /// Removes a vector; returns whether it existed.
    ///
    /// # Errors
    /// `NotFound` when the collection does not exist; `InvalidInput` for a bad id.
    async fn delete(&self, collection: &str, id: &str) -> Result<bool>;

    /// How many vectors the collection holds.
    ///
    /// # Errors
    /// `NotFound` when the collection does not exist.
    async fn count(&self, collection: &str) -> Result<u64>;

    /// The best `k` vectors for `request`, best first (see the [module docs](self)).
    ///
    /// # Behavior
    /// - The filter and threshold never starve `k`: when at least `k` vectors match, `k` hits
    ///   come back, however many vectors do not match.
    /// - Equal scores are ordered by id.
    /// - A vector upserted or deleted before the call is seen as such.
    ///
    /// # Errors
    /// `NotFound` when the collection does not exist; `InvalidInput` when
    /// [`SearchRequest::validate`] fails; `Corruption` when a stored vector fails its
    /// integrity check.
    async fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<SearchHit>>;
}
