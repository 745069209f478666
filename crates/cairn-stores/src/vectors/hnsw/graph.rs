//! The HNSW graph of one sealed segment: built by instant-distance, searched here.
//!
//! instant-distance builds the graph in one parallel batch but fixes `ef_search` at build time
//! and cannot hand back more candidates than that. Its graph is plain data with a serde form
//! (nodes renumbered so node 0 is the entry point, layer zero with `2 * M` links per node, upper
//! layers with `M` links for the first nodes), so the engine reads that form once after the
//! build and searches the links itself: any `ef` per query, distances on the full-precision
//! vectors through the exact kernel.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use cairn_core::{Error, ErrorKind, Result};
use instant_distance::{Builder, Point};
use serde::{Deserialize, Serialize, Serializer};

use crate::vectors::Metric;
use crate::vectors::kernel::{dot, squared_distance};

/// Links per node on the upper layers: instant-distance's fixed `M`.
pub(crate) const M: usize = 32;

/// Links per node on layer zero.
pub(super) const ZERO_LINKS: usize = 2 * M;

/// Marks the end of a node's links.
pub(super) const NO_LINK: u32 = u32::MAX;

/// A segment's navigation graph over nodes `0..nodes()`; node 0 is the entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Graph {
    /// Layer zero: `ZERO_LINKS` neighbours per node, [`NO_LINK`] after the last.
    pub(super) zero: Vec<u32>,
    /// Upper layers, lowest first: `upper[l - 1]` is layer `l`, `M` links for each of its
    /// nodes `0..upper[l - 1].len() / M`.
    pub(super) upper: Vec<Vec<u32>>,
}

/// The vectors being indexed, shared by every build point.
struct Rows {
    vectors: Vec<f32>,
    norms: Vec<f32>,
    dimension: usize,
    metric: Metric,
}

impl Rows {
    fn row(&self, i: u32) -> &[f32] {
        let start = i as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    /// Lower is nearer: squared L2, cosine distance, or the negated dot product.
    fn distance(&self, a: u32, b: u32) -> f32 {
        let (x, y) = (self.row(a), self.row(b));
        match self.metric {
            Metric::L2 => squared_distance(x, y),
            Metric::Dot => -dot(x, y),
            Metric::Cosine => 1.0 - dot(x, y) / (self.norms[a as usize] * self.norms[b as usize]),
        }
    }
}

/// One point handed to instant-distance: a row number and the shared rows.
#[derive(Clone)]
struct BuildPoint {
    row: u32,
    rows: Arc<Rows>,
}

impl Point for BuildPoint {
    fn distance(&self, other: &Self) -> f32 {
        self.rows.distance(self.row, other.row)
    }
}

impl Serialize for BuildPoint {
    /// A point serialises as its row number, so the transcoded graph maps nodes to rows.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.row)
    }
}

/// instant-distance's `Hnsw` as serialised: points (here row numbers) in node order, layer
/// zero, then the upper layers lowest first. Its `ef_search` is not read.
#[derive(Deserialize)]
struct Transcoded {
    points: Vec<u32>,
    zero: Vec<Vec<u32>>,
    layers: Vec<Vec<Vec<u32>>>,
}

/// Builds the graph of `vectors` (contiguous rows of `dimension`, at least one row).
///
/// Returns the graph, `order` (node `i` of the graph is input row `order[i]`) and the input
/// vectors, handed back without a copy.
///
/// # Errors
/// `Backend` when instant-distance's graph does not have the expected shape.
pub(super) fn build(
    vectors: Vec<f32>,
    dimension: usize,
    metric: Metric,
    ef_construction: usize,
    seed: u64,
) -> Result<(Graph, Vec<u32>, Vec<f32>)> {
    let count = vectors.len() / dimension;
    let norms = vectors
        .chunks_exact(dimension)
        .map(|v| dot(v, v).sqrt())
        .collect();
    let rows = Arc::new(Rows {
        vectors,
        norms,
        dimension,
        metric,
    });
    let points = (0..count as u32)
        .map(|row| BuildPoint {
            row,
            rows: rows.clone(),
        })
        .collect();
    let (hnsw, _) = Builder::default()
        .ef_construction(ef_construction)
        .seed(seed)
        .build_hnsw(points);
    let text = serde_json::to_vec(&hnsw).map_err(transcode_error)?;
    drop(hnsw);
    let vectors = match Arc::try_unwrap(rows) {
        Ok(rows) => rows.vectors,
        Err(shared) => shared.vectors.clone(),
    };
    let built: Transcoded = serde_json::from_slice(&text).map_err(transcode_error)?;
    let graph = Graph {
        zero: flatten(built.zero, ZERO_LINKS)?,
        upper: built
            .layers
            .into_iter()
            .map(|layer| flatten(layer, M))
            .collect::<Result<_>>()?,
    };
    if built.points.len() != count || graph.check().is_err() {
        return Err(Error::new(
            ErrorKind::Backend,
            "instant-distance built a graph of an unexpected shape",
        ));
    }
    Ok((graph, built.points, vectors))
}

fn transcode_error(e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Backend,
        "instant-distance's graph cannot be read through serde",
    )
    .with_source(e)
}

fn flatten(nodes: Vec<Vec<u32>>, links: usize) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(nodes.len() * links);
    for node in nodes {
        if node.len() != links {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "instant-distance node has {} links, expected {links}",
                    node.len()
                ),
            ));
        }
        out.extend(node);
    }
    Ok(out)
}

