//! One tenant's data: a hash map for point operations plus an ordered key index for scans.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use cairn_core::{BatchOp, Bytes, Check, Key, prefix_upper_bound};
use foldhash::fast::RandomState;

/// A tenant's entries. Point reads hash; scans walk the ordered index from the prefix, so no
/// call sorts the whole map.
#[derive(Debug, Default)]
pub(crate) struct Table {
    values: HashMap<Key, Bytes, RandomState>,
    order: BTreeSet<Key>,
}

impl Table {
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Bytes> {
        self.values.get(key)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub(crate) fn insert(&mut self, key: &Key, value: Bytes) {
        if let Some(slot) = self.values.get_mut(key.as_str()) {
            *slot = value;
            return;
        }
        self.order.insert(key.clone());
        self.values.insert(key.clone(), value);
    }

    pub(crate) fn remove(&mut self, key: &str) -> bool {
        if self.values.remove(key).is_some() {
            self.order.remove(key);
            true
        } else {
            false
        }
    }

    pub(crate) fn clear(&mut self) {
        self.values.clear();
        self.order.clear();
    }

    /// Whether every check holds against the current entries.
    pub(crate) fn checks_hold(&self, checks: &[Check]) -> bool {
        checks
            .iter()
            .all(|c| self.values.get(c.key.as_str()) == c.expected.as_ref())
    }

    pub(crate) fn apply(&mut self, ops: Vec<BatchOp>) {
        for op in ops {
            match op {
                BatchOp::Put { key, value } => self.insert(&key, value),
                BatchOp::Delete { key } => {
                    self.remove(key.as_str());
                }
            }
        }
    }

    /// Up to `limit` entries whose keys start with `prefix` and sort after `after`, ascending.
    pub(crate) fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(Key, Bytes)> {
        let (start, end) = bounds(prefix, after);
        if let (Some(after), Bound::Excluded(end)) = (after, &end) {
            if after >= end.as_str() {
                return Vec::new();
            }
        }
        self.order
            .range::<str, _>((
                start.as_ref().map(String::as_str),
                end.as_ref().map(String::as_str),
            ))
            .take(limit)
            .map(|k| (k.clone(), self.value_of(k)))
            .collect()
    }

    /// Every key starting with `prefix`, ascending.
    pub(crate) fn keys(&self, prefix: &str) -> Vec<Key> {
        let (start, end) = bounds(prefix, None);
        self.order
            .range::<str, _>((
                start.as_ref().map(String::as_str),
                end.as_ref().map(String::as_str),
            ))
            .cloned()
            .collect()
    }

    /// The value of a key the index just returned.
    fn value_of(&self, key: &Key) -> Bytes {
        self.values
            .get(key)
            .cloned()
            .expect("the ordered index and the map hold the same keys")
    }
}

fn bounds(prefix: &str, after: Option<&str>) -> (Bound<String>, Bound<String>) {
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
        _ => Bound::Included(prefix.to_owned()),
    };
    let end = match prefix_upper_bound(prefix) {
        Some(bound) => Bound::Excluded(bound),
        None => Bound::Unbounded,
    };
    (start, end)
}
