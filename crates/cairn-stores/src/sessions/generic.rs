//! [`SessionStore`] over any [`StorageBackend`].

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, Key, Result, StorageBackend, WriteBatch, check_scan_limit,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::keys::{INDEX_VALUE, SessionKey};
use super::{Session, SessionStore, check_session, check_ttl, expiry};
use crate::artifacts::check_hash;
use crate::codec::{check_id, decode_record, encode_record, unescape_id};
use crate::paging::Page;
use crate::portable::{ExportPage, PortableStore, decode_portable, export_records};
use crate::retry::{retry, settled};

/// Index entries read per page by [`SessionStore::purge_expired`].
const PURGE_PAGE: usize = 1_000;

/// The generic session store: one record per session plus an expiry index entry, written
/// together in one batch.
///
/// Expiry is checked on every read against the current time, so an expired session is
/// invisible before any purge. [`SessionStore::purge_expired`] walks the expiry index from the
/// oldest entry and stops at the first unexpired one.
#[derive(Debug, Clone)]
pub struct GenericSessionStore {
    backend: Arc<dyn StorageBackend>,
}

/// A record as read, with the exact bytes for use as a write precondition.
#[derive(Debug)]
struct Loaded {
    key: Key,
    bytes: Bytes,
    session: Session,
}

impl Loaded {
    fn is_live(&self, now: OffsetDateTime) -> bool {
        self.session.expires_at > now
    }

    fn index_key(&self) -> Result<Key> {
        index_key(&self.session)
    }

    /// A batch that applies only while the record is unchanged.
    fn guarded_batch(&self) -> WriteBatch {
        WriteBatch::new().check(self.key.clone(), Some(self.bytes.clone()))
    }
}

fn index_key(session: &Session) -> Result<Key> {
    SessionKey::Expiry {
        at: session.expires_at,
        id: &session.id,
    }
    .key()
}

fn not_found(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, "session does not exist or has expired").with_context("id", id)
}

impl GenericSessionStore {
    /// A session store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericSessionStore { backend }
    }

    /// Reads a record, expired or not.
    async fn load(&self, id: &str) -> Result<Option<Loaded>> {
        let key = SessionKey::Record { id }.key()?;
        let Some(bytes) = self.backend.get(&key).await? else {
            return Ok(None);
        };
        let session = decode_record(&bytes).map_err(|e| e.with_context("key", &key))?;
        Ok(Some(Loaded {
            key,
            bytes,
            session,
        }))
    }

    async fn try_create(&self, session: &Session) -> Result<Option<Session>> {
        let key = SessionKey::Record { id: &session.id }.key()?;
        let batch = match self.load(&session.id).await? {
            Some(old) if old.is_live(OffsetDateTime::now_utc()) => {
                return Err(Error::conflict("an unexpired session has this id")
                    .with_context("id", &session.id));
            }
            Some(expired) => expired.guarded_batch().delete(expired.index_key()?),
            None => WriteBatch::new().check(key.clone(), None),
        };
        let batch = batch
            .put(key, encode_record(session)?)
            .put(index_key(session)?, INDEX_VALUE);
        Ok(settled(self.backend.write_batch(batch).await)?.map(|()| session.clone()))
    }

    /// Applies `change` to an unexpired session and stores the result together with its
    /// index entry; `change` returns whether it changed anything.
    async fn modify<F>(&self, id: &str, change: F) -> Result<(Session, bool)>
    where
        F: Fn(&mut Session, OffsetDateTime) -> Result<bool> + Send + Sync,
    {
        check_id("session id", id)?;
        let change = &change;
        retry("session update", || async move {
            let now = OffsetDateTime::now_utc();
            let loaded = match self.load(id).await? {
                Some(loaded) if loaded.is_live(now) => loaded,
                _ => return Err(not_found(id)),
            };
            let mut session = loaded.session.clone();
            if !change(&mut session, now)? {
                return Ok(Some((session, false)));
            }
            let mut batch = loaded
                .guarded_batch()
                .put(loaded.key.clone(), encode_record(&session)?);
            if session.expires_at != loaded.session.expires_at {
                batch = batch
                    .delete(loaded.index_key()?)
                    .put(index_key(&session)?, INDEX_VALUE);
            }
            let written = settled(self.backend.write_batch(batch).await)?;
            Ok(written.map(|()| (session, true)))
        })
        .await
    }

    /// Removes the record behind one expired index entry; returns whether a session went.
    async fn try_purge_one(&self, index: &Key, now: OffsetDateTime) -> Result<Option<bool>> {
        let id = unescape_id(index.as_str().rsplit('/').next().unwrap_or_default())?;
        let Some(loaded) = self.load(&id).await? else {
            self.backend.delete(index).await?;
            return Ok(Some(false));
        };
        if loaded.index_key()? != *index {
            // Not this record's entry (only left by damage): drop it, keep the record.
            self.backend.delete(index).await?;
            return Ok(Some(false));
        }
        if loaded.is_live(now) {
            return Ok(Some(false));
        }
        let batch = loaded
            .guarded_batch()
            .delete(loaded.key.clone())
            .delete(index.clone());
        Ok(settled(self.backend.write_batch(batch).await)?.map(|()| true))
    }

    /// Collects up to `limit` unexpired sessions after `after`, scanning as far as needed.
    async fn collect_live(&self, mut after: Option<Key>, limit: usize) -> Result<Page<Session>> {
        let now = OffsetDateTime::now_utc();
        let prefix = SessionKey::records_prefix();
        let mut items: Vec<Session> = Vec::new();
        loop {
            let page = self.backend.scan(&prefix, after.as_ref(), limit).await?;
            let mut rest = page.entries.len();
            for (key, bytes) in page.entries {
                rest -= 1;
                let session: Session =
                    decode_record(&bytes).map_err(|e| e.with_context("key", &key))?;
                after = Some(key);
                if session.expires_at > now {
                    items.push(session);
                }
                if items.len() == limit {
                    let more = rest > 0 || page.next_after.is_some();
                    let next_after = more.then(|| session_id(&items)).flatten();
                    return Ok(Page { items, next_after });
                }
            }
            if page.next_after.is_none() {
                return Ok(Page {
                    items,
                    next_after: None,
                });
            }
        }
    }
}

