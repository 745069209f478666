//! Moving a component's records between implementations and backends: [`PortableStore`].
//!
//! Every implementation of a component store (the generic one over any key-value backend, a
//! native PostgreSQL one) can also export its records, page by page, in one *portable* form
//! that every other implementation of the same component imports with everything preserved
//! (ids, times, versions, counters, history). Export/import files ([`crate::dump`]), backend
//! to backend copies ([`copy`]) and their verification ([`fingerprint`]) all work on it.
//!
//! A portable record is `version:u8 ‖ meta_len:u32 ‖ meta ‖ blob`: `meta` is the JSON of the
//! component's record type, `blob` raw bytes that must survive exactly (artifact content, a
//! state snapshot's payload). Big-endian integers; [`PORTABLE_RECORD_VERSION`] is 1.

use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Key, Result, StorageBackend};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{OffsetDateTime, UtcOffset};

/// The format version of portable records written by this build.
pub const PORTABLE_RECORD_VERSION: u8 = 1;

/// Most records one export page may hold.
pub const MAX_EXPORT_PAGE: usize = 10_000;

/// One page of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPage {
    /// Portable records, in the implementation's export order.
    pub records: Vec<Bytes>,
    /// Pass this as `after` to read the next page; `None` when the export is complete.
    pub next: Option<Vec<u8>>,
}

/// A component store that can export and import its records in the portable form.
///
/// The cursor is opaque and belongs to the implementation that produced it: resume an export
/// only on the store it came from.
#[async_trait]
pub trait PortableStore: Send + Sync + fmt::Debug {
    /// Up to `limit` records after the cursor `after` (`None`: from the start).
    ///
    /// # Behavior
    /// - Paging with `next` visits every record once, in a fixed order.
    /// - Records include what reads hide but the store still holds (expired sessions, closed
    ///   graph versions), so a copy answers every query as the original.
    ///
    /// # Errors
    /// `InvalidInput` for a `limit` outside 1 to [`MAX_EXPORT_PAGE`] or a cursor this store did
    /// not produce; `Corruption` for a stored record that does not decode.
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage>;

    /// Writes records exported by any implementation of the same component, replacing the
    /// record of the same identity.
    ///
    /// # Behavior
    /// - Importing the same records again changes nothing.
    /// - The records of one call are written together or not at all where the backend allows
    ///   (one key-value batch, one transaction).
    /// - The target should have no concurrent writers of the same records.
    ///
    /// # Errors
    /// `Corruption` for a record that does not decode; `InvalidInput` for one whose values
    /// the store refuses (nothing of the call is written).
    async fn import(&self, records: &[Bytes]) -> Result<()>;
}

/// Encodes a portable record of `meta` and `blob`.
///
/// # Errors
/// `InvalidInput` when `meta` does not serialise or is larger than 4 GiB.
pub fn encode_portable<T: Serialize>(meta: &T, blob: &[u8]) -> Result<Bytes> {
    let json = serde_json::to_vec(meta).map_err(|err| {
        Error::invalid_input("portable record does not serialise").with_source(err)
    })?;
    let len = u32::try_from(json.len())
        .map_err(|_| Error::invalid_input("portable record metadata exceeds 4 GiB"))?;
    let mut out = Vec::with_capacity(5 + json.len() + blob.len());
    out.push(PORTABLE_RECORD_VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(blob);
    Ok(Bytes::from(out))
}

/// Decodes a portable record into its metadata and blob.
///
/// # Errors
/// `Corruption` when the record is truncated, of an unknown version, or its metadata is not
/// a `T`.
pub fn decode_portable<T: DeserializeOwned>(record: &[u8]) -> Result<(T, &[u8])> {
    let Some((&version, rest)) = record.split_first() else {
        return Err(Error::corruption("portable record is empty"));
    };
    if version != PORTABLE_RECORD_VERSION {
        return Err(Error::corruption(format!(
            "portable record version {version} is unknown (this build reads \
             {PORTABLE_RECORD_VERSION})"
        )));
    }
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| Error::corruption("portable record is truncated"))?;
    let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
    if rest.len() < len {
        return Err(Error::corruption("portable record is truncated"));
    }
    let (json, blob) = rest.split_at(len);
    let meta = serde_json::from_slice(json).map_err(|err| {
        Error::corruption("portable record metadata does not decode").with_source(err)
    })?;
    Ok((meta, blob))
}

/// Checks an export page size.
///
/// # Errors
/// `InvalidInput` outside 1 to [`MAX_EXPORT_PAGE`].
pub fn check_export_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_EXPORT_PAGE {
        return Err(Error::invalid_input(format!(
            "export page size must be 1 to {MAX_EXPORT_PAGE}, got {limit}"
        )));
    }
    Ok(())
}

