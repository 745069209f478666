//! The data every target is loaded with and the order it is accessed in.
//!
//! A workload is generated once per run from a fixed seed, so every backend and every raw
//! baseline sees exactly the same keys, values and access sequence.

use bytes::Bytes;
use cairn_core::Key;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::BenchResult;

/// Seed of the generator: a fixed seed keeps runs comparable.
const SEED: u64 = 0x00CA_1A4B;

/// Distinct values written; writes cycle through them so an overwrite changes the bytes.
const VALUE_POOL: usize = 64;

/// Sizes of one workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Keys preloaded before measuring.
    pub(crate) keys: usize,
    /// Length of every key in bytes.
    pub(crate) key_bytes: usize,
    /// Length of every value in bytes.
    pub(crate) value_bytes: usize,
    /// Keys per `get_batch` / `set_batch` call.
    pub(crate) batch: usize,
    /// Keys under each scan prefix; a scan reads exactly one such group as one page.
    pub(crate) scan: usize,
}

/// Keys grouped under fixed-width prefixes (`g3/000000001234`), values, and a shuffled
/// access order.
#[derive(Debug)]
pub(crate) struct Workload {
    shape: Shape,
    keys: Vec<Key>,
    prefixes: Vec<String>,
    values: Vec<Bytes>,
    order: Vec<usize>,
}

impl Workload {
    /// Generates the workload for `shape`.
    ///
    /// # Errors
    /// When the sizes cannot work together: fewer keys than one scan group, a batch larger
    /// than the key count, or keys too short to hold their prefix and a unique number.
    pub(crate) fn generate(shape: Shape) -> BenchResult<Workload> {
        if shape.scan == 0 || shape.keys < shape.scan {
            return Err(format!(
                "--keys ({}) must be at least --scan-len ({}), which must be positive",
                shape.keys, shape.scan
            )
            .into());
        }
        if shape.batch == 0 || shape.batch > shape.keys {
            return Err(format!(
                "--batch ({}) must be 1 to --keys ({})",
                shape.batch, shape.keys
            )
            .into());
        }
        let groups = shape.keys.div_ceil(shape.scan);
        let prefixes: Vec<String> = (0..groups)
            .map(|g| format!("g{g:0width$}/", width = digits(groups - 1)))
            .collect();
        let number_width = shape.key_bytes.saturating_sub(prefixes[0].len());
        if number_width < digits(shape.keys - 1) {
            return Err(format!(
                "--key-bytes {} is too short for {} keys: use at least {}",
                shape.key_bytes,
                shape.keys,
                prefixes[0].len() + digits(shape.keys - 1)
            )
            .into());
        }
        let keys = (0..shape.keys)
            .map(|i| Key::new(format!("{}{i:0number_width$}", prefixes[i / shape.scan])))
            .collect::<Result<Vec<_>, _>>()?;

        let mut rng = StdRng::seed_from_u64(SEED);
        let values = (0..VALUE_POOL)
            .map(|_| {
                let mut value = vec![0u8; shape.value_bytes];
                rng.fill(&mut value[..]);
                Bytes::from(value)
            })
            .collect();
        let mut order: Vec<usize> = (0..shape.keys).collect();
        order.shuffle(&mut rng);
        Ok(Workload {
            shape,
            keys,
            prefixes,
            values,
            order,
        })
    }

    /// The sizes this workload was generated with.
    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    /// Every key with the value it is preloaded with, in key order.
    pub(crate) fn initial_entries(&self) -> impl Iterator<Item = (Key, Bytes)> + '_ {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| (key.clone(), self.values[i % VALUE_POOL].clone()))
    }

    /// The key accessed by the `i`-th single operation: a fixed random permutation of all
    /// keys, repeated.
    pub(crate) fn key_at(&self, i: usize) -> &Key {
        &self.keys[self.order[i % self.order.len()]]
    }

    /// The value written by the `i`-th write; never the value preloaded under `key_at(i)`
    /// in the first pass, so an overwrite really changes bytes.
    pub(crate) fn value_at(&self, i: usize) -> Bytes {
        self.values[(self.order[i % self.order.len()] + 1 + i / self.order.len()) % VALUE_POOL]
            .clone()
    }

    /// The keys of the `i`-th batch: the next `batch` keys of the access order, distinct
    /// within the batch.
    pub(crate) fn batch_keys(&self, i: usize) -> Vec<Key> {
        let start = i * self.shape.batch;
        (start..start + self.shape.batch)
            .map(|j| self.key_at(j).clone())
            .collect()
    }

    /// The entries of the `i`-th batch write: [`Workload::batch_keys`] with fresh values.
    pub(crate) fn batch_entries(&self, i: usize) -> Vec<(Key, Bytes)> {
        let start = i * self.shape.batch;
        (start..start + self.shape.batch)
            .map(|j| (self.key_at(j).clone(), self.value_at(j)))
            .collect()
    }

    /// The prefix scanned by the `i`-th scan, cycling through the groups that hold exactly
    /// `scan` keys.
    pub(crate) fn scan_prefix(&self, i: usize) -> &str {
        let full_groups = self.shape.keys / self.shape.scan;
        &self.prefixes[i % full_groups]
    }
}

/// Decimal digits needed to print `n`.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            keys: 2_500,
            key_bytes: 16,
            value_bytes: 10,
            batch: 7,
            scan: 1_000,
        }
    }

    #[test]
    fn keys_have_the_requested_length_and_group_under_their_prefix() {
        let w = Workload::generate(shape()).unwrap();
        assert!(w.keys.iter().all(|k| k.as_str().len() == 16));
        assert!(w.keys.windows(2).all(|p| p[0] < p[1]));
        for i in 0..4 {
            let prefix = w.scan_prefix(i);
            let n = w.keys.iter().filter(|k| k.starts_with(prefix)).count();
            assert_eq!(n, 1_000, "{prefix}");
        }
    }

    #[test]
    fn batches_hold_distinct_keys_and_writes_change_values() {
        let w = Workload::generate(shape()).unwrap();
        let mut keys = w.batch_keys(3);
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 7);
        let initial: Vec<_> = w.initial_entries().collect();
        for i in 0..5_000 {
            let index = w.order[i % w.order.len()];
            assert_eq!(&initial[index].0, w.key_at(i));
            assert_ne!(initial[index].1, w.value_at(i));
        }
    }

    #[test]
    fn impossible_shapes_are_rejected() {
        let too_short = Shape {
            key_bytes: 5,
            ..shape()
        };
        assert!(Workload::generate(too_short).is_err());
        let few_keys = Shape {
            keys: 10,
            ..shape()
        };
        assert!(Workload::generate(few_keys).is_err());
    }
}
