//! `cairn-bench`: benchmarks of every Cairn backend, each next to its raw engine.
//!
//! Two suites, chosen with `--suite kv|vectors|all` (default `kv`).
//!
//! **kv.** One harness ([`harness`]) times `get`, `set`, `get_batch`, `set_batch`, a one-page
//! prefix `scan` and `list_keys` through `&dyn StorageBackend`, then times the same calls,
//! keys, values and access order on the raw engine underneath ([`baselines`]) in the same
//! run. The result is the ratio between the two, printed as a table and written to
//! `target/bench/kv.json`.
//!
//! **vectors** ([`vectors`]). Vector stores driven through `Arc<dyn VectorStore>` (the
//! generic store on memory, the native pgvector store) on clustered synthetic data, next to
//! a raw exact scan measured in the same run: recall@10 against the exact answer, p50/p95
//! latency and queries/s at each `ef_search`, load rows/s, PostgreSQL insert throughput
//! against raw binary `COPY` and row-by-row `INSERT`, and a mixed workload of searches during
//! inserts and deletes. Written to `target/bench/vectors.json`. The target figures come from
//! `--suite vectors --vectors 100000 --dimension 384`, which takes about twenty minutes on two
//! cores (HNSW maintenance in PostgreSQL dominates: the store's load, the `COPY` and the
//! row-by-row paths each insert every vector); the default 10k run takes about two minutes.
//! See `docs/benchmarks.md`.
//!
//! Run it with `cargo xtask bench [-- ARGS]`, which starts PostgreSQL when needed and sets
//! `DATABASE_URL`, or directly with `cargo run --release -p cairn-bench -- --backends
//! memory,sled`. It is not a correctness test (the conformance suite is) and, apart from the
//! vector suite's mixed workload, not a concurrency benchmark: calls run one at a time on a
//! multi-thread tokio runtime.

mod baselines;
mod harness;
mod report;
mod stats;
mod suites;
mod vectors;
mod workload;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use cairn_sled::SledConfig;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::harness::Plan;
use crate::report::Row;
use crate::vectors::EngineKind;
use crate::vectors::mixed::MixedPlan;
use crate::workload::{Shape, Workload};

/// The error type of the whole binary: every failure ends the run with its message.
type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Result alias over [`BenchError`].
type BenchResult<T> = Result<T, BenchError>;

/// A backend the bench can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// `cairn-memory` against `HashMap` (foldhash) and `BTreeMap`.
    Memory,
    /// `cairn-sled` in balanced and safe mode against a raw `sled::Db`.
    Sled,
    /// `cairn-postgres` against raw tokio-postgres prepared statements; needs `DATABASE_URL`.
    Postgres,
}

impl Backend {
    /// The name used on the command line.
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }
}

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Key-value operations of every backend against its raw engine.
    Kv,
    /// Vector stores against a raw exact scan.
    Vectors,
    /// Both, key-value first.
    All,
}

/// Command-line settings.
#[derive(Debug, Parser)]
#[command(
    name = "cairn-bench",
    about = "Times Cairn's backends and stores next to raw engines, in one run."
)]
struct Args {
    /// Which suite to run.
    #[arg(long, value_enum, default_value = "kv")]
    suite: Suite,
    #[command(flatten)]
    kv: KvArgs,
    #[command(flatten)]
    vectors: VectorArgs,
}

