//! The procedural store over any [`StorageBackend`].
//!
//! One record key per procedure holds the definition and the counters; a category index key
//! per procedure makes category listings and rankings a prefix scan. Definition writes and
//! deletes go through one `write_batch` checked against the record bytes they read (so the
//! index always follows the record's category); outcomes are a `compare_and_swap` on the
//! record. A writer that loses a race re-reads and tries again, so no count is lost.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Key, Result, StorageBackend, WriteBatch};
use time::OffsetDateTime;

use super::keys::{ProceduralKey, ProceduralPrefix, last_id};
use super::{OutcomeStats, ProceduralStore, Procedure, StoredProcedure, check_stored_procedure};
use crate::codec::check_id;
use crate::codec::{decode_record, encode_record};
use crate::paging::{Page, PageRequest};
use crate::portable::{ExportPage, PortableStore, decode_portable, export_records};

/// Attempts of one write before it gives up with a retryable `Conflict`. Every lost attempt
/// means another writer of the same procedure won, so this bounds only pathological
/// contention.
const MAX_ATTEMPTS: usize = 1000;

/// Entries per scan page.
const SCAN_PAGE: usize = 256;

/// The [`ProceduralStore`] over a key-value backend; works on the backend handle's tenant.
#[derive(Debug, Clone)]
pub struct GenericProceduralStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericProceduralStore {
    /// A procedural store keeping its data in `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericProceduralStore { backend }
    }
}

fn record_key(id: &str) -> Result<Key> {
    ProceduralKey::Record { id }.key()
}

fn index_key(category: &str, id: &str) -> Result<Key> {
    ProceduralKey::ByCategory { category, id }.key()
}

fn check_limit(limit: usize) -> Result<()> {
    PageRequest::first(limit).validate()
}

fn too_busy(id: &str) -> Error {
    Error::conflict("too many concurrent writers of one procedure; try again")
        .with_context("id", id)
        .with_retryable(true)
}

fn check_procedure(procedure: &Procedure) -> Result<()> {
    procedure.validate()?;
    // Both keys must fit before anything is written.
    record_key(&procedure.id)?;
    index_key(&procedure.category, &procedure.id)?;
    Ok(())
}

/// `stats` after one more outcome at `now`.
fn bump(stats: &OutcomeStats, success: bool, now: OffsetDateTime) -> Result<OutcomeStats> {
    let overflow = || Error::invalid_input("procedure outcome counter is at its maximum");
    let mut next = stats.clone();
    if success {
        next.successes = next.successes.checked_add(1).ok_or_else(overflow)?;
    } else {
        next.failures = next.failures.checked_add(1).ok_or_else(overflow)?;
    }
    next.last_used_at = Some(match stats.last_used_at {
        Some(last) if last > now => last,
        _ => now,
    });
    Ok(next)
}

/// Best success rate first, then more uses, then smaller id. Both sides have uses >= 1.
fn by_success_rate(a: &StoredProcedure, b: &StoredProcedure) -> Ordering {
    let (sa, ua) = (u128::from(a.stats.successes), uses(a));
    let (sb, ub) = (u128::from(b.stats.successes), uses(b));
    // sa/ua > sb/ub  <=>  sa*ub > sb*ua (exact for u64 counters in u128).
    (sb * ua)
        .cmp(&(sa * ub))
        .then(ub.cmp(&ua))
        .then_with(|| a.procedure.id.cmp(&b.procedure.id))
}

/// Most uses first, then smaller id.
fn by_frequency(a: &StoredProcedure, b: &StoredProcedure) -> Ordering {
    uses(b)
        .cmp(&uses(a))
        .then_with(|| a.procedure.id.cmp(&b.procedure.id))
}

fn uses(p: &StoredProcedure) -> u128 {
    u128::from(p.stats.successes) + u128::from(p.stats.failures)
}

