//! The vector suite: vector stores through `Arc<dyn VectorStore>` next to a raw exact scan.
//!
//! One run:
//! 1. generates the clustered data set ([`data`]) and the exact top-10 of every query with
//!    the raw exact scan ([`exact`]), timing it: the baseline row;
//! 2. for each selected engine ([`engine`]): loads the base set with `upsert_batch`, waits
//!    until it is indexed, runs the query set at every `ef_search` (once for exact engines),
//!    and reports recall@10, p50/p95 latency and queries/s beside the exact scan's;
//! 3. on engines selected with `--mixed`, runs searches while other tasks insert and delete
//!    ([`mixed`]);
//! 4. with pgvector selected and `--insert-compare`, loads the same vectors into an
//!    identically indexed raw table with binary `COPY` and with one `INSERT` per row
//!    ([`insert`]), beside the store's `upsert_batch` load.
//!
//! # Adding an engine
//! Add a variant to [`EngineKind`] and an arm to [`open`] that builds an [`Engine`]:
//! `Engine::approximate(name, store)` for a store that honours `ef_search`, plus a `ready`
//! hook when it indexes in the background (timed as build/seal time). Nothing else changes.

pub(crate) mod data;
pub(crate) mod engine;
pub(crate) mod exact;
pub(crate) mod insert;
pub(crate) mod mixed;
pub(crate) mod report;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cairn_core::{StorageBackend, TenantId};
use cairn_memory::MemoryBackend;
use cairn_postgres::{PostgresBackend, PostgresConfig, PostgresVectorStore};
use cairn_sled::{SledBackend, SledConfig};
use cairn_stores::vectors::{GenericVectorStore, HnswParams, HnswVectorStore, VectorStore};
use clap::ValueEnum;
use serde::Serialize;

use self::data::{Dataset, Shape};
use self::engine::{COLLECTION, Engine, K};
use self::exact::ExactScan;
use self::mixed::MixedPlan;
use self::report::{InsertRow, LoadRow, MixedRow, SearchRow};
use crate::BenchResult;

/// The tenant every engine writes as.
const TENANT: &str = "cairn-bench-vectors";

/// A vector store the suite can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EngineKind {
    /// `cairn-stores`' `GenericVectorStore` on `cairn-memory`: an exact scan of encoded
    /// records, the reference every backend without a vector engine gets.
    Generic,
    /// `cairn_postgres::PostgresVectorStore`: pgvector HNSW (m = 16, ef_construction = 128).
    Pgvector,
    /// `cairn_stores::HnswVectorStore` on `cairn-memory` (default parameters: M 32,
    /// ef_construction 128); its ready step waits for the background sealing.
    Hnsw,
    /// The same engine on a temporary sled database (balanced mode), segments persisted.
    HnswSled,
    /// The HNSW engine on `cairn-memory` queried in its exact mode (`SearchRequest::exact`):
    /// Cairn's exact-scan kernel over contiguous `f32` rows.
    HnswExact,
}

impl EngineKind {
    fn needs_postgres(self) -> bool {
        self == EngineKind::Pgvector
    }
}

/// The suite's settings, from the command line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    /// Base vectors loaded into every engine.
    pub(crate) vectors: usize,
    /// Components per vector.
    pub(crate) dimension: usize,
    /// Held-out queries.
    pub(crate) queries: usize,
    /// Engines to run, besides the exact scan.
    pub(crate) engines: Vec<EngineKind>,
    /// `ef_search` values approximate engines are queried at.
    pub(crate) ef_search: Vec<usize>,
    /// Vectors per `upsert_batch` call (and per `COPY`).
    pub(crate) batch: usize,
    /// Engines the mixed workload runs on.
    pub(crate) mixed: Vec<EngineKind>,
    /// The mixed workload's shape.
    pub(crate) mixed_plan: MixedPlan,
    /// Whether to time the raw PostgreSQL insert paths.
    pub(crate) insert_compare: bool,
}

impl Settings {
    /// Whether any selected part needs `DATABASE_URL`.
    pub(crate) fn needs_postgres(&self) -> bool {
        self.engines.iter().any(|e| e.needs_postgres())
    }

    /// Fresh points the mixed workload may insert: two batches per search, at least one
    /// batch per writer. Writers that insert faster stop when these run out.
    fn fresh(&self) -> usize {
        if self.mixed.is_empty() {
            return 0;
        }
        let plan = self.mixed_plan;
        (plan.searches * plan.insert_batch * 2).max(plan.writers * plan.insert_batch)
    }
}

