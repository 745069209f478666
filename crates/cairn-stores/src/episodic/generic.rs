//! [`EpisodicStore`] over any [`StorageBackend`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{Bytes, Key, Result, StorageBackend, WriteBatch, check_scan_limit};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::keys::EpisodicKey;
use super::{EpisodicSession, EpisodicStore, Role, Turn, TurnPage, TurnRecord, check_turn};
use crate::codec::{decode_record, encode_record, last_u64};
use crate::kvops::{
    Guard, RangeScan, check_id, check_range, commit, delete_guarded, retry, utc_or_now,
};
use crate::portable::{ExportPage, PortableStore, decode_portable, export_records};

/// The per-session counter appends compare-and-swap on.
#[derive(Debug, Serialize, Deserialize)]
struct SessionHead {
    session_id: String,
    last_seq: u64,
}

/// The episodic store implemented once over the key-value contract (layout in
/// [`keys`](super::keys)).
#[derive(Debug, Clone)]
pub struct GenericEpisodicStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericEpisodicStore {
    /// A store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericEpisodicStore { backend }
    }

    async fn head(&self, session: &str) -> Result<(Key, Option<Bytes>, u64)> {
        let key = EpisodicKey::Head { session }.key()?;
        let value = self.backend.get(&key).await?;
        let last = match &value {
            Some(bytes) => decode_record::<SessionHead>(bytes)?.last_seq,
            None => 0,
        };
        Ok((key, value, last))
    }

    async fn try_append(
        &self,
        session: &str,
        turn: &Turn,
        at: OffsetDateTime,
    ) -> Result<Option<TurnRecord>> {
        let (head_key, current, last) = self.head(session).await?;
        let seq = last + 1;
        let record = TurnRecord {
            session_id: session.to_owned(),
            seq,
            role: turn.role,
            content: turn.content.clone(),
            metadata: turn.metadata.clone(),
            at,
        };
        let head = SessionHead {
            session_id: session.to_owned(),
            last_seq: seq,
        };
        let batch = WriteBatch::new()
            .check(head_key.clone(), current)
            .put(head_key, encode_record(&head)?);
        let batch = put_turn(batch, &record)?;
        Ok(commit(&*self.backend, batch).await?.then_some(record))
    }

    /// Reads the turns named by the `seq` at the end of each index key, skipping turns
    /// deleted since the index was read.
    async fn turns_at(&self, session: &str, index: &[(Key, Bytes)]) -> Result<Vec<TurnRecord>> {
        let keys = index
            .iter()
            .map(|(k, _)| {
                EpisodicKey::Turn {
                    session,
                    seq: last_u64(k)?,
                }
                .key()
            })
            .collect::<Result<Vec<_>>>()?;
        decode_all(self.backend.get_batch(&keys).await?.iter().flatten())
    }

    async fn try_delete(&self, session: &str) -> Result<Option<u64>> {
        let (head_key, current, _) = self.head(session).await?;
        let Some(current) = current else {
            return Ok(Some(0));
        };
        let backend = &*self.backend;
        let turns = RangeScan::new(EpisodicKey::turns_prefix(session))
            .collect_keys(backend)
            .await?;
        let count = turns.len() as u64;
        let mut keys = turns;
        keys.extend(
            RangeScan::new(EpisodicKey::times_prefix(session))
                .collect_keys(backend)
                .await?,
        );
        for role in Role::ALL {
            keys.extend(
                RangeScan::new(EpisodicKey::role_prefix(session, role))
                    .collect_keys(backend)
                    .await?,
            );
        }
        let deleted = delete_guarded(backend, (head_key, current), keys, Guard::Delete).await?;
        Ok(deleted.then_some(count))
    }
}

/// Adds the puts of a turn and its index entries.
fn put_turn(batch: WriteBatch, turn: &TurnRecord) -> Result<WriteBatch> {
    let (session, seq) = (turn.session_id.as_str(), turn.seq);
    Ok(batch
        .put(
            EpisodicKey::Turn { session, seq }.key()?,
            encode_record(turn)?,
        )
        .put(
            EpisodicKey::ByTime {
                session,
                at: turn.at,
                seq,
            }
            .key()?,
            Bytes::new(),
        )
        .put(
            EpisodicKey::ByRole {
                session,
                role: turn.role,
                seq,
            }
            .key()?,
            Bytes::new(),
        ))
}

/// Adds the deletes of a turn's index entries (the record itself is overwritten).
fn delete_turn_index(batch: WriteBatch, turn: &TurnRecord) -> Result<WriteBatch> {
    let (session, seq) = (turn.session_id.as_str(), turn.seq);
    Ok(batch
        .delete(
            EpisodicKey::ByTime {
                session,
                at: turn.at,
                seq,
            }
            .key()?,
        )
        .delete(
            EpisodicKey::ByRole {
                session,
                role: turn.role,
                seq,
            }
            .key()?,
        ))
}

fn decode_all<'a>(values: impl Iterator<Item = &'a Bytes>) -> Result<Vec<TurnRecord>> {
    values.map(|v| decode_record(v)).collect()
}