/// The key-value cursor of a generic store's export: the last key read, which must lie
/// under `prefix`.
///
/// # Errors
/// `InvalidInput` for a cursor that is not such a key.
fn cursor_key(cursor: &[u8], prefix: &str) -> Result<Key> {
    std::str::from_utf8(cursor)
        .ok()
        .filter(|key| key.starts_with(prefix))
        .and_then(|key| Key::new(key).ok())
        .ok_or_else(|| Error::invalid_input("export cursor was not produced by this store"))
}

/// One page of a generic store's export: up to `limit` entries under `prefix` after the
/// cursor `after` (the last key of the previous page), in key order, and the cursor of the
/// next page.
///
/// # Errors
/// As [`PortableStore::export_page`], and the backend's scan errors.
pub(crate) async fn scan_export(
    backend: &dyn StorageBackend,
    prefix: &str,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(Vec<(Key, Bytes)>, Option<Vec<u8>>)> {
    check_export_limit(limit)?;
    let after = after.map(|cursor| cursor_key(cursor, prefix)).transpose()?;
    let page = backend.scan(prefix, after.as_ref(), limit).await?;
    let next = page.next_after.map(|key| key.as_str().as_bytes().to_vec());
    Ok((page.entries, next))
}

/// An export page of a generic store whose portable record is its stored record `T` (no
/// blob): the records under `prefix` after the cursor, decoded and re-encoded.
///
/// # Errors
/// As [`scan_export`]; `Corruption` for a stored record that does not decode.
pub(crate) async fn export_records<T: Serialize + DeserializeOwned>(
    backend: &dyn StorageBackend,
    prefix: &str,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<ExportPage> {
    let (entries, next) = scan_export(backend, prefix, after, limit).await?;
    let records = entries
        .iter()
        .map(|(key, bytes)| {
            let record: T =
                crate::codec::decode_record(bytes).map_err(|e| e.with_context("key", key))?;
            encode_portable(&record, &[])
        })
        .collect::<Result<_>>()?;
    Ok(ExportPage { records, next })
}

/// An export page of `items`, fetched as up to `limit + 1` rows in export order (the extra
/// one only tells that another page follows): the first `limit` encoded by `encode`, and
/// when more follow, the cursor `cursor` gives for the last of them.
///
/// # Errors
/// Whatever `encode` or `cursor` returns.
pub fn page_of<T>(
    mut items: Vec<T>,
    limit: usize,
    encode: impl FnMut(&T) -> Result<Bytes>,
    cursor: impl FnOnce(&T) -> Result<Vec<u8>>,
) -> Result<ExportPage> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = match items.last() {
        Some(last) if more => Some(cursor(last)?),
        _ => None,
    };
    let records = items.iter().map(encode).collect::<Result<_>>()?;
    Ok(ExportPage { records, next })
}

/// Encodes an implementation's own export cursor (its position in export order) as JSON.
///
/// # Errors
/// `InvalidInput` when `position` does not serialise.
pub fn encode_cursor<T: Serialize>(position: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(position)
        .map_err(|err| Error::invalid_input("export cursor does not serialise").with_source(err))
}

/// Decodes a cursor written by [`encode_cursor`].
///
/// # Errors
/// `InvalidInput` for bytes that are not such a cursor.
pub fn decode_cursor<T: DeserializeOwned>(cursor: &[u8]) -> Result<T> {
    serde_json::from_slice(cursor).map_err(|err| {
        Error::invalid_input("export cursor was not produced by this store").with_source(err)
    })
}

/// Checks a time read from a portable record: in UTC (as every store returns times) and in
/// years 0 to 9999 (the range every backend stores).
///
/// # Errors
/// `InvalidInput` naming `what` otherwise.
pub fn check_portable_time(what: &str, at: OffsetDateTime) -> Result<()> {
    if at.offset() != UtcOffset::UTC || !(0..=9999).contains(&at.year()) {
        return Err(Error::invalid_input(format!(
            "{what} time {at} must be in UTC and in years 0 to 9999"
        )));
    }
    Ok(())
}

/// How many records a store holds and a digest of them that does not depend on their order,
/// so two implementations holding the same records agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Number of records.
    pub records: u64,
    /// Bytes of all records together.
    pub bytes: u64,
    /// The wrapping sum of each record's BLAKE3 hash read as four little-endian `u64`s.
    pub digest: [u64; 4],
}

impl Fingerprint {
    fn add(&mut self, record: &[u8]) {
        let hash = blake3::hash(record);
        for (lane, chunk) in self.digest.iter_mut().zip(hash.as_bytes().chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *lane = lane.wrapping_add(u64::from_le_bytes(word));
        }
        self.records += 1;
        self.bytes += record.len() as u64;
    }

