//! Wall-clock samples and their summary.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Summary of the per-call times of one measurement, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Stats {
    /// Calls timed (after warm-up).
    pub(crate) samples: usize,
    /// Median time per call.
    pub(crate) p50_us: f64,
    /// 95th percentile time per call.
    pub(crate) p95_us: f64,
    /// 99th percentile time per call.
    pub(crate) p99_us: f64,
    /// Mean time per call.
    pub(crate) mean_us: f64,
    /// Calls per second at the mean time.
    pub(crate) calls_per_sec: f64,
}

impl Stats {
    /// Summarises samples in nanoseconds, each already corrected for timer overhead.
    ///
    /// # Panics
    /// On an empty sample set: every measurement records at least one call.
    pub(crate) fn from_nanos(mut nanos: Vec<u64>) -> Stats {
        assert!(!nanos.is_empty(), "a measurement records at least one call");
        nanos.sort_unstable();
        let n = nanos.len();
        let at = |q: f64| nanos[((n as f64 * q).ceil() as usize).clamp(1, n) - 1] as f64 / 1e3;
        let mean_ns = nanos.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        Stats {
            samples: n,
            p50_us: at(0.50),
            p95_us: at(0.95),
            p99_us: at(0.99),
            mean_us: mean_ns / 1e3,
            calls_per_sec: if mean_ns > 0.0 { 1e9 / mean_ns } else { 0.0 },
        }
    }
}

/// The cost of reading the clock twice around nothing: the median of many empty timed
/// sections. It is subtracted from every sample so sub-microsecond calls are not inflated.
pub(crate) fn timer_overhead() -> Duration {
    let mut nanos: Vec<u64> = (0..20_000)
        .map(|_| {
            let start = Instant::now();
            black_box(());
            elapsed_nanos(start)
        })
        .collect();
    nanos.sort_unstable();
    Duration::from_nanos(nanos[nanos.len() / 2])
}

/// Nanoseconds since `start`, saturated into a `u64`.
pub(crate) fn elapsed_nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let stats = Stats::from_nanos((1..=100).map(|x| x * 1_000).collect());
        assert_eq!(stats.samples, 100);
        assert_eq!(stats.p50_us, 50.0);
        assert_eq!(stats.p95_us, 95.0);
        assert_eq!(stats.p99_us, 99.0);
        assert_eq!(stats.mean_us, 50.5);
        let one = Stats::from_nanos(vec![2_000]);
        assert_eq!((one.p50_us, one.p99_us), (2.0, 2.0));
        assert_eq!(one.calls_per_sec, 500_000.0);
    }
}
