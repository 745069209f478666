//! [`EventLogStore`] over any [`StorageBackend`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Key, Result, StorageBackend, WriteBatch, check_scan_limit};
use time::OffsetDateTime;
use uuid::Uuid;

use super::keys::EventStream;
use super::{
    Event, EventLogStore, EventQuery, EventRecord, TypePattern, check_event, check_event_type,
};
use crate::codec::{decode_record, encode_record};
use crate::kvops::{
    RangeScan, SCAN_PAGE, check_backlink, check_id, check_range, follow, utc_or_now,
};
use crate::portable::{ExportPage, PortableStore, decode_portable, export_records};
use crate::stream::{TimeStream, stream_range};

/// The event log implemented once over the key-value contract (layout in
/// [`keys`](super::keys)).
#[derive(Debug, Clone)]
pub struct GenericEventLogStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericEventLogStore {
    /// A store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericEventLogStore { backend }
    }

    /// Reads the records a page of stream entries names, keeping those whose type matches
    /// `pattern` (when given).
    async fn load(
        &self,
        stream: EventStream<'_>,
        page: Vec<(Key, Bytes)>,
        pattern: Option<&TypePattern>,
    ) -> Result<Vec<EventRecord>> {
        let linked = !matches!(stream, EventStream::All);
        let entries = if linked {
            let links = page
                .into_iter()
                .map(|(k, v)| pointer(&k, &v).map(|target| (k, target)))
                .collect::<Result<Vec<_>>>()?;
            follow(&*self.backend, links).await?
        } else {
            page
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let record: EventRecord = decode_record(&value)?;
            check_backlink(&key, &stream.entry(record.at, record.id)?)?;
            if !streams(&record.event_type, record.correlation_id.as_deref()).any(|s| s == stream) {
                return Err(Error::corruption(
                    "event does not belong to the index it was read from",
                )
                .with_context("key", &key));
            }
            if pattern.is_none_or(|p| p.matches(&record.event_type)) {
                out.push(record);
            }
        }
        Ok(out)
    }
}

/// Every stream an event appears in: the records, its type, each dotted prefix of its type,
/// and its correlation id.
fn streams<'a>(
    event_type: &'a str,
    correlation_id: Option<&'a str>,
) -> impl Iterator<Item = EventStream<'a>> {
    let prefixes = event_type
        .match_indices('.')
        .map(|(i, _)| EventStream::Prefix(&event_type[..i]));
    [EventStream::All, EventStream::Type(event_type)]
        .into_iter()
        .chain(prefixes)
        .chain(correlation_id.map(EventStream::Correlation))
}

/// Checks an event and turns it into the record to store.
fn prepare(event: Event) -> Result<EventRecord> {
    check_event_type(&event.event_type)?;
    if let Some(correlation) = &event.correlation_id {
        check_id("correlation id", correlation)?;
    }
    Ok(EventRecord {
        id: Uuid::now_v7(),
        event_type: event.event_type,
        payload: event.payload,
        correlation_id: event.correlation_id,
        at: utc_or_now(event.at),
    })
}

/// Adds the puts of `record` and its index entries (each holding the record's key).
fn put_record(batch: WriteBatch, record: &EventRecord) -> Result<WriteBatch> {
    let (at, id) = (record.at, record.id);
    let primary = EventStream::All.entry(at, id)?;
    let pointer = Bytes::from(primary.as_str().to_owned());
    let mut batch = batch.put(primary, encode_record(record)?);
    for stream in streams(&record.event_type, record.correlation_id.as_deref()).skip(1) {
        batch = batch.put(stream.entry(at, id)?, pointer.clone());
    }
    Ok(batch)
}

/// Adds the deletes of `record` and its index entries.
fn delete_record(batch: WriteBatch, record: &EventRecord) -> Result<WriteBatch> {
    streams(&record.event_type, record.correlation_id.as_deref())
        .try_fold(batch, |batch, stream| {
            Ok(batch.delete(stream.entry(record.at, record.id)?))
        })
}

