//! The one measuring loop, shared by every Cairn backend and every raw baseline.
//!
//! A [`Target`] is anything that can do the measured operations. Cairn backends are driven
//! through [`Cairn`], which holds a `&dyn StorageBackend` and calls the contract exactly as an
//! application does; each raw engine implements [`Target`] directly in `baselines`. The same
//! [`measure`] function then times both with the same keys, values and access order, so the
//! ratio of the two is the cost of Cairn over the engine. Suites measure Cairn and its
//! baselines one operation at a time, alternating, so a disturbance on the machine (another
//! build, a background flush) hits both sides of a comparison alike.
//!
//! Targets are generic parameters, not trait objects, so a baseline pays no dynamic dispatch
//! or boxed future that the engine itself does not need.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::{Key, StorageBackend};
use serde::Serialize;

use crate::BenchResult;
use crate::stats::{Stats, elapsed_nanos};
use crate::workload::{Shape, Workload};

/// Entries per `set_batch` call while preloading.
const PRELOAD_CHUNK: usize = 1_000;

/// Fewest timed calls before the time budget may end a measurement.
const MIN_SAMPLES: usize = 20;

/// One operation the harness measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// `get` of a present key.
    Get,
    /// `set` overwriting a present key.
    Set,
    /// `get_batch` of `batch` present keys.
    GetBatch,
    /// `set_batch` overwriting `batch` present keys.
    SetBatch,
    /// One `scan` page of `scan` entries under a prefix holding exactly that many.
    Scan,
    /// `list_keys` of the same prefix.
    ListKeys,
}

impl Op {
    /// Every operation, in report order.
    pub(crate) const ALL: [Op; 6] = [
        Op::Get,
        Op::Set,
        Op::GetBatch,
        Op::SetBatch,
        Op::Scan,
        Op::ListKeys,
    ];

    /// The operations that write.
    pub(crate) const WRITES: [Op; 2] = [Op::Set, Op::SetBatch];

    /// The name used in the table and the JSON file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::GetBatch => "get_batch",
            Op::SetBatch => "set_batch",
            Op::Scan => "scan",
            Op::ListKeys => "list_keys",
        }
    }

    /// Keys read, written or listed by one call.
    pub(crate) fn keys_per_call(self, shape: Shape) -> usize {
        match self {
            Op::Get | Op::Set => 1,
            Op::GetBatch | Op::SetBatch => shape.batch,
            Op::Scan | Op::ListKeys => shape.scan,
        }
    }

    /// Whether the operation touches one key, so its median is the headline figure; for
    /// batches and scans it is the mean per call.
    pub(crate) fn is_single(self) -> bool {
        matches!(self, Op::Get | Op::Set)
    }
}

/// Something the harness can measure: a Cairn backend or a raw engine.
///
/// Reads report what they found (a value length, a count) rather than returning data, so a
/// raw baseline may read in place; the harness checks every answer outside the timed section.
pub(crate) trait Target {
    /// Reads `key`; the length of its value, or `None` when absent.
    async fn get(&mut self, key: &Key) -> BenchResult<Option<usize>>;

    /// Stores `value` under `key`.
    async fn set(&mut self, key: &Key, value: Bytes) -> BenchResult<()>;

    /// Reads `keys`; how many were present.
    async fn get_batch(&mut self, keys: &[Key]) -> BenchResult<usize>;

    /// Stores every entry in one batch.
    async fn set_batch(&mut self, entries: Vec<(Key, Bytes)>) -> BenchResult<()>;

    /// Reads the first `limit` entries under `prefix` in key order; how many were read.
    async fn scan(&mut self, prefix: &str, limit: usize) -> BenchResult<usize>;

    /// Lists every key under `prefix` in key order; how many there are.
    async fn list_keys(&mut self, prefix: &str) -> BenchResult<usize>;
}

/// A Cairn backend, driven through the object-safe contract.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cairn<'a>(pub(crate) &'a dyn StorageBackend);

impl Target for Cairn<'_> {
    async fn get(&mut self, key: &Key) -> BenchResult<Option<usize>> {
        Ok(self.0.get(key).await?.map(|value| value.len()))
    }

    async fn set(&mut self, key: &Key, value: Bytes) -> BenchResult<()> {
        Ok(self.0.set(key, value).await?)
    }

    async fn get_batch(&mut self, keys: &[Key]) -> BenchResult<usize> {
        Ok(self.0.get_batch(keys).await?.iter().flatten().count())
    }

    async fn set_batch(&mut self, entries: Vec<(Key, Bytes)>) -> BenchResult<()> {
        Ok(self.0.set_batch(entries).await?)
    }

    async fn scan(&mut self, prefix: &str, limit: usize) -> BenchResult<usize> {
        Ok(self.0.scan(prefix, None, limit).await?.entries.len())
    }

    async fn list_keys(&mut self, prefix: &str) -> BenchResult<usize> {
        Ok(self.0.list_keys(prefix).await?.len())
    }
}

/// How many calls to time and for how long at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Timed calls of `get` and `set`.
    pub(crate) single_calls: usize,
    /// Timed calls of `get_batch` and `set_batch`.
    pub(crate) batch_calls: usize,
    /// Timed calls of `scan` and `list_keys`.
    pub(crate) scan_calls: usize,
    /// Wall-clock limit of one measurement; warm-up gets a tenth of it on top. A slow target
    /// (an fsync per write) stops early but still records at least a few calls.
    pub(crate) budget: Duration,
    /// Subtracted from every sample: the cost of reading the clock.
    pub(crate) timer_overhead: Duration,
}

