//! The exact-scan kernel: scoring vectors against the query, and the bounded top-k heap.
//!
//! The loops run over `LANES` independent accumulators so the compiler vectorises them, and
//! nothing allocates per scored vector: callers keep vectors in contiguous `f32` storage (the
//! HNSW engine's segments and buffer) or decode into one reused buffer (the generic store).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Metric;

/// Lanes of the unrolled loops, wide enough for the compiler to vectorise.
const LANES: usize = 8;

/// A query prepared for scanning: the vector and, for cosine, its norm.
#[derive(Debug)]
pub(crate) struct Query {
    vector: Vec<f32>,
    metric: Metric,
    norm: f32,
}

impl Query {
    /// Prepares `vector` (already validated) for `metric`.
    pub(crate) fn new(vector: Vec<f32>, metric: Metric) -> Query {
        let norm = dot(&vector, &vector).sqrt();
        Query {
            vector,
            metric,
            norm,
        }
    }

    /// The score of `candidate` (see the module docs of `vectors`).
    pub(crate) fn score(&self, candidate: &[f32]) -> f32 {
        match self.metric {
            Metric::Dot => dot(&self.vector, candidate),
            Metric::L2 => squared_distance(&self.vector, candidate).sqrt(),
            Metric::Cosine => {
                let (dot, squared_norm) = dot_and_squared_norm(&self.vector, candidate);
                dot / (self.norm * squared_norm.sqrt())
            }
        }
    }

    /// The score of `candidate` whose Euclidean norm is `norm` (from [`row_norm`]): equal to
    /// [`Query::score`] bit for bit, one pass over the vector even for cosine.
    pub(crate) fn score_with_norm(&self, candidate: &[f32], norm: f32) -> f32 {
        match self.metric {
            Metric::Cosine => dot(&self.vector, candidate) / (self.norm * norm),
            Metric::Dot | Metric::L2 => self.score(candidate),
        }
    }

    /// Turns a score into a rank where higher is always better.
    pub(crate) fn rank(&self, score: f32) -> f32 {
        match self.metric {
            Metric::L2 => -score,
            Metric::Cosine | Metric::Dot => score,
        }
    }

    /// Turns a rank back into the score it came from.
    pub(crate) fn score_of_rank(&self, rank: f32) -> f32 {
        self.rank(rank)
    }
}

/// The Euclidean norm of a stored vector, kept beside it so cosine scans read each vector once.
pub(crate) fn row_norm(vector: &[f32]) -> f32 {
    dot(vector, vector).sqrt()
}

/// The dot product of two equally long vectors.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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

fn dot_and_squared_norm(query: &[f32], v: &[f32]) -> (f32, f32) {
    let mut dots = [0.0f32; LANES];
    let mut norms = [0.0f32; LANES];
    let (q_chunks, v_chunks) = (query.chunks_exact(LANES), v.chunks_exact(LANES));
    let (mut dot_tail, mut norm_tail) = (0.0f32, 0.0f32);
    for (x, y) in q_chunks.remainder().iter().zip(v_chunks.remainder()) {
        dot_tail += x * y;
        norm_tail += y * y;
    }
    for (x, y) in q_chunks.zip(v_chunks) {
        for i in 0..LANES {
            dots[i] += x[i] * y[i];
            norms[i] += y[i] * y[i];
        }
    }
    (
        dots.iter().sum::<f32>() + dot_tail,
        norms.iter().sum::<f32>() + norm_tail,
    )
}

/// The squared Euclidean distance of two equally long vectors.
pub(crate) fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A vector kept by the top-k heap, with what the store needs to turn it into a hit (the
/// stored value, or where the vector lives in memory).
#[derive(Debug)]
pub(crate) struct Candidate<T> {
    /// Higher is better.
    pub(crate) rank: f32,
    /// The score reported to the caller.
    pub(crate) score: f32,
    /// The vector's id.
    pub(crate) id: String,
    /// The store's handle on the vector.
    pub(crate) payload: T,
}

impl<T> Candidate<T> {
    /// Better first: higher rank, then smaller id.
    fn better_first(&self, other: &Candidate<T>) -> Ordering {
        other
            .rank
            .total_cmp(&self.rank)
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl<T> PartialEq for Candidate<T> {
    fn eq(&self, other: &Self) -> bool {
        self.better_first(other) == Ordering::Equal
    }
}

impl<T> Eq for Candidate<T> {}

impl<T> PartialOrd for Candidate<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Candidate<T> {
    /// The worse candidate is the greater one, so the heap's top is the worst kept.
    fn cmp(&self, other: &Self) -> Ordering {
        self.better_first(other)
    }
}

/// The best `k` candidates seen so far.
#[derive(Debug)]
pub(crate) struct TopK<T> {
    k: usize,
    heap: BinaryHeap<Candidate<T>>,
}

impl<T> TopK<T> {
    /// An empty selection of at most `k` candidates.
    pub(crate) fn new(k: usize) -> TopK<T> {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1024) + 1),
        }
    }

    /// Whether a candidate of `rank` could enter: the heap is not full, or `rank` is at least
    /// as good as the worst kept (ties are settled by id in [`TopK::offer`]).
    pub(crate) fn admits(&self, rank: f32) -> bool {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.k => rank >= worst.rank,
            _ => true,
        }
    }

    /// Keeps `candidate` if it is among the best `k` seen.
    pub(crate) fn offer(&mut self, candidate: Candidate<T>) {
        if self.heap.len() < self.k {
            self.heap.push(candidate);
            return;
        }
        if let Some(mut worst) = self.heap.peek_mut() {
            if candidate < *worst {
                *worst = candidate;
            }
        }
    }

    /// The kept candidates, best first.
    pub(crate) fn into_sorted(self) -> Vec<Candidate<T>> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(rank: f32, id: &str) -> Candidate<()> {
        Candidate {
            rank,
            score: rank,
            id: id.to_owned(),
            payload: (),
        }
    }

    #[test]
    fn kernels_match_naive_sums() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| 2.0 - i as f32 * 0.25).collect();
        let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let naive_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((dot(&a, &b) - naive_dot).abs() < 1e-3);
        assert!((squared_distance(&a, &b) - naive_l2).abs() < 1e-3);
        let (d, n) = dot_and_squared_norm(&a, &b);
        assert!((d - naive_dot).abs() < 1e-3);
        assert!((n - dot(&b, &b)).abs() < 1e-3);
    }

    #[test]
    fn top_k_keeps_the_best_and_breaks_ties_by_id() {
        let mut top = TopK::new(3);
        for (rank, id) in [(1.0, "a"), (5.0, "b"), (3.0, "c"), (5.0, "a2"), (4.0, "d")] {
            if top.admits(rank) {
                top.offer(candidate(rank, id));
            }
        }
        let ids: Vec<String> = top.into_sorted().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["a2", "b", "d"]);
    }
}