    /// The digest as 64 hex digits.
    pub fn hex(&self) -> String {
        self.digest
            .iter()
            .map(|lane| format!("{lane:016x}"))
            .collect()
    }
}

/// Reads every record of `store` and returns their [`Fingerprint`].
///
/// # Errors
/// As [`PortableStore::export_page`].
pub async fn fingerprint(store: &dyn PortableStore, page_size: usize) -> Result<Fingerprint> {
    let mut print = Fingerprint {
        records: 0,
        bytes: 0,
        digest: [0; 4],
    };
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.export_page(after.as_deref(), page_size).await?;
        for record in &page.records {
            print.add(record);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(print),
        }
    }
}

/// One page of a [`copy`], as its callback sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// The cursor after this page, to resume from; `None` after the last page.
    pub next: Option<Vec<u8>>,
    /// Records in this page.
    pub records: u64,
    /// Bytes of the records in this page.
    pub bytes: u64,
}

/// What [`copy`] calls after each page is imported; closures
/// `FnMut(CopyStep) -> Result<()>` are one.
#[async_trait]
pub trait OnPage: Send {
    /// The page `step` describes is imported; an error stops the copy.
    async fn page_copied(&mut self, step: CopyStep) -> Result<()>;
}

#[async_trait]
impl<F> OnPage for F
where
    F: FnMut(CopyStep) -> Result<()> + Send,
{
    async fn page_copied(&mut self, step: CopyStep) -> Result<()> {
        self(step)
    }
}

/// Copies every record of `from` after the cursor `resume` into `to`, a page at a time, and
/// calls `on_page` after each page is imported (the last one too, with no cursor), so an
/// interrupted copy can resume where it stopped. Returns the records copied by this call.
///
/// # Errors
/// As [`PortableStore::export_page`] and [`PortableStore::import`], and whatever `on_page`
/// returns; the pages before the failing one stay copied.
pub async fn copy(
    from: &dyn PortableStore,
    to: &dyn PortableStore,
    resume: Option<Vec<u8>>,
    page_size: usize,
    mut on_page: impl OnPage,
) -> Result<u64> {
    let mut after = resume;
    let mut copied = 0u64;
    loop {
        let page = from.export_page(after.as_deref(), page_size).await?;
        if !page.records.is_empty() {
            to.import(&page.records).await?;
        }
        let records = page.records.len() as u64;
        copied += records;
        let bytes = page.records.iter().map(|r| r.len() as u64).sum();
        on_page
            .page_copied(CopyStep {
                next: page.next.clone(),
                records,
                bytes,
            })
            .await?;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(copied),
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_core::ErrorKind;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_corruption() {
        let record = encode_portable(&serde_json::json!({"id": "a"}), b"\x00\xffblob").unwrap();
        let (meta, blob): (serde_json::Value, &[u8]) = decode_portable(&record).unwrap();
        assert_eq!(meta, serde_json::json!({"id": "a"}));
        assert_eq!(blob, b"\x00\xffblob");
        for cut in 0..10 {
            let err = decode_portable::<serde_json::Value>(&record[..cut]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "cut at {cut}");
        }
        let mut other_version = record.to_vec();
        other_version[0] = 2;
        let err = decode_portable::<serde_json::Value>(&other_version).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption);
    }

    #[test]
    fn pages_cursors_and_times() {
        let encode = |n: &u32| encode_portable(n, &[]);
        let cursor = |n: &u32| encode_cursor(n);
        let full = page_of(vec![1u32, 2, 3], 2, encode, cursor).unwrap();
        assert_eq!(full.records.len(), 2);
        assert_eq!(decode_cursor::<u32>(&full.next.unwrap()).unwrap(), 2);
        let last = page_of(vec![1u32, 2], 2, encode, cursor).unwrap();
        assert_eq!((last.records.len(), last.next), (2, None));
        let err = decode_cursor::<(String, u64)>(b"not json").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        assert!(check_portable_time("t", datetime!(0000-01-01 0:00 UTC)).is_ok());
        for bad in [
            datetime!(2026-01-01 0:00 +1),
            datetime!(-0001-12-31 0:00 UTC),
        ] {
            let err = check_portable_time("t", bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn fingerprints_ignore_order_but_not_content() {
        let mut a = Fingerprint {
            records: 0,
            bytes: 0,
            digest: [0; 4],
        };
        let mut b = a;
        a.add(b"one");
        a.add(b"two");
        b.add(b"two");
        b.add(b"one");
        assert_eq!(a, b);
        let mut c = a;
        c.add(b"three");
        assert_ne!(a, c);
        let mut d = Fingerprint {
            records: 0,
            bytes: 0,
            digest: [0; 4],
        };
        d.add(b"one");
        d.add(b"twp");
        assert_ne!(a.digest, d.digest);
        assert_eq!(a.hex().len(), 64);
    }
}
