//! The mixed workload: searches while other tasks insert and delete, on a loaded engine.
//!
//! Writer tasks insert fresh points (from the same clusters) in small `upsert_batch` calls
//! and delete as many live vectors one `delete` at a time, so the collection keeps about its
//! size; searcher tasks run the query set at one `ef_search` meanwhile. Every call is
//! stamped with a global logical clock (one atomic counter) when it starts and when it
//! returns. After the run each search is judged against the exact scan over the vectors that
//! were certainly live for its whole duration (insert acknowledged before it started, delete
//! not begun before it ended):
//!
//! - **deleted returned**: an id whose delete was acknowledged before the search started.
//!   The store contract says this never happens; the count must be 0.
//! - **phantoms**: an id never inserted, or whose insert began after the search returned;
//!   must be 0 too.
//! - **recall@10**: a returned id counts when it is in the exact top 10 of the certain set,
//!   or when it was in flight (inserted or deleted concurrently, so either answer is right)
//!   and scores at least as well as the tenth exact neighbour.
//!
//! Writers stop when the searches are done or their share of fresh points runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use cairn_stores::vectors::{SearchRequest, VectorStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::data::Dataset;
use super::engine::{COLLECTION, Engine, K, records};
use super::exact::ExactScan;
use crate::BenchResult;
use crate::stats::{Stats, elapsed_nanos};

/// A clock value meaning "never".
const NEVER: u64 = u64::MAX;

/// Seed of the writers' choice of vectors to delete.
const DELETE_SEED: u64 = 0xDE1E7E;

/// The shape of one mixed run.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct MixedPlan {
    /// Searches in total, spread over the searcher tasks.
    pub(crate) searches: usize,
    /// Concurrent searching tasks.
    pub(crate) searchers: usize,
    /// Concurrent writing tasks.
    pub(crate) writers: usize,
    /// Vectors per insert call; a writer deletes as many after each.
    pub(crate) insert_batch: usize,
    /// `ef_search` of every search.
    pub(crate) ef_search: usize,
}

/// What a mixed run measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Mixed {
    /// The plan it ran.
    pub(crate) plan: MixedPlan,
    /// Mean recall@10 against the exact answer over the live set.
    pub(crate) recall: f64,
    /// Per-search times under the write load.
    pub(crate) stats: Stats,
    /// Vectors inserted during the run.
    pub(crate) inserted: usize,
    /// Vectors deleted during the run.
    pub(crate) deleted: usize,
    /// Wall-clock seconds from the first call to the last.
    pub(crate) seconds: f64,
    /// Returned ids whose delete was acknowledged before the search started (must be 0).
    pub(crate) deleted_returned: usize,
    /// Returned ids not inserted when the search ended (must be 0).
    pub(crate) phantoms: usize,
}

/// Clock stamps of every point's insert and delete.
#[derive(Debug)]
struct Ledger {
    clock: AtomicU64,
    insert_start: Vec<AtomicU64>,
    insert_ack: Vec<AtomicU64>,
    delete_start: Vec<AtomicU64>,
    delete_ack: Vec<AtomicU64>,
}