impl GenericProceduralStore {
    /// The records of the index entries in `entries` that still belong to `category`, in
    /// order. An entry whose record was deleted or moved meanwhile is skipped.
    async fn records_of(
        &self,
        category: &str,
        entries: &[(Key, Bytes)],
    ) -> Result<Vec<StoredProcedure>> {
        let keys = entries
            .iter()
            .map(|(key, _)| record_key(&last_id(key)?))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for bytes in self.backend.get_batch(&keys).await?.into_iter().flatten() {
            let record: StoredProcedure = decode_record(&bytes)?;
            if record.procedure.category == category {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// One scan page of up to `size` procedures (of `category`, or all) after `after`, and
    /// the key to continue after.
    async fn page_of(
        &self,
        category: Option<&str>,
        after: Option<&Key>,
        size: usize,
    ) -> Result<(Vec<StoredProcedure>, Option<Key>)> {
        match category {
            Some(category) => {
                let prefix = ProceduralPrefix::Category(category).text();
                let page = self.backend.scan(&prefix, after, size).await?;
                let records = self.records_of(category, &page.entries).await?;
                Ok((records, page.next_after))
            }
            None => {
                let prefix = ProceduralPrefix::Records.text();
                let page = self.backend.scan(&prefix, after, size).await?;
                let records = page
                    .entries
                    .iter()
                    .map(|(_, bytes)| decode_record(bytes))
                    .collect::<Result<Vec<_>>>()?;
                Ok((records, page.next_after))
            }
        }
    }

    /// The best `limit` procedures passing `keep` under `order`, keeping at most one scan
    /// page more than `limit` in memory.
    async fn top(
        &self,
        category: Option<&str>,
        limit: usize,
        keep: impl Fn(&StoredProcedure) -> bool + Send + Sync,
        order: fn(&StoredProcedure, &StoredProcedure) -> Ordering,
    ) -> Result<Vec<StoredProcedure>> {
        check_limit(limit)?;
        if let Some(category) = category {
            check_id("procedure category", category)?;
        }
        let mut best: Vec<StoredProcedure> = Vec::new();
        let mut after: Option<Key> = None;
        loop {
            let (records, next) = self.page_of(category, after.as_ref(), SCAN_PAGE).await?;
            best.extend(records.into_iter().filter(|p| keep(p)));
            best.sort_by(order);
            best.truncate(limit);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(best),
            }
        }
    }
}

#[async_trait]
impl ProceduralStore for GenericProceduralStore {
    async fn upsert_procedure(&self, procedure: Procedure) -> Result<StoredProcedure> {
        check_procedure(&procedure)?;
        let key = record_key(&procedure.id)?;
        for _ in 0..MAX_ATTEMPTS {
            let stored = self.backend.get(&key).await?;
            let previous: Option<StoredProcedure> =
                stored.as_deref().map(decode_record).transpose()?;
            let now = OffsetDateTime::now_utc();
            let record = StoredProcedure {
                procedure: procedure.clone(),
                stats: previous
                    .as_ref()
                    .map(|p| p.stats.clone())
                    .unwrap_or_default(),
                created_at: previous.as_ref().map_or(now, |p| p.created_at),
                updated_at: now,
            };
            let mut batch = WriteBatch::new()
                .check(key.clone(), stored)
                .put(key.clone(), encode_record(&record)?);
            if let Some(old) = previous.filter(|p| p.procedure.category != procedure.category) {
                batch = batch.delete(index_key(&old.procedure.category, &procedure.id)?);
            }
            batch = batch.put(index_key(&procedure.category, &procedure.id)?, Bytes::new());
            match self.backend.write_batch(batch).await {
                Ok(()) => return Ok(record),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_busy(&procedure.id))
    }

    async fn get(&self, id: &str) -> Result<Option<StoredProcedure>> {
        check_id("procedure id", id)?;
        let stored = self.backend.get(&record_key(id)?).await?;
        stored.as_deref().map(decode_record).transpose()
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        check_id("procedure id", id)?;
        let key = record_key(id)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(stored) = self.backend.get(&key).await? else {
                return Ok(false);
            };
            let mut batch = WriteBatch::new()
                .check(key.clone(), Some(stored.clone()))
                .delete(key.clone());
            // An undecodable record is removed anyway; its index entry, if any, is then
            // skipped by listings because the record is gone.
            if let Ok(record) = decode_record::<StoredProcedure>(&stored) {
                batch = batch.delete(index_key(&record.procedure.category, id)?);
            }
            match self.backend.write_batch(batch).await {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_busy(id))
    }

    async fn list_by_category(
        &self,
        category: &str,
        page: PageRequest,
    ) -> Result<Page<StoredProcedure>> {
        page.validate()?;
        check_id("procedure category", category)?;
        let mut after = page
            .after
            .as_deref()
            .map(|id| index_key(category, id))
            .transpose()?;
        let scan_size = (page.limit + 1).min(SCAN_PAGE);
        let mut items: Vec<StoredProcedure> = Vec::new();
        loop {
            let (records, next) = self
                .page_of(Some(category), after.as_ref(), scan_size)
                .await?;
            for record in records {
                if items.len() == page.limit {
                    let next_after = items.last().map(|p| p.procedure.id.clone());
                    return Ok(Page { items, next_after });
                }
                items.push(record);
            }
            match next {
                Some(next) => after = Some(next),
                None => {
                    return Ok(Page {
                        items,
                        next_after: None,
                    });
                }
            }
        }
    }

    async fn record_outcome(&self, id: &str, success: bool) -> Result<OutcomeStats> {
        check_id("procedure id", id)?;
        let key = record_key(id)?;
        for _ in 0..MAX_ATTEMPTS {
            let stored = self.backend.get(&key).await?.ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "procedure not found").with_context("id", id)
            })?;
            let mut record: StoredProcedure = decode_record(&stored)?;
            record.stats = bump(&record.stats, success, OffsetDateTime::now_utc())?;
            let updated = Bytes::from(encode_record(&record)?);
            match self
                .backend
                .compare_and_swap(&key, Some(stored), Some(updated))
                .await
            {
                Ok(()) => return Ok(record.stats),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(too_busy(id))
    }

    async fn top_by_success_rate(
        &self,
        category: Option<&str>,
        limit: usize,
        min_uses: u64,
    ) -> Result<Vec<StoredProcedure>> {
        let min_uses = u128::from(min_uses.max(1));
        self.top(category, limit, |p| uses(p) >= min_uses, by_success_rate)
            .await
    }

    async fn top_by_frequency(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredProcedure>> {
        self.top(category, limit, |p| uses(p) >= 1, by_frequency)
            .await
    }
}

/// The portable record of a procedure is its [`StoredProcedure`] (definition, counters and
/// times), in record-key order. An import replaces the procedure of the same id, counters
/// included, moving its category index entry when its category changed.
#[async_trait]
impl PortableStore for GenericProceduralStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let prefix = ProceduralPrefix::Records.text();
        export_records::<StoredProcedure>(&*self.backend, &prefix, after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut procedures = BTreeMap::new();
        for record in records {
            let (procedure, _): (StoredProcedure, _) = decode_portable(record)?;
            check_stored_procedure(&procedure)?;
            procedures.insert(record_key(&procedure.procedure.id)?, procedure);
        }
        if procedures.is_empty() {
            return Ok(());
        }
        let keys = procedures.keys().cloned().collect::<Vec<_>>();
        let existing = self.backend.get_batch(&keys).await?;
        let mut batch = WriteBatch::new();
        for ((key, record), old) in procedures.into_iter().zip(existing) {
            let id = &record.procedure.id;
            if let Some(old) = old {
                let old: StoredProcedure =
                    decode_record(&old).map_err(|e| e.with_context("key", &key))?;
                if old.procedure.category != record.procedure.category {
                    batch = batch.delete(index_key(&old.procedure.category, id)?);
                }
            }
            batch = batch
                .put(index_key(&record.procedure.category, id)?, Bytes::new())
                .put(key, encode_record(&record)?);
        }
        self.backend.write_batch(batch).await
    }
}