fn session_id(items: &[Session]) -> Option<String> {
    items.last().map(|session| session.id.clone())
}

#[async_trait]
impl SessionStore for GenericSessionStore {
    async fn create(&self, id: Option<&str>, ttl: Duration, data: Value) -> Result<Session> {
        let id = match id {
            Some(id) => {
                check_id("session id", id)?;
                id.to_owned()
            }
            None => Uuid::now_v7().to_string(),
        };
        let now = OffsetDateTime::now_utc();
        let session = Session {
            id,
            created_at: now,
            expires_at: expiry(now, ttl)?,
            ttl,
            data,
            artifacts: Vec::new(),
        };
        retry("session create", || self.try_create(&session)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        check_id("session id", id)?;
        let now = OffsetDateTime::now_utc();
        Ok(self
            .load(id)
            .await?
            .filter(|loaded| loaded.is_live(now))
            .map(|loaded| loaded.session))
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        check_scan_limit(limit)?;
        let after = match after {
            Some(id) => {
                check_id("session id", id)?;
                Some(SessionKey::Record { id }.key()?)
            }
            None => None,
        };
        self.collect_live(after, limit).await
    }

    async fn extend(&self, id: &str, ttl: Duration) -> Result<Session> {
        check_ttl(ttl)?;
        self.modify(id, |session, now| {
            session.expires_at = expiry(now, ttl)?;
            Ok(true)
        })
        .await
        .map(|(session, _)| session)
    }

    async fn touch(&self, id: &str) -> Result<Session> {
        self.modify(id, |session, now| {
            session.expires_at = expiry(now, session.ttl)?;
            Ok(true)
        })
        .await
        .map(|(session, _)| session)
    }

    async fn update_data(&self, id: &str, data: Value) -> Result<Session> {
        self.modify(id, |session, _| {
            session.data = data.clone();
            Ok(true)
        })
        .await
        .map(|(session, _)| session)
    }

    async fn link_artifact(&self, id: &str, hash: &str) -> Result<Session> {
        let hash = check_hash(hash)?;
        self.modify(id, |session, _| {
            let linked = session.artifacts.contains(&hash);
            if !linked {
                session.artifacts.push(hash.clone());
            }
            Ok(!linked)
        })
        .await
        .map(|(session, _)| session)
    }

    async fn unlink_artifact(&self, id: &str, hash: &str) -> Result<bool> {
        let hash = check_hash(hash)?;
        self.modify(id, |session, _| {
            let before = session.artifacts.len();
            session.artifacts.retain(|linked| *linked != hash);
            Ok(session.artifacts.len() != before)
        })
        .await
        .map(|(_, unlinked)| unlinked)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        check_id("session id", id)?;
        retry("session delete", || async move {
            let Some(loaded) = self.load(id).await? else {
                return Ok(Some(false));
            };
            let live = loaded.is_live(OffsetDateTime::now_utc());
            let batch = loaded
                .guarded_batch()
                .delete(loaded.key.clone())
                .delete(loaded.index_key()?);
            Ok(settled(self.backend.write_batch(batch).await)?.map(|()| live))
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let prefix = SessionKey::expiry_prefix();
        let bound = SessionKey::expired_bound(now);
        let mut purged = 0u64;
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .backend
                .scan(&prefix, after.as_ref(), PURGE_PAGE)
                .await?;
            for (index, _) in page.entries {
                if index.as_str() >= bound.as_str() {
                    return Ok(purged);
                }
                if retry("session purge", || self.try_purge_one(&index, now)).await? {
                    purged += 1;
                }
                after = Some(index);
            }
            if page.next_after.is_none() {
                return Ok(purged);
            }
        }
    }
}

/// The portable record of a session is the [`Session`] itself, expired ones included, in
/// record-key order.
#[async_trait]
impl PortableStore for GenericSessionStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        export_records::<Session>(&*self.backend, &SessionKey::records_prefix(), after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut sessions = std::collections::BTreeMap::new();
        for record in records {
            let (session, _): (Session, _) = decode_portable(record)?;
            check_session(&session)?;
            sessions.insert(session.id.clone(), session);
        }
        let keys = sessions
            .keys()
            .map(|id| SessionKey::Record { id }.key())
            .collect::<Result<Vec<_>>>()?;
        let existing = self.backend.get_batch(&keys).await?;
        let mut batch = WriteBatch::new();
        for ((key, session), old) in keys.into_iter().zip(sessions.into_values()).zip(existing) {
            if let Some(old) = old {
                let old: Session = decode_record(&old).map_err(|e| e.with_context("key", &key))?;
                batch = batch.delete(index_key(&old)?);
            }
            batch = batch
                .put(index_key(&session)?, INDEX_VALUE)
                .put(key, encode_record(&session)?);
        }
        self.backend.write_batch(batch).await
    }
}