impl Ledger {
    /// Base points count as inserted before the run (at 0); fresh ones as never.
    fn new(base: usize, total: usize) -> Ledger {
        let stamps = |base_value: u64| {
            (0..total)
                .map(|i| AtomicU64::new(if i < base { base_value } else { NEVER }))
                .collect()
        };
        Ledger {
            clock: AtomicU64::new(1),
            insert_start: stamps(0),
            insert_ack: stamps(0),
            delete_start: stamps(NEVER),
            delete_ack: stamps(NEVER),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn stamp(&self, stamps: &[AtomicU64], i: usize, at: u64) {
        stamps[i].store(at, Ordering::SeqCst);
    }

    fn get(stamps: &[AtomicU64], i: usize) -> u64 {
        stamps[i].load(Ordering::SeqCst)
    }

    /// Live for the whole of `[start, end]`.
    fn certain(&self, i: usize, start: u64, end: u64) -> bool {
        Ledger::get(&self.insert_ack, i) < start && Ledger::get(&self.delete_start, i) > end
    }
}

/// One search as it ran.
#[derive(Debug)]
struct Search {
    query: usize,
    start: u64,
    end: u64,
    found: Vec<usize>,
}

/// Runs `plan` on `engine`, whose [`COLLECTION`] holds the base set of `data` and nothing
/// else, and judges the answers with `scan` (built over base and fresh points).
///
/// # Errors
/// When a store call fails, a search returns an id the data set does not have, or there are
/// no fresh points to insert.
pub(crate) async fn run(
    engine: &Engine,
    data: &Dataset,
    scan: &ExactScan,
    plan: MixedPlan,
) -> BenchResult<Mixed> {
    let shape = data.shape();
    if shape.fresh < plan.writers * plan.insert_batch {
        return Err("the mixed workload needs fresh points for every writer".into());
    }
    let ledger = Arc::new(Ledger::new(shape.vectors, shape.vectors + shape.fresh));
    let data = Arc::new(data_view(data));
    let done = Arc::new(AtomicBool::new(false));
    let next_search = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();

    let mut writers = Vec::new();
    for w in 0..plan.writers {
        let task = Writer {
            store: engine.store.clone(),
            ledger: ledger.clone(),
            done: done.clone(),
            data: data.clone(),
            plan,
            index: w,
        };
        writers.push(tokio::spawn(task.run()));
    }
    let mut searchers = Vec::new();
    for _ in 0..plan.searchers {
        let store = engine.store.clone();
        let (ledger, data, next_search) = (ledger.clone(), data.clone(), next_search.clone());
        searchers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let n = next_search.fetch_add(1, Ordering::SeqCst);
                if n >= plan.searches {
                    return BenchResult::Ok(done);
                }
                let query = n % data.queries;
                let request = SearchRequest {
                    ef_search: Some(plan.ef_search),
                    ..SearchRequest::new(data.query(query).to_vec(), K)
                };
                let clock = Instant::now();
                let start = ledger.tick();
                let hits = store.search(COLLECTION, request).await?;
                let end = ledger.tick();
                let nanos = elapsed_nanos(clock);
                let found = hits
                    .iter()
                    .map(|hit| {
                        Dataset::index_of(&hit.id)
                            .filter(|&i| i < data.total)
                            .ok_or_else(|| format!("search returned unknown id {:?}", hit.id))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                done.push((
                    Search {
                        query,
                        start,
                        end,
                        found,
                    },
                    nanos,
                ));
            }
        }));
    }
    let mut searches = Vec::with_capacity(plan.searches);
    let mut first_error = None;
    for task in searchers {
        match task.await? {
            Ok(done) => searches.extend(done),
            Err(err) => first_error = first_error.or(Some(err)),
        }
    }
    done.store(true, Ordering::SeqCst);
    let (mut inserted, mut deleted) = (0, 0);
    for task in writers {
        match task.await? {
            Ok((i, d)) => {
                inserted += i;
                deleted += d;
            }
            Err(err) => first_error = first_error.or(Some(err)),
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    if let Some(err) = first_error {
        return Err(err);
    }
    Ok(judge(
        &ledger, &data, scan, searches, plan, inserted, deleted, seconds,
    ))
}

/// What the tasks need of the data set, shared between them.
#[derive(Debug)]
struct DataView {
    base: usize,
    total: usize,
    queries: usize,
    dimension: usize,
    query_vectors: Vec<f32>,
    records: Vec<cairn_stores::vectors::VectorRecord>,
}

impl DataView {
    fn query(&self, q: usize) -> &[f32] {
        &self.query_vectors[q * self.dimension..(q + 1) * self.dimension]
    }
}

fn data_view(data: &Dataset) -> DataView {
    let shape = data.shape();
    let total = shape.vectors + shape.fresh;
    DataView {
        base: shape.vectors,
        total,
        queries: shape.queries,
        dimension: shape.dimension,
        query_vectors: (0..shape.queries)
            .flat_map(|q| data.query(q).iter().copied())
            .collect(),
        records: records(data, shape.vectors..total),
    }
}

/// One writing task: owns the points whose index is `index` modulo the writer count, so no
/// two writers touch the same id.
struct Writer {
    store: Arc<dyn VectorStore>,
    ledger: Arc<Ledger>,
    done: Arc<AtomicBool>,
    data: Arc<DataView>,
    plan: MixedPlan,
    index: usize,
}

impl Writer {
    /// Inserts and deletes until told to stop or out of fresh points; returns how many of
    /// each it did.
    async fn run(self) -> BenchResult<(usize, usize)> {
        let writers = self.plan.writers;
        let owned = |i: &usize| i % writers == self.index;
        let mut live: Vec<usize> = (0..self.data.base).filter(owned).collect();
        let mut fresh = (self.data.base..self.data.total).filter(owned).peekable();
        let mut rng = StdRng::seed_from_u64(DELETE_SEED + self.index as u64);
        let (mut inserted, mut deleted) = (0, 0);
        while !self.done.load(Ordering::SeqCst) && fresh.peek().is_some() {
            let batch: Vec<usize> = fresh.by_ref().take(self.plan.insert_batch).collect();
            let records = batch
                .iter()
                .map(|&i| self.data.records[i - self.data.base].clone())
                .collect();
            let start = self.ledger.tick();
            for &i in &batch {
                self.ledger.stamp(&self.ledger.insert_start, i, start);
            }
            self.store.upsert_batch(COLLECTION, records).await?;
            let ack = self.ledger.tick();
            for &i in &batch {
                self.ledger.stamp(&self.ledger.insert_ack, i, ack);
            }
            inserted += batch.len();
            live.extend(&batch);
            for _ in 0..batch.len() {
                if live.is_empty() {
                    break;
                }
                let i = live.swap_remove(rng.random_range(0..live.len()));
                self.ledger
                    .stamp(&self.ledger.delete_start, i, self.ledger.tick());
                if !self.store.delete(COLLECTION, &Dataset::id(i)).await? {
                    return Err(format!("delete of live vector {i} found nothing").into());
                }
                self.ledger
                    .stamp(&self.ledger.delete_ack, i, self.ledger.tick());
                deleted += 1;
            }
        }
        Ok((inserted, deleted))
    }
}

/// Scores every search against the exact answer over its certain live set.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the figures go straight into the result"
)]
fn judge(
    ledger: &Ledger,
    data: &DataView,
    scan: &ExactScan,
    searches: Vec<(Search, u64)>,
    plan: MixedPlan,
    inserted: usize,
    deleted: usize,
    seconds: f64,
) -> Mixed {
    let (mut deleted_returned, mut phantoms, mut total_recall) = (0, 0, 0.0);
    let mut nanos = Vec::with_capacity(searches.len());
    for (search, time) in &searches {
        nanos.push(*time);
        let query = data.query(search.query);
        let truth = scan.top_k(query, K, data.total, |i| {
            ledger.certain(i, search.start, search.end)
        });
        let bar = truth.last().map_or(f32::NEG_INFINITY, |n| n.score);
        let mut correct = 0;
        for &i in &search.found {
            if Ledger::get(&ledger.delete_ack, i) < search.start {
                deleted_returned += 1;
            } else if Ledger::get(&ledger.insert_start, i) > search.end {
                phantoms += 1;
            } else if truth.iter().any(|n| n.index == i)
                || (!ledger.certain(i, search.start, search.end) && scan.score(query, i) >= bar)
            {
                correct += 1;
            }
        }
        total_recall += if truth.is_empty() {
            1.0
        } else {
            correct.min(truth.len()) as f64 / truth.len() as f64
        };
    }
    Mixed {
        plan,
        recall: total_recall / searches.len().max(1) as f64,
        stats: Stats::from_nanos(nanos),
        inserted,
        deleted,
        seconds,
        deleted_returned,
        phantoms,
    }
}