/// Decodes an index entry's value: the text of the record key it points at.
fn pointer(index_key: &Key, value: &[u8]) -> Result<Key> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| Key::new(text).ok())
        .ok_or_else(|| {
            Error::corruption("event index entry does not hold a record key")
                .with_context("key", index_key)
        })
}

/// The stream that answers `query` with the fewest reads: the correlation index, then the
/// type index, then the records.
fn plan(query: &EventQuery) -> EventStream<'_> {
    match (&query.correlation_id, &query.event_type) {
        (Some(correlation), _) => EventStream::Correlation(correlation),
        (None, Some(TypePattern::Exact(t))) => EventStream::Type(t),
        (None, Some(TypePattern::Prefix(p))) => EventStream::Prefix(p),
        (None, None) => EventStream::All,
    }
}

fn check_query(query: &EventQuery) -> Result<()> {
    check_scan_limit(query.limit)?;
    check_range(query.from, query.to)?;
    if let Some(pattern) = &query.event_type {
        pattern.validate()?;
    }
    if let Some(correlation) = &query.correlation_id {
        check_id("correlation id", correlation)?;
    }
    Ok(())
}

#[async_trait]
impl EventLogStore for GenericEventLogStore {
    async fn append(&self, event: Event) -> Result<EventRecord> {
        let record = prepare(event)?;
        let batch = put_record(WriteBatch::new(), &record)?;
        self.backend.write_batch(batch).await?;
        Ok(record)
    }

    async fn append_batch(&self, events: Vec<Event>) -> Result<Vec<EventRecord>> {
        let records = events
            .into_iter()
            .map(prepare)
            .collect::<Result<Vec<_>>>()?;
        let batch = records.iter().try_fold(WriteBatch::new(), put_record)?;
        self.backend.write_batch(batch).await?;
        Ok(records)
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<EventRecord>> {
        check_query(query)?;
        let stream = plan(query);
        let mut scan = stream_range(&stream, query.from, query.to, query.after)?;
        let mut out = Vec::with_capacity(query.limit);
        while out.len() < query.limit {
            let page = scan
                .next_page(&*self.backend, query.limit - out.len())
                .await?;
            if page.is_empty() {
                break;
            }
            out.extend(self.load(stream, page, query.event_type.as_ref()).await?);
        }
        Ok(out)
    }

    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64> {
        let backend = &*self.backend;
        let mut scan =
            RangeScan::new(EventStream::All.prefix()).before(Some(EventStream::All.bound(before)?));
        let mut dropped = 0;
        loop {
            let page = scan.next_page(backend, SCAN_PAGE).await?;
            if page.is_empty() {
                return Ok(dropped);
            }
            let records = page
                .iter()
                .map(|(_, v)| decode_record::<EventRecord>(v))
                .collect::<Result<Vec<_>>>()?;
            let batch = records.iter().try_fold(WriteBatch::new(), delete_record)?;
            backend.write_batch(batch).await?;
            dropped += records.len() as u64;
        }
    }
}

/// The portable record of an event is its [`EventRecord`], id included, in record-key order
/// (time, then id). An import replaces an event of the same time and id, moving its index
/// entries when its type or correlation id changed.
#[async_trait]
impl PortableStore for GenericEventLogStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        export_records::<EventRecord>(&*self.backend, &EventStream::All.prefix(), after, limit)
            .await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut events = BTreeMap::new();
        for record in records {
            let (event, _): (EventRecord, _) = decode_portable(record)?;
            check_event(&event)?;
            events.insert(EventStream::All.entry(event.at, event.id)?, event);
        }
        if events.is_empty() {
            return Ok(());
        }
        let keys = events.keys().cloned().collect::<Vec<_>>();
        let existing = self.backend.get_batch(&keys).await?;
        let mut batch = WriteBatch::new();
        for ((key, event), old) in events.iter().zip(existing) {
            if let Some(old) = old {
                let old: EventRecord =
                    decode_record(&old).map_err(|e| e.with_context("key", key))?;
                batch = delete_record(batch, &old)?;
            }
            batch = put_record(batch, event)?;
        }
        self.backend.write_batch(batch).await
    }
}
