//! The one runner every vector engine goes through: load the base set with `upsert_batch`,
//! wait until it is indexed, then time the query set at each `ef_search`.
//!
//! An [`Engine`] is a name, an `Arc<dyn VectorStore>` and an optional hook that waits until
//! the store has indexed what it acknowledged (an in-process HNSW seals its buffer in the
//! background; pgvector indexes on insert and needs none). The runner calls the store exactly
//! as an application does, through the object-safe trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use cairn_stores::vectors::{Metadata, Metric, SearchRequest, VectorRecord, VectorStore};
use serde::Serialize;
use serde_json::Value;

use super::data::Dataset;
use super::exact::{Neighbour, recall};
use crate::BenchResult;
use crate::stats::{Stats, elapsed_nanos};

/// The collection every engine is loaded into.
pub(crate) const COLLECTION: &str = "cairn-bench";

/// Neighbours asked for and judged: recall@10.
pub(crate) const K: usize = 10;

/// Queries run untimed before each measurement.
const WARMUP_QUERIES: usize = 10;

/// A future the ready hook returns.
pub(crate) type ReadyFuture = Pin<Box<dyn Future<Output = BenchResult<()>> + Send>>;

/// Waits until the store has indexed everything it acknowledged in the named collection.
pub(crate) type ReadyHook = Box<dyn Fn(String) -> ReadyFuture + Send + Sync>;

/// A vector store under test.
pub(crate) struct Engine {
    /// The name in the table and the JSON file.
    pub(crate) name: &'static str,
    /// The store, driven through the trait.
    pub(crate) store: Arc<dyn VectorStore>,
    /// Whether the store honours [`SearchRequest::ef_search`]: approximate engines are
    /// queried once per `ef_search`, exact ones once.
    pub(crate) approximate: bool,
    /// Run after the load and timed as build/seal time.
    pub(crate) ready: Option<ReadyHook>,
    /// Whether searches set [`SearchRequest::exact`] (an approximate store's exact mode).
    pub(crate) exact_requests: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("approximate", &self.approximate)
            .field("ready", &self.ready.is_some())
            .field("exact_requests", &self.exact_requests)
            .finish()
    }
}

impl Engine {
    /// An engine that searches exactly and needs no wait after writes.
    pub(crate) fn exact(name: &'static str, store: Arc<dyn VectorStore>) -> Engine {
        Engine {
            name,
            store,
            approximate: false,
            ready: None,
            exact_requests: false,
        }
    }

    /// An engine with an approximate index, queried at every `ef_search`.
    pub(crate) fn approximate(name: &'static str, store: Arc<dyn VectorStore>) -> Engine {
        Engine {
            approximate: true,
            ..Engine::exact(name, store)
        }
    }
}

/// How long loading the base set took.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Load {
    /// Vectors loaded.
    pub(crate) rows: usize,
    /// Vectors per `upsert_batch` call.
    pub(crate) batch: usize,
    /// Time inside `upsert_batch` calls.
    pub(crate) seconds: f64,
    /// `rows / seconds`.
    pub(crate) rows_per_sec: f64,
    /// Time the ready hook took (build or seal), when the engine has one.
    pub(crate) ready_seconds: Option<f64>,
}

/// The query set's outcome at one `ef_search`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Queried {
    /// `None` for an exact engine.
    pub(crate) ef_search: Option<usize>,
    /// Mean recall@10 against the exact scan.
    pub(crate) recall: f64,
    /// Per-query times.
    pub(crate) stats: Stats,
}

/// Recreates [`COLLECTION`] in `engine` (cosine) and loads the base set into it in
/// `upsert_batch` calls of `batch` vectors, then runs the ready hook.
///
/// # Errors
/// When a store call fails or the collection does not count every vector afterwards.
pub(crate) async fn load(engine: &Engine, data: &Dataset, batch: usize) -> BenchResult<Load> {
    let shape = data.shape();
    let store = &engine.store;
    store.delete_collection(COLLECTION).await?;
    store
        .create_collection(COLLECTION, shape.dimension, Metric::Cosine)
        .await?;
    let mut nanos = 0u64;
    for start in (0..shape.vectors).step_by(batch) {
        let records = records(data, start..(start + batch).min(shape.vectors));
        let began = Instant::now();
        store.upsert_batch(COLLECTION, records).await?;
        nanos += elapsed_nanos(began);
    }
    let ready_seconds = match &engine.ready {
        Some(ready) => {
            let began = Instant::now();
            ready(COLLECTION.to_owned()).await?;
            Some(began.elapsed().as_secs_f64())
        }
        None => None,
    };
    let count = store.count(COLLECTION).await?;
    if count != shape.vectors as u64 {
        return Err(format!(
            "{} counts {count} vectors after loading {}",
            engine.name, shape.vectors
        )
        .into());
    }
    let seconds = nanos as f64 / 1e9;
    Ok(Load {
        rows: shape.vectors,
        batch,
        seconds,
        rows_per_sec: shape.vectors as f64 / seconds,
        ready_seconds,
    })
}

