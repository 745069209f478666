//! The raw exact scan: ground truth for recall, and the baseline every engine's queries/s is
//! divided by.
//!
//! It is the plain program an application would write without any store: every point
//! normalised once into one contiguous `Vec<f32>`, then for each query one pass of dot
//! products over it, keeping the best `k` in a small sorted array. One thread per query,
//! like the engines, which are queried one call at a time. It shares no code with the stores
//! it judges: a baseline must not inherit the bugs of what it measures.

use std::time::Instant;

use super::data::{Dataset, normalise};
use crate::stats::{Stats, elapsed_nanos};

/// Lanes of the unrolled dot product, wide enough for the compiler to vectorise.
const LANES: usize = 8;

/// Every point of a data set, normalised, end to end.
#[derive(Debug)]
pub(crate) struct ExactScan {
    dimension: usize,
    unit: Vec<f32>,
}

/// One exact neighbour: the point's index and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Neighbour {
    /// Index of the point in the data set.
    pub(crate) index: usize,
    /// Cosine similarity to the query.
    pub(crate) score: f32,
}

impl ExactScan {
    /// Normalises `points` (stored end to end, `dimension` components each).
    pub(crate) fn new(points: &[f32], dimension: usize) -> ExactScan {
        let mut unit = points.to_vec();
        for point in unit.chunks_exact_mut(dimension) {
            normalise(point);
        }
        ExactScan { dimension, unit }
    }

    /// The `k` points among the first `upto` that `live` accepts with the highest cosine to
    /// `query`, best first; equal scores keep the lower index first, as stores order equal
    /// scores by id.
    pub(crate) fn top_k(
        &self,
        query: &[f32],
        k: usize,
        upto: usize,
        live: impl Fn(usize) -> bool,
    ) -> Vec<Neighbour> {
        let mut query = query.to_vec();
        normalise(&mut query);
        let mut best: Vec<Neighbour> = Vec::with_capacity(k + 1);
        let points = &self.unit[..upto * self.dimension];
        for (index, point) in points.chunks_exact(self.dimension).enumerate() {
            if !live(index) {
                continue;
            }
            let score = dot(&query, point);
            if best.len() == k && best[k - 1].score >= score {
                continue;
            }
            let at = best.partition_point(|n| n.score >= score);
            best.insert(at, Neighbour { index, score });
            best.truncate(k);
        }
        best
    }

    /// The cosine similarity of `query` and point `index`.
    pub(crate) fn score(&self, query: &[f32], index: usize) -> f32 {
        let mut query = query.to_vec();
        normalise(&mut query);
        let d = self.dimension;
        dot(&query, &self.unit[index * d..(index + 1) * d])
    }
}

/// The exact top-`k` of every query over the base set, and the time each scan took: the
/// raw baseline's figures.
pub(crate) fn ground_truth(
    scan: &ExactScan,
    data: &Dataset,
    k: usize,
) -> (Vec<Vec<Neighbour>>, Stats) {
    let shape = data.shape();
    let mut nanos = Vec::with_capacity(shape.queries);
    let truth = (0..shape.queries)
        .map(|q| {
            let began = Instant::now();
            let best = scan.top_k(data.query(q), k, shape.vectors, |_| true);
            nanos.push(elapsed_nanos(began));
            best
        })
        .collect();
    (truth, Stats::from_nanos(nanos))
}

/// The fraction of `truth` found in `found` (1 when `truth` is empty).
pub(crate) fn recall(truth: &[Neighbour], found: &[usize]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = truth.iter().filter(|n| found.contains(&n.index)).count();
    hits as f64 / truth.len() as f64
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_cosine_and_respects_limits() {
        // Three points in 2-d: along x, at 45 degrees, along y.
        let points = [1.0, 0.0, 1.0, 1.0, 0.0, 3.0];
        let scan = ExactScan::new(&points, 2);
        let best = scan.top_k(&[2.0, 0.1], 2, 3, |_| true);
        assert_eq!(best.iter().map(|n| n.index).collect::<Vec<_>>(), vec![0, 1]);
        assert!((best[1].score - scan.score(&[2.0, 0.1], 1)).abs() < 1e-6);
        let without_first = scan.top_k(&[2.0, 0.1], 2, 3, |i| i != 0);
        assert_eq!(without_first[0].index, 1);
        assert_eq!(scan.top_k(&[2.0, 0.1], 5, 1, |_| true).len(), 1);
    }

    #[test]
    fn equal_scores_keep_the_lower_index() {
        let points = [1.0; 8 * 4];
        let scan = ExactScan::new(&points, 8);
        let best = scan.top_k(&[1.0; 8], 2, 4, |_| true);
        assert_eq!(best[0].index, 0);
        assert_eq!(best[1].index, 1);
    }

    #[test]
    fn recall_counts_the_truth_found() {
        let truth = [
            Neighbour {
                index: 3,
                score: 0.9,
            },
            Neighbour {
                index: 5,
                score: 0.8,
            },
        ];
        assert_eq!(recall(&truth, &[5, 7]), 0.5);
        assert_eq!(recall(&[], &[1]), 1.0);
    }
}
