//! The vector suite's rows, printed tables and `target/bench/vectors.json`.

use std::fmt::Write as _;

use serde::Serialize;

use super::engine::{Load, Queried};
use super::insert::Inserted;
use super::mixed::Mixed;
use crate::stats::Stats;

/// One engine's queries at one `ef_search`, next to the exact scan of the same run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SearchRow {
    /// The engine.
    pub(crate) engine: &'static str,
    /// `None` for exact engines and the scan itself.
    pub(crate) ef_search: Option<usize>,
    /// Mean recall@10.
    pub(crate) recall: f64,
    /// Per-query times.
    pub(crate) stats: Stats,
    /// The exact scan's queries per second in this run.
    pub(crate) exact_qps: f64,
    /// `stats.calls_per_sec / exact_qps`: how many times the exact scan's throughput.
    pub(crate) speedup: f64,
}

impl SearchRow {
    /// Pairs `queried` with the exact scan's statistics.
    pub(crate) fn new(engine: &'static str, queried: Queried, exact: &Stats) -> SearchRow {
        SearchRow {
            engine,
            ef_search: queried.ef_search,
            recall: queried.recall,
            stats: queried.stats,
            exact_qps: exact.calls_per_sec,
            speedup: queried.stats.calls_per_sec / exact.calls_per_sec,
        }
    }
}

/// One engine's load.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadRow {
    /// The engine.
    pub(crate) engine: &'static str,
    /// What the load took.
    #[serde(flatten)]
    pub(crate) load: Load,
}

/// One insert path next to binary `COPY`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InsertRow {
    /// The path's throughput.
    #[serde(flatten)]
    pub(crate) inserted: Inserted,
    /// `rows_per_sec / COPY's rows_per_sec`.
    pub(crate) vs_copy: f64,
}

/// One engine's mixed run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MixedRow {
    /// The engine.
    pub(crate) engine: &'static str,
    /// What it measured.
    #[serde(flatten)]
    pub(crate) mixed: Mixed,
}

/// Milliseconds from microseconds, three decimals.
fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

/// The search table's header.
pub(crate) fn search_header() -> String {
    let mut out = format!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "engine", "ef_search", "recall@10", "p50 ms", "p95 ms", "q/s", "x exact"
    );
    out.push_str(&"-".repeat(76));
    out
}

/// One line per search row.
pub(crate) fn search_rows(rows: &[SearchRow]) -> String {
    let mut out = String::new();
    for row in rows {
        // `write!` into a `String` cannot fail.
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9.3} {:>9} {:>9} {:>9.1} {:>9.2}",
            row.engine,
            row.ef_search
                .map_or_else(|| "-".to_owned(), |ef| ef.to_string()),
            row.recall,
            ms(row.stats.p50_us),
            ms(row.stats.p95_us),
            row.stats.calls_per_sec,
            row.speedup,
        );
    }
    out
}

/// The load table's header.
pub(crate) fn load_header() -> String {
    let mut out = format!(
        "{:<16} {:>9} {:>7} {:>10} {:>10} {:>10}\n",
        "engine", "vectors", "batch", "seconds", "rows/s", "ready s"
    );
    out.push_str(&"-".repeat(67));
    out
}

/// One line per load.
pub(crate) fn load_row(row: &LoadRow) -> String {
    let load = row.load;
    format!(
        "{:<16} {:>9} {:>7} {:>10.2} {:>10.0} {:>10}\n",
        row.engine,
        load.rows,
        load.batch,
        load.seconds,
        load.rows_per_sec,
        load.ready_seconds
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
    )
}

/// The insert comparison as a table.
pub(crate) fn insert_table(rows: &[InsertRow]) -> String {
    let mut out = format!(
        "{:<22} {:>9} {:>10} {:>10} {:>9}\n{}\n",
        "path",
        "rows",
        "seconds",
        "rows/s",
        "vs COPY",
        "-".repeat(64)
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>10.2} {:>10.0} {:>9.2}",
            row.inserted.path,
            row.inserted.rows,
            row.inserted.seconds,
            row.inserted.rows_per_sec,
            row.vs_copy
        );
    }
    out
}

/// The mixed run as a table.
pub(crate) fn mixed_table(rows: &[MixedRow]) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>4} {:>9} {:>8} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8}\n{}\n",
        "engine",
        "searches",
        "ef",
        "recall@10",
        "p50 ms",
        "p95 ms",
        "q/s",
        "inserted",
        "deleted",
        "deleted*",
        "phantom",
        "-".repeat(100)
    );
    for row in rows {
        let m = row.mixed;
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>4} {:>9.3} {:>8} {:>8} {:>7.1} {:>9} {:>8} {:>8} {:>8}",
            row.engine,
            m.stats.samples,
            m.plan.ef_search,
            m.recall,
            ms(m.stats.p50_us),
            ms(m.stats.p95_us),
            m.stats.samples as f64 / m.seconds,
            m.inserted,
            m.deleted,
            m.deleted_returned,
            m.phantoms,
        );
    }
    out
}