/// The records of points `range`: id, vector, and the point's cluster as metadata.
pub(crate) fn records(data: &Dataset, range: std::ops::Range<usize>) -> Vec<VectorRecord> {
    range
        .map(|i| VectorRecord {
            id: Dataset::id(i),
            vector: data.point(i).to_vec(),
            metadata: metadata(data, i),
        })
        .collect()
}

/// `{"cluster": <the point's cluster>}`.
pub(crate) fn metadata(data: &Dataset, i: usize) -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert("cluster".to_owned(), Value::from(data.label(i)));
    metadata
}

/// Runs every query once, one call at a time after a short warm-up, and judges each answer
/// against `truth` (the exact top-[`K`] of each query).
///
/// # Errors
/// When a search fails or returns an id that is not a loaded vector.
pub(crate) async fn query(
    engine: &Engine,
    data: &Dataset,
    truth: &[Vec<Neighbour>],
    ef_search: Option<usize>,
) -> BenchResult<Queried> {
    let queries = data.shape().queries;
    let request = |q: usize| SearchRequest {
        ef_search,
        exact: engine.exact_requests,
        ..SearchRequest::new(data.query(q).to_vec(), K)
    };
    for q in 0..WARMUP_QUERIES.min(queries) {
        engine.store.search(COLLECTION, request(q)).await?;
    }
    let mut nanos = Vec::with_capacity(queries);
    let mut total_recall = 0.0;
    for (q, truth) in truth.iter().enumerate().take(queries) {
        let request = request(q);
        let began = Instant::now();
        let hits = engine.store.search(COLLECTION, request).await?;
        nanos.push(elapsed_nanos(began));
        let found = hits
            .iter()
            .map(|hit| {
                Dataset::index_of(&hit.id)
                    .filter(|&i| i < data.shape().vectors)
                    .ok_or_else(|| format!("{} returned unknown id {:?}", engine.name, hit.id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        total_recall += recall(truth, &found);
    }
    Ok(Queried {
        ef_search,
        recall: total_recall / queries as f64,
        stats: Stats::from_nanos(nanos),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cairn_memory::MemoryBackend;
    use cairn_stores::vectors::GenericVectorStore;

    use super::*;
    use crate::vectors::data::Shape;
    use crate::vectors::exact::{ExactScan, ground_truth};

    fn small() -> Dataset {
        Dataset::generate(Shape {
            vectors: 600,
            queries: 15,
            fresh: 0,
            dimension: 32,
        })
        .unwrap()
    }

    fn generic() -> Arc<dyn VectorStore> {
        Arc::new(GenericVectorStore::new(Arc::new(MemoryBackend::new())))
    }

    #[tokio::test]
    async fn an_exact_engine_loads_everything_and_finds_the_exact_answer() {
        let data = small();
        let scan = ExactScan::new(data.points(), 32);
        let (truth, exact) = ground_truth(&scan, &data, K);
        assert_eq!(exact.samples, 15);
        let engine = Engine::exact("generic", generic());
        let loaded = load(&engine, &data, 250).await.unwrap();
        assert_eq!((loaded.rows, loaded.ready_seconds), (600, None));
        assert!(loaded.rows_per_sec > 0.0);
        let queried = query(&engine, &data, &truth, None).await.unwrap();
        assert_eq!(queried.stats.samples, 15);
        assert!(queried.recall > 0.999, "recall {}", queried.recall);
        // Loading again starts from an empty collection.
        load(&engine, &data, 600).await.unwrap();
        assert_eq!(engine.store.count(COLLECTION).await.unwrap(), 600);
    }

    #[tokio::test]
    async fn the_ready_hook_runs_once_after_the_load_and_is_timed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let engine = Engine {
            ready: Some(Box::new(move |collection| {
                assert_eq!(collection, COLLECTION);
                seen.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            })),
            ..Engine::approximate("hooked", generic())
        };
        let loaded = load(&engine, &small(), 100).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(loaded.ready_seconds.is_some());
    }
}