/// Settings of the key-value suite.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Key-value suite")]
struct KvArgs {
    /// Backends to run, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "memory,sled,postgres"
    )]
    backends: Vec<Backend>,
    /// Keys preloaded before measuring.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Bytes per key (prefix included).
    #[arg(long, default_value_t = 16)]
    key_bytes: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Keys per get_batch / set_batch call.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Keys under each scan prefix; a scan reads them as one page.
    #[arg(long, default_value_t = 1_000)]
    scan_len: usize,
    /// Timed calls of get and of set (after a 10% warm-up).
    #[arg(long, default_value_t = 50_000)]
    ops: usize,
    /// Timed calls of get_batch and of set_batch.
    #[arg(long, default_value_t = 2_000)]
    batches: usize,
    /// Timed calls of scan and of list_keys.
    #[arg(long, default_value_t = 500)]
    scans: usize,
    /// Time limit of one measurement in milliseconds; slow targets stop early.
    #[arg(long, default_value_t = 2_000)]
    budget_ms: u64,
    /// Sled page cache in MiB, for the backend and the raw database alike [default: the
    /// backend's default].
    #[arg(long)]
    sled_cache_mb: Option<u64>,
}

/// Settings of the vector suite.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Vector suite")]
struct VectorArgs {
    /// Base vectors loaded into every engine.
    #[arg(long, default_value_t = 10_000)]
    vectors: usize,
    /// Components per vector (PostgreSQL indexes 384, 768, 1536 and 3072).
    #[arg(long, default_value_t = 384)]
    dimension: usize,
    /// Held-out query vectors.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Vector stores to run besides the raw exact scan, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "generic,pgvector"
    )]
    engines: Vec<EngineKind>,
    /// `ef_search` values approximate engines are queried at.
    #[arg(long, value_delimiter = ',', default_value = "40,100,200")]
    ef_search: Vec<usize>,
    /// Vectors per `upsert_batch` call and per raw `COPY`.
    #[arg(long, default_value_t = 1_000)]
    vector_batch: usize,
    /// Engines to run the mixed workload on (searches during inserts and deletes); give the
    /// flag without a value for none.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        num_args = 0..,
        default_value = "pgvector"
    )]
    mixed: Vec<EngineKind>,
    /// Searches of the mixed workload.
    #[arg(long, default_value_t = 1_000)]
    mixed_searches: usize,
    /// Concurrent searching tasks of the mixed workload.
    #[arg(long, default_value_t = 2)]
    mixed_searchers: usize,
    /// Concurrent inserting-and-deleting tasks of the mixed workload.
    #[arg(long, default_value_t = 2)]
    mixed_writers: usize,
    /// Vectors per insert of a mixed-workload writer (it deletes as many after each).
    #[arg(long, default_value_t = 10)]
    mixed_insert_batch: usize,
    /// `ef_search` of the mixed workload's searches.
    #[arg(long, default_value_t = 100)]
    mixed_ef_search: usize,
    /// Also load the base set into an identically indexed raw PostgreSQL table with binary
    /// COPY and with one INSERT per row (needs the pgvector engine).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    insert_compare: bool,
}

impl VectorArgs {
    fn settings(&self) -> vectors::Settings {
        vectors::Settings {
            vectors: self.vectors,
            dimension: self.dimension,
            queries: self.queries,
            engines: self.engines.clone(),
            ef_search: self.ef_search.clone(),
            batch: self.vector_batch,
            mixed: self.mixed.clone(),
            mixed_plan: MixedPlan {
                searches: self.mixed_searches,
                searchers: self.mixed_searchers,
                writers: self.mixed_writers,
                insert_batch: self.mixed_insert_batch,
                ef_search: self.mixed_ef_search,
            },
            insert_compare: self.insert_compare,
        }
    }
}

/// The settings recorded at the top of the JSON file.
#[derive(Debug, Serialize)]
struct Settings {
    keys: usize,
    key_bytes: usize,
    value_bytes: usize,
    batch: usize,
    scan_len: usize,
    ops: usize,
    batches: usize,
    scans: usize,
    budget_ms: u64,
    sled_cache_mb: u64,
    timer_overhead_ns: u128,
    worker_threads: usize,
}