#[cfg(test)]
mod tests {
    use cairn_memory::MemoryBackend;
    use cairn_stores::vectors::GenericVectorStore;

    use super::*;
    use crate::vectors::data::Shape;
    use crate::vectors::engine::load;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exact_store_under_writes_returns_no_deleted_id_and_full_recall() {
        let data = Dataset::generate(Shape {
            vectors: 500,
            queries: 10,
            fresh: 400,
            dimension: 16,
        })
        .unwrap();
        let scan = ExactScan::new(data.points(), 16);
        let engine = Engine::exact(
            "generic",
            Arc::new(GenericVectorStore::new(Arc::new(MemoryBackend::new()))),
        );
        load(&engine, &data, 500).await.unwrap();
        let plan = MixedPlan {
            searches: 60,
            searchers: 2,
            writers: 2,
            insert_batch: 5,
            ef_search: 40,
        };
        let mixed = run(&engine, &data, &scan, plan).await.unwrap();
        assert_eq!(mixed.stats.samples, 60);
        assert_eq!((mixed.deleted_returned, mixed.phantoms), (0, 0));
        assert_eq!(mixed.inserted, mixed.deleted);
        assert!(mixed.inserted > 0);
        assert!(mixed.recall > 0.999, "recall {}", mixed.recall);
        let count = engine.store.count(COLLECTION).await.unwrap();
        assert_eq!(count, 500, "each writer deletes as many as it inserts");
    }

    #[test]
    fn the_ledger_tells_certain_from_in_flight() {
        let ledger = Ledger::new(2, 3);
        assert!(ledger.certain(0, 5, 9));
        assert!(!ledger.certain(2, 5, 9), "never inserted");
        ledger.stamp(&ledger.delete_start, 1, 7);
        assert!(!ledger.certain(1, 5, 9), "delete began during the search");
        assert!(ledger.certain(1, 2, 6), "delete began after the search");
    }
}