/// Everything written to `vectors.json`.
#[derive(Debug, Default, Serialize)]
struct Report {
    clusters: usize,
    search: Vec<SearchRow>,
    load: Vec<LoadRow>,
    insert: Vec<InsertRow>,
    mixed: Vec<MixedRow>,
}

/// Runs the suite, prints its tables and writes `out_dir/vectors.json`.
///
/// # Errors
/// When a setting is out of range, a store or database call fails, or an engine answers
/// wrongly (an unknown id, a short count).
pub(crate) async fn run(
    settings: &Settings,
    database_url: Option<&str>,
    out_dir: &Path,
) -> BenchResult<()> {
    if settings.ef_search.is_empty() || settings.batch == 0 || settings.mixed_plan.searches == 0 {
        return Err(
            "--ef-search must list a value; --vector-batch and --mixed-searches must be positive"
                .into(),
        );
    }
    if let Some(kind) = settings
        .mixed
        .iter()
        .find(|k| !settings.engines.contains(k))
    {
        return Err(format!("--mixed {kind:?} is not among --engines").into());
    }
    let began = Instant::now();
    let data = Dataset::generate(Shape {
        vectors: settings.vectors,
        queries: settings.queries,
        fresh: settings.fresh(),
        dimension: settings.dimension,
    })?;
    let scan = ExactScan::new(data.points(), settings.dimension);
    eprintln!(
        "generated the data set in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let (truth, exact) = exact::ground_truth(&scan, &data, K);
    let mut report = Report {
        clusters: data.clusters(),
        ..Report::default()
    };
    println!(
        "{} vectors x {} (cosine) in {} clusters, {} held-out queries, k = {K}; queries run one \
         at a time; x exact = queries/s over the raw exact scan's in this run\n",
        settings.vectors,
        settings.dimension,
        data.clusters(),
        settings.queries
    );
    println!("{}", report::search_header());
    let exact_row = SearchRow::new(
        "exact-scan (raw)",
        engine::Queried {
            ef_search: None,
            recall: 1.0,
            stats: exact,
        },
        &exact,
    );
    print!("{}", report::search_rows(std::slice::from_ref(&exact_row)));
    report.search.push(exact_row);

    for &kind in &settings.engines {
        let engine = open(kind, database_url, settings).await?;
        eprintln!("loading {} ...", engine.name);
        let load = engine::load(&engine, &data, settings.batch).await?;
        report.load.push(LoadRow {
            engine: engine.name,
            load,
        });
        let efs: Vec<Option<usize>> = if engine.approximate {
            settings.ef_search.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        for ef in efs {
            let queried = engine::query(&engine, &data, &truth, ef).await?;
            let row = SearchRow::new(engine.name, queried, &exact);
            print!("{}", report::search_rows(std::slice::from_ref(&row)));
            report.search.push(row);
        }
        if settings.mixed.contains(&kind) {
            eprintln!("mixed workload on {} ...", engine.name);
            let mixed = mixed::run(&engine, &data, &scan, settings.mixed_plan).await?;
            report.mixed.push(MixedRow {
                engine: engine.name,
                mixed,
            });
        }
        engine.store.delete_collection(COLLECTION).await?;
    }

    println!(
        "\nload: upsert_batch of {} vectors per call, one call at a time",
        settings.batch
    );
    println!("{}", report::load_header());
    for row in &report.load {
        print!("{}", report::load_row(row));
    }
    if let (true, Some(url)) = (settings.insert_compare, database_url) {
        if let Some(store_load) = report.load.iter().find(|row| row.engine == PGVECTOR) {
            report.insert = compare_inserts(url, &data, settings.batch, store_load).await?;
            println!(
                "\nPostgreSQL insert of {} x {} into tables with the same HNSW, GIN and primary-key \
                 indexes",
                settings.vectors, settings.dimension
            );
            print!("{}", report::insert_table(&report.insert));
        }
    }
    if !report.mixed.is_empty() {
        let plan = settings.mixed_plan;
        println!(
            "\nmixed: {} searchers while {} writers insert batches of {} and delete as many; \
             recall against the exact answer over the live set; deleted* = ids returned after \
             their delete was acknowledged, phantom = ids not yet inserted (both must be 0)",
            plan.searchers, plan.writers, plan.insert_batch
        );
        print!("{}", report::mixed_table(&report.mixed));
    }

    let path = out_dir.join("vectors.json");
    crate::report::write_json(
        &path,
        &serde_json::json!({ "settings": settings, "report": report }),
    )?;
    println!("\nwritten to {}", path.display());
    Ok(())
}

/// The name of the pgvector engine.
const PGVECTOR: &str = "pgvector";

/// Builds the engine `kind`, with an empty [`COLLECTION`] and, for PostgreSQL, a vacuumed
/// table.
async fn open(kind: EngineKind, url: Option<&str>, settings: &Settings) -> BenchResult<Engine> {
    let tenant = TenantId::new(TENANT)?;
    match kind {
        EngineKind::Generic => {
            let backend = MemoryBackend::new().tenant(&tenant);
            Ok(Engine::exact(
                "generic-memory",
                Arc::new(GenericVectorStore::new(backend)),
            ))
        }
        EngineKind::Hnsw => {
            let backend = MemoryBackend::new().tenant(&tenant);
            Ok(hnsw_engine("hnsw-memory", backend)?)
        }
        EngineKind::HnswExact => {
            let backend = MemoryBackend::new().tenant(&tenant);
            let store = HnswVectorStore::new(backend, HnswParams::default())?;
            Ok(Engine {
                exact_requests: true,
                ..Engine::exact("hnsw-exact-mode", Arc::new(store))
            })
        }
        EngineKind::HnswSled => {
            let name = format!("cairn-bench-hnsw-{}", std::process::id());
            let mut config = SledConfig::new(std::env::temp_dir().join(name));
            config.temporary = true;
            let backend = SledBackend::open(config).await?.tenant(&tenant);
            Ok(hnsw_engine("hnsw-sled", backend)?)
        }
        EngineKind::Pgvector => {
            let url = url.ok_or("the pgvector engine needs DATABASE_URL")?;
            let mut config = PostgresConfig::new(url);
            let plan = settings.mixed_plan;
            config.pool_size = config.pool_size.max(plan.searchers + plan.writers + 1);
            let backend = PostgresBackend::connect(config).await?;
            let store = PostgresVectorStore::new(&backend.scoped(&tenant));
            // Dead rows of an earlier run would sit in the shared HNSW index.
            store.delete_collection(COLLECTION).await?;
            let client = Arc::new(insert::connect(url).await?);
            let table = insert::store_table(settings.dimension);
            client.batch_execute(&format!("VACUUM {table}")).await?;
            let others = insert::rows_in_store_table(&client, settings.dimension).await?;
            eprintln!("{table} holds {others} rows of other collections, sharing its index");
            // pgvector indexes on insert; what a bulk load leaves behind is stale planner
            // statistics (a new collection id looks like one row, so an exact scan looks
            // cheapest). Autovacuum analyzes the table within a minute or so; the bench does
            // it at once and times it as the engine's ready step.
            Ok(Engine {
                ready: Some(Box::new(move |_| {
                    let client = client.clone();
                    Box::pin(async move {
                        client.batch_execute(&format!("ANALYZE {table}")).await?;
                        Ok(())
                    })
                })),
                ..Engine::approximate(PGVECTOR, Arc::new(store))
            })
        }
    }
}

/// The in-process HNSW engine on `backend`, ready once every buffered vector is sealed into
/// a segment (so the queries measure the graphs, not the exact buffer).
fn hnsw_engine(name: &'static str, backend: Arc<dyn StorageBackend>) -> BenchResult<Engine> {
    let store = HnswVectorStore::new(backend, HnswParams::default())?;
    let waiter = store.clone();
    Ok(Engine {
        ready: Some(Box::new(move |_| {
            let waiter = waiter.clone();
            Box::pin(async move { Ok(waiter.wait_sealed().await?) })
        })),
        ..Engine::approximate(name, Arc::new(store))
    })
}

/// Times the raw insert paths and puts the store's load beside them.
async fn compare_inserts(
    url: &str,
    data: &Dataset,
    batch: usize,
    store_load: &LoadRow,
) -> BenchResult<Vec<InsertRow>> {
    let client = insert::connect(url).await?;
    eprintln!("raw COPY ...");
    let copy = insert::copy(&client, data, batch).await?;
    eprintln!("raw INSERT per row ...");
    let rows = insert::row_by_row(&client, data).await?;
    insert::drop_table(&client).await?;
    let store = insert::Inserted::new(
        "cairn upsert_batch",
        store_load.load.rows,
        (store_load.load.seconds * 1e9) as u64,
    );
    let copy_rate = copy.rows_per_sec;
    Ok([store, copy, rows]
        .into_iter()
        .map(|inserted| InsertRow {
            vs_copy: inserted.rows_per_sec / copy_rate,
            inserted,
        })
        .collect())
}
