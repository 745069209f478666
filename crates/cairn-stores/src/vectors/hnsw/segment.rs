//! Sealed segments: immutable rows (ids, contiguous vectors, metadata) with their HNSW graph,
//! and the two ways a search reads rows: an exact scan and a graph walk that over-fetches
//! until it has `k` matches.

use cairn_core::Result;

use super::graph::{self, Graph};
use crate::vectors::generic::matches;
use crate::vectors::kernel::{Candidate, Query, TopK, row_norm};
use crate::vectors::{Metadata, Metric};

/// Rows in contiguous storage: row `i` is `ids[i]`, `vectors[i * dimension..][..dimension]`
/// with norm `norms[i]`, `metadata[i]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowsView<'a> {
    pub(super) ids: &'a [String],
    pub(super) vectors: &'a [f32],
    pub(super) norms: &'a [f32],
    pub(super) metadata: &'a [Metadata],
    /// Tombstones: `dead[i]` hides row `i`.
    pub(super) dead: &'a [bool],
    pub(super) dimension: usize,
}

impl<'a> RowsView<'a> {
    /// Row `row`'s vector.
    pub(super) fn vector(&self, row: usize) -> &'a [f32] {
        &self.vectors[row * self.dimension..][..self.dimension]
    }

    /// Row `row`'s exact score for `query`.
    fn score(&self, query: &Query, row: usize) -> f32 {
        query.score_with_norm(self.vector(row), self.norms[row])
    }
}

/// The best hits so far, pointing at their rows' metadata.
pub(super) type Top<'a> = TopK<&'a Metadata>;

/// One search's inputs, shared by every segment and the buffer.
#[derive(Debug)]
pub(super) struct Probe<'q> {
    pub(super) query: &'q Query,
    pub(super) filter: &'q Metadata,
    /// The worst acceptable rank (from `min_score`).
    pub(super) threshold: Option<f32>,
    pub(super) k: usize,
}

impl Probe<'_> {
    /// Offers row `row` with `score` when it is live, passes the threshold and the filter, and
    /// could enter `top`; returns whether it matched (live, threshold and filter).
    fn offer<'a>(&self, rows: RowsView<'a>, row: usize, score: f32, top: &mut Top<'a>) -> bool {
        let rank = self.query.rank(score);
        if rows.dead[row] || self.threshold.is_some_and(|t| rank < t) {
            return false;
        }
        let metadata = &rows.metadata[row];
        if !self.filter.is_empty() && !matches(metadata, self.filter) {
            return false;
        }
        if top.admits(rank) {
            top.offer(Candidate {
                rank,
                score,
                id: rows.ids[row].clone(),
                payload: metadata,
            });
        }
        true
    }

    /// Scores every live row exactly: the kernel over contiguous storage, no allocation per
    /// row that does not enter `top`.
    pub(super) fn scan<'a>(&self, rows: RowsView<'a>, top: &mut Top<'a>) {
        for (row, (vector, &norm)) in rows
            .vectors
            .chunks_exact(rows.dimension)
            .zip(rows.norms)
            .enumerate()
        {
            if rows.dead[row] {
                continue;
            }
            let score = self.query.score_with_norm(vector, norm);
            let rank = self.query.rank(score);
            if self.threshold.is_some_and(|t| rank < t) || !top.admits(rank) {
                continue;
            }
            self.offer(rows, row, score, top);
        }
    }

    /// Walks `graph` over `rows` with beam width `ef`, doubling it until `k` rows match, the
    /// threshold cuts the walk, or the beam would cover the segment (then it scans exactly).
    /// Every score is computed exactly on the stored vector.
    pub(super) fn walk<'a>(&self, graph: &Graph, rows: RowsView<'a>, ef: usize, top: &mut Top<'a>) {
        let nodes = graph.nodes();
        let mut ef = ef.max(self.k);
        loop {
            if ef >= nodes {
                return self.scan(rows, top);
            }
            let found = graph.search(ef, |node| {
                -self.query.rank(rows.score(self.query, node as usize))
            });
            if found.len() < ef {
                // Part of the graph is unreachable from the entry point: read it all.
                return self.scan(rows, top);
            }
            let mut local = Top::new(self.k);
            let mut matched = 0;
            let mut cut = false;
            for &(distance, node) in &found {
                let rank = -distance;
                if self.threshold.is_some_and(|t| rank < t) {
                    cut = true;
                    break;
                }
                let score = self.query.score_of_rank(rank);
                if self.offer(rows, node as usize, score, &mut local) {
                    matched += 1;
                }
            }
            if matched >= self.k || cut {
                for candidate in local.into_sorted() {
                    if top.admits(candidate.rank) {
                        top.offer(candidate);
                    }
                }
                return;
            }
            ef = ef.saturating_mul(2);
        }
    }
}

/// An immutable, searchable set of rows in graph-node order.
#[derive(Debug)]
pub(super) struct Segment {
    /// Unique within the collection's generation; later segments have larger numbers.
    pub(super) number: u64,
    pub(super) dimension: usize,
    pub(super) ids: Vec<String>,
    pub(super) vectors: Vec<f32>,
    /// Each row's norm ([`row_norm`]), derived from `vectors`, never persisted.
    pub(super) norms: Vec<f32>,
    pub(super) metadata: Vec<Metadata>,
    pub(super) graph: Graph,
}

impl Segment {
    /// Builds a segment of the given rows (at least one, contiguous vectors); returns it and,
    /// for each of its rows, the input row it came from.
    ///
    /// # Errors
    /// As [`graph::build`].
    pub(super) fn build(
        number: u64,
        dimension: usize,
        metric: Metric,
        ef_construction: usize,
        ids: Vec<String>,
        vectors: Vec<f32>,
        metadata: Vec<Metadata>,
    ) -> Result<(Segment, Vec<u32>)> {
        let (graph, order, vectors) =
            graph::build(vectors, dimension, metric, ef_construction, number)?;
        let mut ids: Vec<Option<String>> = ids.into_iter().map(Some).collect();
        let mut metadata: Vec<Option<Metadata>> = metadata.into_iter().map(Some).collect();
        let mut sorted = Segment {
            number,
            dimension,
            ids: Vec::with_capacity(order.len()),
            vectors: Vec::with_capacity(vectors.len()),
            norms: Vec::with_capacity(order.len()),
            metadata: Vec::with_capacity(order.len()),
            graph,
        };
        for &row in &order {
            let row = row as usize;
            sorted.ids.push(ids[row].take().unwrap_or_default());
            sorted
                .metadata
                .push(metadata[row].take().unwrap_or_default());
            let vector = &vectors[row * dimension..][..dimension];
            sorted.norms.push(row_norm(vector));
            sorted.vectors.extend_from_slice(vector);
        }
        Ok((sorted, order))
    }

    /// How many rows the segment holds, live or not.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Row `row`'s vector.
    pub(super) fn vector(&self, row: usize) -> &[f32] {
        &self.vectors[row * self.dimension..][..self.dimension]
    }

    /// The segment's rows with tombstones `dead`.
    pub(super) fn rows<'a>(&'a self, dead: &'a [bool]) -> RowsView<'a> {
        RowsView {
            ids: &self.ids,
            vectors: &self.vectors,
            norms: &self.norms,
            metadata: &self.metadata,
            dead,
            dimension: self.dimension,
        }
    }
}