#[async_trait]
impl EpisodicStore for GenericEpisodicStore {
    async fn append(&self, session_id: &str, turn: Turn) -> Result<TurnRecord> {
        check_id("session id", session_id)?;
        let at = utc_or_now(turn.at);
        retry("episodic append", || self.try_append(session_id, &turn, at)).await
    }

    async fn read(&self, session_id: &str, page: TurnPage) -> Result<Vec<TurnRecord>> {
        check_id("session id", session_id)?;
        check_scan_limit(page.limit)?;
        let after = page
            .after_seq
            .map(|seq| {
                EpisodicKey::Turn {
                    session: session_id,
                    seq,
                }
                .key()
            })
            .transpose()?;
        let scanned = self
            .backend
            .scan(
                &EpisodicKey::turns_prefix(session_id),
                after.as_ref(),
                page.limit,
            )
            .await?;
        decode_all(scanned.entries.iter().map(|(_, v)| v))
    }

    async fn read_range(
        &self,
        session_id: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<TurnRecord>> {
        check_id("session id", session_id)?;
        check_scan_limit(limit)?;
        check_range(Some(from), Some(to))?;
        let index = RangeScan::new(EpisodicKey::times_prefix(session_id))
            .after(Some(EpisodicKey::time_bound(session_id, from)?))
            .before(Some(EpisodicKey::time_bound(session_id, to)?))
            .next_page(&*self.backend, limit)
            .await?;
        self.turns_at(session_id, &index).await
    }

    async fn by_role(
        &self,
        session_id: &str,
        role: Role,
        page: TurnPage,
    ) -> Result<Vec<TurnRecord>> {
        check_id("session id", session_id)?;
        check_scan_limit(page.limit)?;
        let session = session_id;
        let after = page
            .after_seq
            .map(|seq| EpisodicKey::ByRole { session, role, seq }.key())
            .transpose()?;
        let index = self
            .backend
            .scan(
                &EpisodicKey::role_prefix(session, role),
                after.as_ref(),
                page.limit,
            )
            .await?;
        self.turns_at(session, &index.entries).await
    }

    async fn count(&self, session_id: &str) -> Result<u64> {
        check_id("session id", session_id)?;
        Ok(self.head(session_id).await?.2)
    }

    async fn delete_session(&self, session_id: &str) -> Result<u64> {
        check_id("session id", session_id)?;
        retry("episodic delete_session", || self.try_delete(session_id)).await
    }

    async fn list_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EpisodicSession>> {
        if let Some(after) = after {
            check_id("session id", after)?;
        }
        check_scan_limit(limit)?;
        let after = after
            .map(|session| EpisodicKey::Head { session }.key())
            .transpose()?;
        let page = self
            .backend
            .scan(&EpisodicKey::heads_prefix(), after.as_ref(), limit)
            .await?;
        page.entries
            .iter()
            .map(|(_, v)| {
                let head: SessionHead = decode_record(v)?;
                Ok(EpisodicSession {
                    session_id: head.session_id,
                    turns: head.last_seq,
                })
            })
            .collect()
    }
}

/// The portable record of a turn is its [`TurnRecord`], in record-key order (session, then
/// `seq`). An import raises each session's counter to the largest `seq` imported for it, so
/// later appends continue the numbering and a repeated import leaves it as it is.
#[async_trait]
impl PortableStore for GenericEpisodicStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        export_records::<TurnRecord>(
            &*self.backend,
            &EpisodicKey::all_turns_prefix(),
            after,
            limit,
        )
        .await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut turns = BTreeMap::new();
        let mut last_seqs = BTreeMap::<String, u64>::new();
        for record in records {
            let (turn, _): (TurnRecord, _) = decode_portable(record)?;
            check_turn(&turn)?;
            let last = last_seqs.entry(turn.session_id.clone()).or_default();
            *last = (*last).max(turn.seq);
            turns.insert((turn.session_id.clone(), turn.seq), turn);
        }
        let turn_keys = turns
            .values()
            .map(|t| {
                EpisodicKey::Turn {
                    session: &t.session_id,
                    seq: t.seq,
                }
                .key()
            })
            .collect::<Result<Vec<_>>>()?;
        let head_keys = last_seqs
            .keys()
            .map(|session| EpisodicKey::Head { session }.key())
            .collect::<Result<Vec<_>>>()?;
        let existing = self.backend.get_batch(&turn_keys).await?;
        let heads = self.backend.get_batch(&head_keys).await?;
        let mut batch = WriteBatch::new();
        for ((key, turn), old) in turn_keys.iter().zip(turns.values()).zip(existing) {
            if let Some(old) = old {
                let old: TurnRecord =
                    decode_record(&old).map_err(|e| e.with_context("key", key))?;
                batch = delete_turn_index(batch, &old)?;
            }
            batch = put_turn(batch, turn)?;
        }
        for ((key, (session, last)), head) in head_keys.into_iter().zip(last_seqs).zip(heads) {
            let current = match head {
                Some(bytes) => {
                    decode_record::<SessionHead>(&bytes)
                        .map_err(|e| e.with_context("key", &key))?
                        .last_seq
                }
                None => 0,
            };
            if last > current {
                let head = SessionHead {
                    session_id: session,
                    last_seq: last,
                };
                batch = batch.put(key, encode_record(&head)?);
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.backend.write_batch(batch).await
    }
}
