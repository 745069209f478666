//! The clustered synthetic vectors every vector engine is loaded with and queried by.
//!
//! # The model
//! Text embeddings are neither uniform noise (where every point is about as far from every
//! other, so "nearest" means little) nor tight isolated blobs (where any index finds the
//! answer at once). They share a common direction, group into topics of uneven size, and
//! within a topic vary along a few directions much more than along the rest. The generator
//! reproduces those three traits, deterministically from [`SEED`]:
//!
//! - **Clusters.** `round(sqrt(vectors))` clusters (100 at 10k, 316 at 100k), so topics grow
//!   in number with the corpus; each point picks one with a weight drawn from 0.25 to 1.75, so
//!   sizes differ by up to seven times.
//! - **Centres.** `normalise(0.5 · shared + g)`, with `shared` one random unit direction and
//!   `g` a random direction of length about 1: centres of different clusters have a cosine
//!   of about 0.2, like unrelated sentences in common embedding models, not 0.
//! - **Spread.** A point is its centre plus a Gaussian offset inside a cluster-local
//!   subspace of [`LOCAL_DIMENSIONS`] random directions with standard deviations
//!   `spread / sqrt(j + 1)` (a decaying spectrum; `spread` drawn per cluster from 0.15 to
//!   0.35), plus isotropic noise of total length about [`NOISE`]. The low intrinsic
//!   dimension keeps nearest-neighbour distances clearly shorter than the median distance
//!   within a cluster; the noise keeps points off an exact subspace; neighbouring clusters
//!   overlap at their edges.
//!
//! Queries are held out: drawn from the same clusters with their own random stream, never
//! part of the loaded set. A third stream gives "fresh" points that the mixed workload
//! inserts while searching. Each stream has its own seed, so the base set does not change
//! when the number of queries does.
//!
//! The parameters were fixed from these considerations before any engine was measured on
//! the data; they are not tuned to any engine's recall.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::BenchResult;

/// Seed of the base set; the query and fresh streams use the next two values.
const SEED: u64 = 0x00CA_1A4B_0384;

/// Directions each cluster varies along.
pub(crate) const LOCAL_DIMENSIONS: usize = 16;

/// Weight of the direction shared by every centre.
const SHARED_WEIGHT: f32 = 0.5;

/// Range of a cluster's spread (standard deviation along its first local direction).
const SPREAD: (f32, f32) = (0.15, 0.35);

/// Range of a cluster's relative size.
const WEIGHT: (f32, f32) = (0.25, 1.75);

/// Expected length of the isotropic noise added to every point.
pub(crate) const NOISE: f32 = 0.05;

/// Sizes of one data set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Vectors loaded into every engine.
    pub(crate) vectors: usize,
    /// Held-out query vectors.
    pub(crate) queries: usize,
    /// Extra points from the same clusters, inserted by the mixed workload.
    pub(crate) fresh: usize,
    /// Components per vector.
    pub(crate) dimension: usize,
}

/// The base set, the fresh points after it, and the queries, each stored end to end.
///
/// Point `i` is base for `i < vectors` and fresh after; its id is [`Dataset::id`].
#[derive(Debug)]
pub(crate) struct Dataset {
    shape: Shape,
    clusters: usize,
    points: Vec<f32>,
    labels: Vec<u32>,
    queries: Vec<f32>,
}

/// The fixed random structure of the data: centres, local directions, spreads, weights.
struct Clusters {
    dimension: usize,
    centres: Vec<f32>,
    directions: Vec<f32>,
    spreads: Vec<f32>,
    cumulative_weights: Vec<f32>,
}

impl Dataset {
    /// Generates the data set of `shape`.
    ///
    /// # Errors
    /// When `vectors`, `queries` or `dimension` is zero, or the dimension is above what a
    /// vector store accepts.
    pub(crate) fn generate(shape: Shape) -> BenchResult<Dataset> {
        if shape.vectors == 0 || shape.queries == 0 {
            return Err("--vectors and --queries must be positive".into());
        }
        cairn_stores::vectors::check_dimension(shape.dimension)?;
        let count = (shape.vectors as f64).sqrt().round().max(1.0) as usize;
        let mut rng = StdRng::seed_from_u64(SEED);
        let clusters = Clusters::generate(&mut rng, count, shape.dimension);
        let (mut points, mut labels) = clusters.sample(&mut rng, shape.vectors);
        let mut fresh_rng = StdRng::seed_from_u64(SEED + 2);
        let (fresh, fresh_labels) = clusters.sample(&mut fresh_rng, shape.fresh);
        points.extend(fresh);
        labels.extend(fresh_labels);
        let mut query_rng = StdRng::seed_from_u64(SEED + 1);
        let (queries, _) = clusters.sample(&mut query_rng, shape.queries);
        Ok(Dataset {
            shape,
            clusters: count,
            points,
            labels,
            queries,
        })
    }

    /// The sizes this set was generated with.
    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    /// How many clusters the points come from.
    pub(crate) fn clusters(&self) -> usize {
        self.clusters
    }

    /// Base and fresh points, end to end.
    pub(crate) fn points(&self) -> &[f32] {
        &self.points
    }

    /// Point `i`.
    pub(crate) fn point(&self, i: usize) -> &[f32] {
        let d = self.shape.dimension;
        &self.points[i * d..(i + 1) * d]
    }

