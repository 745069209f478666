//! The comparison rows, the printed table and `target/bench/kv.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::BenchResult;
use crate::harness::Op;
use crate::stats::Stats;
use crate::workload::Shape;

/// Which statistic a row's headline figures are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Figure {
    /// The median, for single-key operations.
    P50,
    /// The mean per call, for batches and scans.
    Mean,
}

/// One operation of one backend next to one raw baseline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// The Cairn backend, with its mode where it has several (`sled-safe`).
    pub(crate) backend: &'static str,
    /// The operation.
    pub(crate) op: Op,
    /// The raw engine measured in the same run.
    pub(crate) baseline: &'static str,
    /// What `cairn_us` and `raw_us` are.
    pub(crate) figure: Figure,
    /// Cairn's headline time per call, in microseconds.
    pub(crate) cairn_us: f64,
    /// The baseline's headline time per call, in microseconds.
    pub(crate) raw_us: f64,
    /// `cairn_us / raw_us`: how many times longer Cairn takes.
    pub(crate) ratio: f64,
    /// Keys read or written per call.
    pub(crate) keys_per_call: usize,
    /// Keys per second through Cairn at its mean time per call.
    pub(crate) cairn_keys_per_sec: f64,
    /// Keys per second through the baseline at its mean time per call.
    pub(crate) raw_keys_per_sec: f64,
    /// Every statistic of Cairn's calls.
    pub(crate) cairn: Stats,
    /// Every statistic of the baseline's calls.
    pub(crate) raw: Stats,
}

impl Row {
    /// Pairs Cairn's statistics for `op` with a baseline's.
    pub(crate) fn new(
        backend: &'static str,
        baseline: &'static str,
        shape: Shape,
        op: Op,
        cairn: Stats,
        raw: Stats,
    ) -> Row {
        let figure = if op.is_single() {
            Figure::P50
        } else {
            Figure::Mean
        };
        let pick = |s: Stats| match figure {
            Figure::P50 => s.p50_us,
            Figure::Mean => s.mean_us,
        };
        let (cairn_us, raw_us) = (pick(cairn), pick(raw));
        let keys_per_call = op.keys_per_call(shape);
        Row {
            backend,
            op,
            baseline,
            figure,
            cairn_us,
            raw_us,
            ratio: if raw_us > 0.0 {
                cairn_us / raw_us
            } else {
                f64::INFINITY
            },
            keys_per_call,
            cairn_keys_per_sec: cairn.calls_per_sec * keys_per_call as f64,
            raw_keys_per_sec: raw.calls_per_sec * keys_per_call as f64,
            cairn,
            raw,
        }
    }
}

/// The table's column titles and a rule under them.
pub(crate) fn table_header() -> String {
    let mut out = format!(
        "{:<10} {:<10} {:<16} {:>10} {:>10} {:>8} {:>11} {:>11} {:>12}\n",
        "backend",
        "op",
        "baseline",
        "cairn µs",
        "raw µs",
        "ratio",
        "cairn p99",
        "raw p99",
        "cairn keys/s"
    );
    out.push_str(&"-".repeat(104));
    out
}

/// One line per row, aligned under [`table_header`].
pub(crate) fn table_rows(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let mark = match row.figure {
            Figure::P50 => "",
            Figure::Mean => "*",
        };
        let ratio = if row.ratio < 10.0 {
            format!("{:.2}x", row.ratio)
        } else {
            format!("{:.1}x", row.ratio)
        };
        // `write!` into a `String` cannot fail.
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:<16} {:>10} {:>10} {:>8} {:>11} {:>11} {:>12.0}",
            row.backend,
            row.op.name(),
            row.baseline,
            format!("{}{mark}", micros(row.cairn_us)),
            format!("{}{mark}", micros(row.raw_us)),
            ratio,
            micros(row.cairn.p99_us),
            micros(row.raw.p99_us),
            row.cairn_keys_per_sec,
        );
    }
    out
}

/// A time in microseconds with precision that suits its size.
fn micros(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 1_000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// `$CARGO_TARGET_DIR/bench`, or `<workspace>/target/bench` when the variable is unset.
pub(crate) fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the bench crate lives inside the workspace")
                .join("target")
        },
        PathBuf::from,
    );
    target.join("bench")
}

/// Writes `report` as pretty JSON to `path`, creating its directory.
pub(crate) fn write_json(path: &Path, report: &impl Serialize) -> BenchResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    std::fs::write(path, text)?;
    Ok(())
}