/// Everything written to `kv.json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    settings: &'a Settings,
    rows: &'a [Row],
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Measured on a worker thread, where application code runs, not on the blocked main one.
    let outcome = match tokio::spawn(run(args)).await {
        Ok(outcome) => outcome,
        Err(panic) => Err(panic.into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error followed by its sources, `: `-separated (each message is printed once).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

async fn run(args: Args) -> BenchResult<()> {
    let (kv, vectors) = match args.suite {
        Suite::Kv => (true, false),
        Suite::Vectors => (false, true),
        Suite::All => (true, true),
    };
    let vector_settings = args.vectors.settings();
    let needs_postgres = (kv && args.kv.backends.contains(&Backend::Postgres))
        || (vectors && vector_settings.needs_postgres());
    let database_url = if needs_postgres {
        Some(std::env::var("DATABASE_URL").map_err(|_| {
            "DATABASE_URL is not set, so the postgres benchmarks cannot run: use `cargo xtask \
             bench` (it starts PostgreSQL), set DATABASE_URL, or pass --backends memory,sled \
             (key-value) or --engines generic (vectors)"
        })?)
    } else {
        None
    };
    let out_dir = report::output_dir();
    std::fs::create_dir_all(&out_dir)?;
    if kv {
        run_kv(&args.kv, database_url.as_deref(), &out_dir).await?;
    }
    if vectors {
        if kv {
            println!();
        }
        vectors::run(&vector_settings, database_url.as_deref(), &out_dir).await?;
    }
    Ok(())
}

/// The key-value suite: every backend of `args.backends` against its raw engines.
async fn run_kv(args: &KvArgs, database_url: Option<&str>, out_dir: &Path) -> BenchResult<()> {
    let shape = Shape {
        keys: args.keys,
        key_bytes: args.key_bytes,
        value_bytes: args.value_bytes,
        batch: args.batch,
        scan: args.scan_len,
    };
    let workload = Workload::generate(shape)?;
    let plan = Plan {
        single_calls: args.ops,
        batch_calls: args.batches,
        scan_calls: args.scans,
        budget: Duration::from_millis(args.budget_ms),
        timer_overhead: stats::timer_overhead(),
    };
    let settings = Settings {
        keys: args.keys,
        key_bytes: args.key_bytes,
        value_bytes: args.value_bytes,
        batch: args.batch,
        scan_len: args.scan_len,
        ops: args.ops,
        batches: args.batches,
        scans: args.scans,
        budget_ms: args.budget_ms,
        sled_cache_mb: args
            .sled_cache_mb
            .unwrap_or_else(|| SledConfig::default().cache_capacity_mb),
        timer_overhead_ns: plan.timer_overhead.as_nanos(),
        worker_threads: tokio::runtime::Handle::current().metrics().num_workers(),
    };
    println!(
        "{} keys of {} B, values of {} B, batches of {}, scans of {}; timer overhead {} ns \
         subtracted from every sample",
        settings.keys,
        settings.key_bytes,
        settings.value_bytes,
        settings.batch,
        settings.scan_len,
        settings.timer_overhead_ns
    );
    println!(
        "cairn µs / raw µs: p50 for single-key calls, mean per call where marked *; ratio = \
         cairn / raw\n"
    );
    println!("{}", report::table_header());

    let mut rows = Vec::new();
    for &backend in &args.backends {
        eprintln!("running {} ...", backend.name());
        let suite = match backend {
            Backend::Memory => suites::memory(&workload, &plan).await?,
            Backend::Sled => {
                let dir = tempfile::Builder::new()
                    .prefix("sled-")
                    .tempdir_in(out_dir)?;
                suites::sled(&workload, &plan, dir.path(), settings.sled_cache_mb).await?
            }
            Backend::Postgres => {
                let url =
                    database_url.expect("DATABASE_URL is read above whenever postgres is selected");
                suites::postgres(url, &workload, &plan).await?
            }
        };
        print!("{}", report::table_rows(&suite));
        rows.extend(suite);
    }

    let path = out_dir.join("kv.json");
    report::write_json(
        &path,
        &Report {
            settings: &settings,
            rows: &rows,
        },
    )?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
