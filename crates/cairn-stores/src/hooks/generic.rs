//! [`HookHistoryStore`] over any [`StorageBackend`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{Bytes, Key, Result, StorageBackend, WriteBatch, check_scan_limit};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::keys::HookStream;
use super::{HookExecution, HookHistoryStore, HookQuery, HookRecord, HookStats, check_hook_record};
use crate::codec::{decode_record, encode_record};
use crate::kvops::{
    RangeScan, SCAN_PAGE, check_backlink, check_id, check_range, follow, utc_or_now,
};
use crate::portable::{ExportPage, PortableStore, decode_portable, export_records};
use crate::stream::{TimeStream, stream_range};

/// A per-hook index entry: the record's time and id (its place in [`HookStream::All`]) plus
/// what [`HookHistoryStore::stats`] needs, so statistics never read inputs or outputs.
#[derive(Debug, Serialize, Deserialize)]
struct HookIndexEntry {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    id: Uuid,
    duration: Duration,
    failed: bool,
}

/// The hook history implemented once over the key-value contract (layout in
/// [`keys`](super::keys)).
#[derive(Debug, Clone)]
pub struct GenericHookHistoryStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericHookHistoryStore {
    /// A store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericHookHistoryStore { backend }
    }

    /// Reads the records a page of stream entries names.
    async fn load(
        &self,
        stream: HookStream<'_>,
        page: Vec<(Key, Bytes)>,
    ) -> Result<Vec<HookRecord>> {
        let entries = match stream {
            HookStream::All => page,
            HookStream::Hook(_) => {
                let links = page
                    .into_iter()
                    .map(|(k, v)| {
                        let entry: HookIndexEntry = decode_record(&v)?;
                        Ok((k, HookStream::All.entry(entry.at, entry.id)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                follow(&*self.backend, links).await?
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let record: HookRecord = decode_record(&value)?;
            let expected = match stream {
                HookStream::All => HookStream::All,
                HookStream::Hook(_) => HookStream::Hook(&record.hook_name),
            };
            check_backlink(&key, &expected.entry(record.at, record.id)?)?;
            out.push(record);
        }
        Ok(out)
    }
}

/// Adds the puts of `record` and its per-hook index entry.
fn put_record(batch: WriteBatch, record: &HookRecord) -> Result<WriteBatch> {
    let (at, id) = (record.at, record.id);
    let entry = HookIndexEntry {
        at,
        id,
        duration: record.duration,
        failed: record.error.is_some(),
    };
    Ok(batch
        .put(HookStream::All.entry(at, id)?, encode_record(record)?)
        .put(
            HookStream::Hook(&record.hook_name).entry(at, id)?,
            encode_record(&entry)?,
        ))
}

/// Nearest-rank percentile `pct` (1..=100) of ascending `sorted` (non-empty), in ms.
fn percentile_ms(sorted: &[Duration], pct: usize) -> f64 {
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    millis(sorted[rank - 1])
}

fn millis(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

fn summarise(mut durations: Vec<Duration>, failures: u64) -> HookStats {
    durations.sort_unstable();
    let count = durations.len() as u64;
    let any = !durations.is_empty();
    let total: Duration = durations.iter().sum();
    HookStats {
        count,
        failures,
        mean_ms: any.then(|| millis(total) / count as f64),
        p50_ms: any.then(|| percentile_ms(&durations, 50)),
        p95_ms: any.then(|| percentile_ms(&durations, 95)),
    }
}

#[async_trait]
impl HookHistoryStore for GenericHookHistoryStore {
    async fn record(&self, execution: HookExecution) -> Result<HookRecord> {
        check_id("hook name", &execution.hook_name)?;
        let record = HookRecord {
            id: Uuid::now_v7(),
            hook_name: execution.hook_name,
            input: execution.input,
            output: execution.output,
            error: execution.error,
            duration: execution.duration,
            at: utc_or_now(execution.at),
        };
        let batch = put_record(WriteBatch::new(), &record)?;
        self.backend.write_batch(batch).await?;
        Ok(record)
    }

    async fn query(&self, query: &HookQuery) -> Result<Vec<HookRecord>> {
        check_scan_limit(query.limit)?;
        check_range(query.from, query.to)?;
        if let Some(name) = &query.hook_name {
            check_id("hook name", name)?;
        }
        let stream = query
            .hook_name
            .as_deref()
            .map_or(HookStream::All, HookStream::Hook);
        let mut scan = stream_range(&stream, query.from, query.to, query.after)?;
        let mut out = Vec::with_capacity(query.limit);
        while out.len() < query.limit {
            let page = scan
                .next_page(&*self.backend, query.limit - out.len())
                .await?;
            if page.is_empty() {
                break;
            }
            out.extend(self.load(stream, page).await?);
        }
        Ok(out)
    }

    async fn stats(
        &self,
        hook_name: &str,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<HookStats> {
        check_id("hook name", hook_name)?;
        check_range(from, to)?;
        let mut scan = stream_range(&HookStream::Hook(hook_name), from, to, None)?;
        let (mut durations, mut failures) = (Vec::new(), 0);
        loop {
            let page = scan.next_page(&*self.backend, SCAN_PAGE).await?;
            if page.is_empty() {
                return Ok(summarise(durations, failures));
            }
            for (_, value) in page {
                let entry: HookIndexEntry = decode_record(&value)?;
                durations.push(entry.duration);
                failures += u64::from(entry.failed);
            }
        }
    }

    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64> {
        let backend = &*self.backend;
        let mut scan =
            RangeScan::new(HookStream::All.prefix()).before(Some(HookStream::All.bound(before)?));
        let mut dropped = 0;
        loop {
            let page = scan.next_page(backend, SCAN_PAGE).await?;
            if page.is_empty() {
                return Ok(dropped);
            }
            let mut batch = WriteBatch::new();
            for (key, value) in page {
                let record: HookRecord = decode_record(&value)?;
                let index = HookStream::Hook(&record.hook_name).entry(record.at, record.id)?;
                batch = batch.delete(key).delete(index);
                dropped += 1;
            }
            backend.write_batch(batch).await?;
        }
    }
}

/// The portable record of an execution is its [`HookRecord`], id included, in record-key
/// order (time, then id). An import replaces an execution of the same time and id, moving its
/// per-hook index entry when its hook changed.
#[async_trait]
impl PortableStore for GenericHookHistoryStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        export_records::<HookRecord>(&*self.backend, &HookStream::All.prefix(), after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut executions = BTreeMap::new();
        for record in records {
            let (execution, _): (HookRecord, _) = decode_portable(record)?;
            check_hook_record(&execution)?;
            executions.insert(
                HookStream::All.entry(execution.at, execution.id)?,
                execution,
            );
        }
        if executions.is_empty() {
            return Ok(());
        }
        let keys = executions.keys().cloned().collect::<Vec<_>>();
        let existing = self.backend.get_batch(&keys).await?;
        let mut batch = WriteBatch::new();
        for ((key, execution), old) in executions.iter().zip(existing) {
            if let Some(old) = old {
                let old: HookRecord =
                    decode_record(&old).map_err(|e| e.with_context("key", key))?;
                batch = batch.delete(HookStream::Hook(&old.hook_name).entry(old.at, old.id)?);
            }
            batch = put_record(batch, execution)?;
        }
        self.backend.write_batch(batch).await
    }
}
