//! Raw in-process maps: the floor under `cairn-memory`.
//!
//! Two baselines, because the memory backend's layout is a choice that has to be justified
//! by measurement: it keeps a foldhash `HashMap` for point operations plus an ordered key
//! index for scans. [`RawHashMap`] is the point-operation floor (and shows what a prefix scan
//! costs without an index); [`RawBTreeMap`] is the single-ordered-map alternative.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::ops::Bound;

use bytes::Bytes;
use cairn_core::{Key, prefix_upper_bound};
use foldhash::fast::RandomState;

use crate::BenchResult;
use crate::harness::Target;

/// Counts one more item, keeping its `len` observable so the read is not optimised away.
fn touch(count: usize, len: usize) -> usize {
    black_box(len);
    count + 1
}

/// A bare `HashMap<String, Bytes>` with foldhash; scans filter every key and sort the hits.
#[derive(Debug, Default)]
pub(crate) struct RawHashMap {
    map: HashMap<String, Bytes, RandomState>,
}

impl RawHashMap {
    /// Every entry under `prefix`, sorted by key.
    fn sorted_under(&self, prefix: &str) -> Vec<(&String, &Bytes)> {
        let mut hits: Vec<(&String, &Bytes)> = self
            .map
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .collect();
        hits.sort_unstable_by(|a, b| a.0.cmp(b.0));
        hits
    }
}

impl Target for RawHashMap {
    async fn get(&mut self, key: &Key) -> BenchResult<Option<usize>> {
        Ok(self.map.get(key.as_str()).map(Bytes::len))
    }

    async fn set(&mut self, key: &Key, value: Bytes) -> BenchResult<()> {
        match self.map.get_mut(key.as_str()) {
            Some(slot) => *slot = value,
            None => {
                self.map.insert(key.as_str().to_owned(), value);
            }
        }
        Ok(())
    }

    async fn get_batch(&mut self, keys: &[Key]) -> BenchResult<usize> {
        Ok(keys
            .iter()
            .filter_map(|key| self.map.get(key.as_str()))
            .map(Bytes::len)
            .fold(0, touch))
    }

    async fn set_batch(&mut self, entries: Vec<(Key, Bytes)>) -> BenchResult<()> {
        for (key, value) in entries {
            self.set(&key, value).await?;
        }
        Ok(())
    }

    async fn scan(&mut self, prefix: &str, limit: usize) -> BenchResult<usize> {
        let hits = self.sorted_under(prefix);
        Ok(hits
            .iter()
            .take(limit)
            .map(|(_, value)| value.len())
            .fold(0, touch))
    }

    async fn list_keys(&mut self, prefix: &str) -> BenchResult<usize> {
        Ok(self.sorted_under(prefix).len())
    }
}

/// A bare `BTreeMap<String, Bytes>`: one ordered map for points and scans alike.
#[derive(Debug, Default)]
pub(crate) struct RawBTreeMap {
    map: BTreeMap<String, Bytes>,
}

impl RawBTreeMap {
    /// Entries from `prefix` up to `end` (the prefix's upper bound) in key order, found by a
    /// range walk.
    fn range_under<'a>(
        &'a self,
        prefix: &'a str,
        end: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Bytes)> {
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        self.map.range::<str, _>((Bound::Included(prefix), end))
    }
}

impl Target for RawBTreeMap {
    async fn get(&mut self, key: &Key) -> BenchResult<Option<usize>> {
        Ok(self.map.get(key.as_str()).map(Bytes::len))
    }

    async fn set(&mut self, key: &Key, value: Bytes) -> BenchResult<()> {
        match self.map.get_mut(key.as_str()) {
            Some(slot) => *slot = value,
            None => {
                self.map.insert(key.as_str().to_owned(), value);
            }
        }
        Ok(())
    }

    async fn get_batch(&mut self, keys: &[Key]) -> BenchResult<usize> {
        Ok(keys
            .iter()
            .filter_map(|key| self.map.get(key.as_str()))
            .map(Bytes::len)
            .fold(0, touch))
    }

    async fn set_batch(&mut self, entries: Vec<(Key, Bytes)>) -> BenchResult<()> {
        for (key, value) in entries {
            self.set(&key, value).await?;
        }
        Ok(())
    }

    async fn scan(&mut self, prefix: &str, limit: usize) -> BenchResult<usize> {
        let end = prefix_upper_bound(prefix);
        Ok(self
            .range_under(prefix, end.as_deref())
            .take(limit)
            .map(|(_, value)| value.len())
            .fold(0, touch))
    }

    async fn list_keys(&mut self, prefix: &str) -> BenchResult<usize> {
        let end = prefix_upper_bound(prefix);
        Ok(self
            .range_under(prefix, end.as_deref())
            .map(|(key, _)| key.len())
            .fold(0, touch))
    }
}
