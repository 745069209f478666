//! Key-value operations shared by the stores: bounded range scans, guarded and chunked
//! deletes, index pointers and time helpers. Caller ids are checked by
//! [`crate::codec::check_id`], read-modify-write loops run in [`crate::retry::retry`].

use cairn_core::{Bytes, Error, ErrorKind, Key, Result, StorageBackend, WriteBatch};
use time::{OffsetDateTime, UtcOffset};

pub(crate) use crate::codec::check_id;
pub(crate) use crate::retry::retry;

/// Operations per write batch when deleting many keys.
const DELETE_CHUNK: usize = 10_000;

/// Entries fetched per scan call while walking a range.
pub(crate) const SCAN_PAGE: usize = 512;

/// The current time in UTC.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `at` (or now when `None`) converted to UTC, so stored times compare and print alike.
pub(crate) fn utc_or_now(at: Option<OffsetDateTime>) -> OffsetDateTime {
    at.map_or_else(now, |t| t.to_offset(UtcOffset::UTC))
}

/// Checks that a time range is not reversed.
///
/// # Errors
/// `InvalidInput` when both ends are given and `from > to`.
pub(crate) fn check_range(from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Result<()> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(Error::invalid_input(
            "time range starts after it ends (from > to)",
        )),
        _ => Ok(()),
    }
}

/// Applies `batch`; `Ok(false)` when one of its checks did not hold (a lost race).
///
/// # Errors
/// Any backend error other than `Conflict`.
pub(crate) async fn commit(backend: &dyn StorageBackend, batch: WriteBatch) -> Result<bool> {
    match backend.write_batch(batch).await {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::Conflict => Ok(false),
        Err(err) => Err(err),
    }
}

/// An ordered walk over the keys under `prefix` that sort after a start key and before an
/// end key, one scan page at a time.
#[derive(Debug)]
pub(crate) struct RangeScan {
    prefix: String,
    after: Option<Key>,
    end: Option<Key>,
    done: bool,
}

impl RangeScan {
    /// Walks every key under `prefix`.
    pub(crate) fn new(prefix: String) -> RangeScan {
        RangeScan {
            prefix,
            after: None,
            end: None,
            done: false,
        }
    }

    /// Starts strictly after `key` (when given).
    pub(crate) fn after(mut self, key: Option<Key>) -> RangeScan {
        self.after = key;
        self
    }

    /// Stops before the first key `>= key` (when given).
    pub(crate) fn before(mut self, key: Option<Key>) -> RangeScan {
        self.end = key;
        self
    }

    /// The next up to `limit` entries in key order; empty once the range is exhausted.
    ///
    /// # Errors
    /// Backend errors; `InvalidInput` for a `limit` outside `1..=MAX_SCAN_LIMIT`.
    pub(crate) async fn next_page(
        &mut self,
        backend: &dyn StorageBackend,
        limit: usize,
    ) -> Result<Vec<(Key, Bytes)>> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = backend
            .scan(&self.prefix, self.after.as_ref(), limit)
            .await?;
        let mut entries = page.entries;
        if let Some(end) = &self.end {
            if let Some(cut) = entries.iter().position(|(k, _)| k >= end) {
                entries.truncate(cut);
                self.done = true;
            }
        }
        match page.next_after {
            Some(next) if !self.done => self.after = Some(next),
            _ => self.done = true,
        }
        Ok(entries)
    }

    /// Every remaining key of the range.
    ///
    /// # Errors
    /// Backend errors.
    pub(crate) async fn collect_keys(mut self, backend: &dyn StorageBackend) -> Result<Vec<Key>> {
        let mut keys = Vec::new();
        loop {
            let page = self.next_page(backend, SCAN_PAGE).await?;
            if page.is_empty() {
                return Ok(keys);
            }
            keys.extend(page.into_iter().map(|(k, _)| k));
        }
    }
}

/// Reads the records that index entries link to, as `(index key, record value)` in index
/// order.
///
/// A record missing while its index entry is also gone was deleted concurrently and is
/// skipped; a record missing while its index entry remains is a dangling link.
///
/// # Errors
/// Backend errors; `Corruption` for a dangling link.
pub(crate) async fn follow(
    backend: &dyn StorageBackend,
    links: Vec<(Key, Key)>,
) -> Result<Vec<(Key, Bytes)>> {
    let (index, records): (Vec<Key>, Vec<Key>) = links.into_iter().unzip();
    let values = backend.get_batch(&records).await?;
    let mut found = Vec::with_capacity(values.len());
    let mut missing = Vec::new();
    for (index_key, value) in index.into_iter().zip(values) {
        match value {
            Some(value) => found.push((index_key, value)),
            None => missing.push(index_key),
        }
    }
    let still_indexed = backend.get_batch(&missing).await?;
    if let Some(pos) = still_indexed.iter().position(Option::is_some) {
        return Err(Error::corruption("index entry links to a missing record")
            .with_context("key", &missing[pos]));
    }
    Ok(found)
}

/// Checks that a record read through `index_key` names that index entry in turn.
///
/// # Errors
/// `Corruption` when `expected` (the entry the record would have) differs.
pub(crate) fn check_backlink(index_key: &Key, expected: &Key) -> Result<()> {
    if index_key == expected {
        return Ok(());
    }
    Err(Error::corruption("index entry links to another record")
        .with_context("key", index_key)
        .with_context("record_entry", expected))
}

/// What a guarded delete does with its guard key once the other keys are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// Keep it (the parent lives on, as after a prune).
    Keep,
    /// Delete it too (the parent is gone).
    Delete,
}

/// Deletes `keys` provided `guard` still holds `value`, then keeps or deletes the guard.
///
/// Every batch (at most [`DELETE_CHUNK`] keys) re-checks the guard, so a concurrent writer
/// that changes it stops the deletion; when everything fits in one batch the deletion is
/// atomic. `Ok(false)` when the guard changed: the caller re-reads and tries again (batches
/// already applied only removed keys that were to be removed then).
///
/// # Errors
/// Backend errors other than a failed guard check.
pub(crate) async fn delete_guarded(
    backend: &dyn StorageBackend,
    (guard, value): (Key, Bytes),
    keys: Vec<Key>,
    then: Guard,
) -> Result<bool> {
    let mut chunks: Vec<&[Key]> = keys.chunks(DELETE_CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (n, chunk) in chunks.into_iter().enumerate() {
        let checked = WriteBatch::new().check(guard.clone(), Some(value.clone()));
        let mut batch = chunk.iter().cloned().fold(checked, WriteBatch::delete);
        if n == last && then == Guard::Delete {
            batch = batch.delete(guard.clone());
        }
        if !commit(backend, batch).await? {
            return Ok(false);
        }
    }
    Ok(true)
}