impl Plan {
    fn calls(&self, op: Op) -> usize {
        match op {
            Op::Get | Op::Set => self.single_calls,
            Op::GetBatch | Op::SetBatch => self.batch_calls,
            Op::Scan | Op::ListKeys => self.scan_calls,
        }
    }
}

/// Writes every workload entry into `target` in batches.
pub(crate) async fn preload<T: Target>(target: &mut T, workload: &Workload) -> BenchResult<()> {
    let mut entries = workload.initial_entries().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<(Key, Bytes)> = entries.by_ref().take(PRELOAD_CHUNK).collect();
        target.set_batch(chunk).await?;
    }
    Ok(())
}

/// Times `op` on a preloaded `target`: a warm-up, then one sample per call. Inputs are built
/// and answers checked outside the timed section.
pub(crate) async fn measure<T: Target>(
    target: &mut T,
    workload: &Workload,
    plan: &Plan,
    op: Op,
) -> BenchResult<Stats> {
    let shape = workload.shape();
    let mut recorder = Recorder::new(plan, op);
    while let Some(i) = recorder.next_call() {
        match op {
            Op::Get => {
                let key = workload.key_at(i);
                let start = Instant::now();
                let found = target.get(key).await?;
                recorder.record(start);
                check(op, found, Some(shape.value_bytes))?;
            }
            Op::Set => {
                let (key, value) = (workload.key_at(i), workload.value_at(i));
                let start = Instant::now();
                target.set(key, value).await?;
                recorder.record(start);
            }
            Op::GetBatch => {
                let keys = workload.batch_keys(i);
                let start = Instant::now();
                let found = target.get_batch(&keys).await?;
                recorder.record(start);
                check(op, found, shape.batch)?;
            }
            Op::SetBatch => {
                let entries = workload.batch_entries(i);
                let start = Instant::now();
                target.set_batch(entries).await?;
                recorder.record(start);
            }
            Op::Scan => {
                let prefix = workload.scan_prefix(i);
                let start = Instant::now();
                let found = target.scan(prefix, shape.scan).await?;
                recorder.record(start);
                check(op, found, shape.scan)?;
            }
            Op::ListKeys => {
                let prefix = workload.scan_prefix(i);
                let start = Instant::now();
                let found = target.list_keys(prefix).await?;
                recorder.record(start);
                check(op, found, shape.scan)?;
            }
        }
    }
    Ok(recorder.finish())
}

/// Fails the run when a target answered wrongly: a benchmark of misses is no benchmark.
fn check<T: PartialEq + std::fmt::Debug>(op: Op, found: T, expected: T) -> BenchResult<()> {
    if found == expected {
        Ok(())
    } else {
        Err(format!("{} returned {found:?}, expected {expected:?}", op.name()).into())
    }
}

/// Hands out call indices through warm-up and measurement and keeps the samples.
#[derive(Debug)]
struct Recorder {
    warmup_calls: usize,
    calls: usize,
    budget: Duration,
    overhead_ns: u64,
    next_index: usize,
    measuring: bool,
    phase_start: Instant,
    samples: Vec<u64>,
}

impl Recorder {
    fn new(plan: &Plan, op: Op) -> Recorder {
        let calls = plan.calls(op).max(1);
        Recorder {
            warmup_calls: calls.div_ceil(10),
            calls,
            budget: plan.budget,
            overhead_ns: u64::try_from(plan.timer_overhead.as_nanos()).unwrap_or(0),
            next_index: 0,
            measuring: false,
            phase_start: Instant::now(),
            samples: Vec::with_capacity(calls),
        }
    }

    /// The index of the next call, or `None` when the measurement is complete.
    fn next_call(&mut self) -> Option<usize> {
        let elapsed = self.phase_start.elapsed();
        if !self.measuring {
            if self.next_index < self.warmup_calls && elapsed < self.budget / 10 {
                return Some(self.advance());
            }
            self.measuring = true;
            self.phase_start = Instant::now();
            return Some(self.advance());
        }
        let out_of_time = elapsed >= self.budget && self.samples.len() >= MIN_SAMPLES;
        if self.samples.len() >= self.calls || out_of_time {
            None
        } else {
            Some(self.advance())
        }
    }

    fn advance(&mut self) -> usize {
        self.next_index += 1;
        self.next_index - 1
    }

    /// Records the call that started at `start`, unless it was a warm-up call.
    fn record(&mut self, start: Instant) {
        let nanos = elapsed_nanos(start);
        if self.measuring {
            self.samples.push(nanos.saturating_sub(self.overhead_ns));
        }
    }

    fn finish(self) -> Stats {
        Stats::from_nanos(self.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_warms_up_then_records_the_planned_calls() {
        let plan = Plan {
            single_calls: 50,
            batch_calls: 5,
            scan_calls: 5,
            budget: Duration::from_secs(60),
            timer_overhead: Duration::ZERO,
        };
        let mut recorder = Recorder::new(&plan, Op::Get);
        let mut indices = Vec::new();
        while let Some(i) = recorder.next_call() {
            indices.push(i);
            recorder.record(Instant::now());
        }
        assert_eq!(indices, (0..55).collect::<Vec<_>>());
        assert_eq!(recorder.finish().samples, 50);
    }

    #[test]
    fn recorder_stops_at_the_budget_after_the_minimum() {
        let plan = Plan {
            single_calls: 1_000_000,
            batch_calls: 1,
            scan_calls: 1,
            budget: Duration::ZERO,
            timer_overhead: Duration::ZERO,
        };
        let mut recorder = Recorder::new(&plan, Op::Set);
        while recorder.next_call().is_some() {
            recorder.record(Instant::now());
        }
        assert_eq!(recorder.finish().samples, MIN_SAMPLES);
    }
}