    /// The cluster point `i` was drawn from.
    pub(crate) fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    /// Query `q`.
    pub(crate) fn query(&self, q: usize) -> &[f32] {
        let d = self.shape.dimension;
        &self.queries[q * d..(q + 1) * d]
    }

    /// The id point `i` is stored under: fixed width, so ids order as indices do.
    pub(crate) fn id(i: usize) -> String {
        format!("v{i:010}")
    }

    /// The index encoded in an id made by [`Dataset::id`].
    pub(crate) fn index_of(id: &str) -> Option<usize> {
        id.strip_prefix('v')?.parse().ok()
    }
}

impl Clusters {
    fn generate(rng: &mut StdRng, count: usize, dimension: usize) -> Clusters {
        let shared = random_direction(rng, dimension);
        let mut centres = Vec::with_capacity(count * dimension);
        for _ in 0..count {
            let own = random_direction(rng, dimension);
            let mut centre: Vec<f32> = shared
                .iter()
                .zip(&own)
                .map(|(s, o)| SHARED_WEIGHT * s + o)
                .collect();
            normalise(&mut centre);
            centres.extend(centre);
        }
        let mut directions = Vec::with_capacity(count * LOCAL_DIMENSIONS * dimension);
        for _ in 0..count * LOCAL_DIMENSIONS {
            directions.extend(random_direction(rng, dimension));
        }
        let spreads = (0..count)
            .map(|_| rng.random_range(SPREAD.0..SPREAD.1))
            .collect();
        let mut total = 0.0;
        let cumulative_weights = (0..count)
            .map(|_| {
                total += rng.random_range(WEIGHT.0..WEIGHT.1);
                total
            })
            .collect();
        Clusters {
            dimension,
            centres,
            directions,
            spreads,
            cumulative_weights,
        }
    }

    /// `count` points end to end, and the cluster of each.
    fn sample(&self, rng: &mut StdRng, count: usize) -> (Vec<f32>, Vec<u32>) {
        let d = self.dimension;
        let noise = NOISE / (d as f32).sqrt();
        let total = *self
            .cumulative_weights
            .last()
            .expect("there is at least one cluster");
        let mut points = Vec::with_capacity(count * d);
        let mut labels = Vec::with_capacity(count);
        for _ in 0..count {
            let pick = rng.random_range(0.0..total);
            let c = self
                .cumulative_weights
                .partition_point(|&w| w <= pick)
                .min(self.spreads.len() - 1);
            let mut point = self.centres[c * d..(c + 1) * d].to_vec();
            for j in 0..LOCAL_DIMENSIONS {
                let scale = self.spreads[c] / ((j + 1) as f32).sqrt() * gaussian(rng);
                let row = (c * LOCAL_DIMENSIONS + j) * d;
                for (x, u) in point.iter_mut().zip(&self.directions[row..row + d]) {
                    *x += scale * u;
                }
            }
            for x in &mut point {
                *x += noise * gaussian(rng);
            }
            points.extend(point);
            labels.push(u32::try_from(c).expect("fewer than 2^32 clusters"));
        }
        (points, labels)
    }
}

/// A direction of length about 1: independent normal components scaled by `1/sqrt(d)`.
/// Two such directions are nearly orthogonal in high dimensions.
fn random_direction(rng: &mut StdRng, dimension: usize) -> Vec<f32> {
    let scale = 1.0 / (dimension as f32).sqrt();
    (0..dimension).map(|_| scale * gaussian(rng)).collect()
}

/// Scales `v` to length 1 (a zero vector stays zero).
pub(crate) fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            vectors: 2_000,
            queries: 20,
            fresh: 100,
            dimension: 64,
        }
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    }

    #[test]
    fn generation_is_deterministic_and_sized() {
        let a = Dataset::generate(shape()).unwrap();
        let b = Dataset::generate(shape()).unwrap();
        assert_eq!(a.points, b.points);
        assert_eq!(a.queries, b.queries);
        assert_eq!(a.points.len(), 2_100 * 64);
        assert_eq!(a.queries.len(), 20 * 64);
        assert_eq!(a.clusters(), 45);
        let more_queries = Dataset::generate(Shape {
            queries: 50,
            ..shape()
        })
        .unwrap();
        assert_eq!(
            a.points, more_queries.points,
            "the base set ignores --queries"
        );
    }

    #[test]
    fn points_are_closer_within_their_cluster_than_across() {
        let data = Dataset::generate(shape()).unwrap();
        let (mut within, mut across) = (Vec::new(), Vec::new());
        for i in 0..200 {
            for j in i + 1..200 {
                let c = cosine(data.point(i), data.point(j));
                if data.label(i) == data.label(j) {
                    within.push(c);
                } else {
                    across.push(c);
                }
            }
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(!within.is_empty() && !across.is_empty());
        assert!(mean(&within) > 0.6, "within {}", mean(&within));
        let across = mean(&across);
        assert!((0.05..0.4).contains(&across), "across {across}");
    }

    #[test]
    fn ids_round_trip_and_order_like_indices() {
        assert_eq!(Dataset::index_of(&Dataset::id(42)), Some(42));
        assert!(Dataset::id(9) < Dataset::id(10));
        assert_eq!(Dataset::index_of("x1"), None);
    }

    #[test]
    fn empty_sets_are_rejected() {
        assert!(
            Dataset::generate(Shape {
                vectors: 0,
                ..shape()
            })
            .is_err()
        );
        assert!(
            Dataset::generate(Shape {
                dimension: 0,
                ..shape()
            })
            .is_err()
        );
    }
}