/// A node at a distance, ordered by distance then node.
#[derive(Debug, Clone, Copy)]
struct Near {
    distance: f32,
    node: u32,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

impl Graph {
    /// How many nodes the graph has.
    pub(super) fn nodes(&self) -> usize {
        self.zero.len() / ZERO_LINKS
    }

    /// Checks that every link names an existing node and every upper layer is a prefix of
    /// the nodes.
    ///
    /// # Errors
    /// `Corruption` naming the first broken rule.
    pub(super) fn check(&self) -> Result<()> {
        let nodes = self.nodes();
        if nodes == 0 || self.zero.len() % ZERO_LINKS != 0 {
            return Err(Error::corruption(
                "HNSW graph has no nodes or a partial node",
            ));
        }
        for layer in &self.upper {
            if layer.len() % M != 0 || layer.len() / M > nodes {
                return Err(Error::corruption("HNSW upper layer has a bad size"));
            }
        }
        let valid = |links: &[u32], limit: usize| {
            links.iter().all(|&n| n == NO_LINK || (n as usize) < limit)
        };
        if !valid(&self.zero, nodes)
            || !self.upper.iter().all(|layer| valid(layer, layer.len() / M))
        {
            return Err(Error::corruption("HNSW graph links to a missing node"));
        }
        Ok(())
    }

    fn links(&self, layer: usize, node: u32) -> impl Iterator<Item = u32> + '_ {
        let (list, width) = match layer {
            0 => (&self.zero, ZERO_LINKS),
            l => (&self.upper[l - 1], M),
        };
        let start = node as usize * width;
        list[start..start + width]
            .iter()
            .copied()
            .take_while(|&n| n != NO_LINK)
    }

    /// The (up to) `ef` nodes nearest by `distance` that the search reaches, nearest first:
    /// a greedy descent through the upper layers from node 0, then a beam search of width
    /// `ef` on layer zero.
    pub(super) fn search(&self, ef: usize, distance: impl Fn(u32) -> f32) -> Vec<(f32, u32)> {
        let nodes = self.nodes();
        if nodes == 0 || ef == 0 {
            return Vec::new();
        }
        let mut entry = Near {
            distance: distance(0),
            node: 0,
        };
        for layer in (1..=self.upper.len()).rev() {
            loop {
                let mut moved = false;
                for node in self.links(layer, entry.node) {
                    let d = distance(node);
                    if d < entry.distance {
                        entry = Near { distance: d, node };
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let mut visited = vec![0u64; nodes.div_ceil(64)];
        let mut visit = |node: u32| {
            let (word, bit) = (node as usize / 64, 1u64 << (node % 64));
            let fresh = visited[word] & bit == 0;
            visited[word] |= bit;
            fresh
        };
        visit(entry.node);
        let mut candidates = BinaryHeap::from([Reverse(entry)]);
        let mut nearest = BinaryHeap::from([entry]);
        while let Some(Reverse(current)) = candidates.pop() {
            if nearest.len() >= ef && nearest.peek().is_some_and(|w| current > *w) {
                break;
            }
            for node in self.links(0, current.node) {
                if !visit(node) {
                    continue;
                }
                let near = Near {
                    distance: distance(node),
                    node,
                };
                if nearest.len() < ef || nearest.peek().is_some_and(|w| near < *w) {
                    candidates.push(Reverse(near));
                    nearest.push(near);
                    if nearest.len() > ef {
                        nearest.pop();
                    }
                }
            }
        }
        nearest
            .into_sorted_vec()
            .into_iter()
            .map(|n| (n.distance, n.node))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| [(i % 37) as f32, (i / 37) as f32, ((i * 7) % 11) as f32])
            .collect()
    }

    #[test]
    fn built_graph_finds_exact_neighbours() {
        let vectors = grid(2_000);
        let (graph, order, back) = build(vectors.clone(), 3, Metric::L2, 64, 7).unwrap();
        assert_eq!(back, vectors);
        assert_eq!(graph.nodes(), 2_000);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..2_000).collect::<Vec<u32>>());
        graph.check().unwrap();
        let row = |node: u32| &vectors[order[node as usize] as usize * 3..][..3];
        for target in [0u32, 17, 999, 1_999] {
            let query = &vectors[target as usize * 3..][..3];
            let found = graph.search(32, |node| squared_distance(query, row(node)));
            assert_eq!(found[0].0, 0.0, "row {target}");
            assert!(found.windows(2).all(|w| w[0].0 <= w[1].0));
            assert_eq!(found.len(), 32);
        }
    }

    #[test]
    fn a_single_row_is_its_own_graph() {
        let (graph, order, _) = build(vec![1.0, 2.0], 2, Metric::Cosine, 16, 1).unwrap();
        assert_eq!((graph.nodes(), order), (1, vec![0]));
        let found = graph.search(10, |_| 0.5);
        assert_eq!(found, vec![(0.5, 0)]);
    }

    #[test]
    fn check_rejects_links_to_missing_nodes() {
        let (mut graph, _, _) = build(grid(100), 3, Metric::Dot, 16, 3).unwrap();
        graph.zero[5] = 100;
        assert_eq!(
            graph.check().unwrap_err().kind(),
            cairn_core::ErrorKind::Corruption
        );
    }
}
