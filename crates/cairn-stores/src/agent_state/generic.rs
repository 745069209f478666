//! [`AgentStateStore`] over any [`StorageBackend`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Key, Result, StorageBackend, WriteBatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keys::AgentStateKey;
use super::{
    AgentSnapshot, AgentStateStore, SnapshotInfo, check_keep_last, check_snapshot, encode_state,
    saved_now, sha256_hex, verify_snapshot,
};
use crate::codec::{decode_record, encode_record};
use crate::kvops::{Guard, RangeScan, SCAN_PAGE, check_id, commit, delete_guarded, retry};
use crate::portable::{ExportPage, PortableStore, decode_portable, encode_portable, scan_export};

/// The per-agent pointer to the latest version; saves compare-and-swap on it.
#[derive(Debug, Serialize, Deserialize)]
struct AgentHead {
    agent_id: String,
    latest: u64,
}

/// The agent-state store implemented once over the key-value contract (layout in
/// [`keys`](super::keys)).
#[derive(Debug, Clone)]
pub struct GenericAgentStateStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericAgentStateStore {
    /// A store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericAgentStateStore { backend }
    }

    async fn head(&self, agent: &str) -> Result<(Key, Option<Bytes>, u64)> {
        let key = AgentStateKey::Head { agent }.key()?;
        let value = self.backend.get(&key).await?;
        let latest = match &value {
            Some(bytes) => decode_record::<AgentHead>(bytes)?.latest,
            None => 0,
        };
        Ok((key, value, latest))
    }

    async fn try_save(
        &self,
        agent: &str,
        payload: &Bytes,
        expected: Option<u64>,
    ) -> Result<Option<SnapshotInfo>> {
        let (head_key, current, latest) = self.head(agent).await?;
        if let Some(expected) = expected.filter(|v| *v != latest) {
            return Err(
                Error::conflict("agent state changed since the expected version")
                    .with_context("agent", agent)
                    .with_context("expected", expected)
                    .with_context("latest", latest),
            );
        }
        let version = latest + 1;
        let info = SnapshotInfo {
            agent_id: agent.to_owned(),
            version,
            checksum: sha256_hex(payload),
            size: payload.len() as u64,
            saved_at: saved_now(),
        };
        let head = AgentHead {
            agent_id: agent.to_owned(),
            latest: version,
        };
        let batch = WriteBatch::new()
            .check(head_key.clone(), current)
            .put(head_key, encode_record(&head)?)
            .put(
                AgentStateKey::Info { agent, version }.key()?,
                encode_record(&info)?,
            )
            .put(
                AgentStateKey::Data { agent, version }.key()?,
                payload.clone(),
            );
        Ok(commit(&*self.backend, batch).await?.then_some(info))
    }

    async fn try_delete(&self, agent: &str) -> Result<Option<u64>> {
        let (head_key, current, _) = self.head(agent).await?;
        let Some(current) = current else {
            return Ok(Some(0));
        };
        let backend = &*self.backend;
        let mut keys = RangeScan::new(AgentStateKey::infos_prefix(agent))
            .collect_keys(backend)
            .await?;
        let count = keys.len() as u64;
        keys.extend(
            RangeScan::new(AgentStateKey::data_prefix(agent))
                .collect_keys(backend)
                .await?,
        );
        let deleted = delete_guarded(backend, (head_key, current), keys, Guard::Delete).await?;
        Ok(deleted.then_some(count))
    }

    /// Deletes the versions older than the newest `keep_last`, guarded by the head so a
    /// concurrent delete-and-recreate of the agent is never pruned by stale numbers.
    async fn try_prune(&self, agent: &str, keep_last: u64) -> Result<Option<u64>> {
        let (head_key, current, latest) = self.head(agent).await?;
        let Some(current) = current else {
            return Ok(Some(0));
        };
        let Some(version) = latest.checked_sub(keep_last).map(|cutoff| cutoff + 1) else {
            return Ok(Some(0));
        };
        let backend = &*self.backend;
        let mut keys = RangeScan::new(AgentStateKey::infos_prefix(agent))
            .before(Some(AgentStateKey::Info { agent, version }.key()?))
            .collect_keys(backend)
            .await?;
        let count = keys.len() as u64;
        keys.extend(
            RangeScan::new(AgentStateKey::data_prefix(agent))
                .before(Some(AgentStateKey::Data { agent, version }.key()?))
                .collect_keys(backend)
                .await?,
        );
        let pruned = delete_guarded(backend, (head_key, current), keys, Guard::Keep).await?;
        Ok(pruned.then_some(count))
    }
}

/// Checks that a stored snapshot's metadata names it, then verifies and decodes its payload.
///
/// # Errors
/// `Corruption` when the metadata names another snapshot or [`verify_snapshot`] fails.
fn verify(agent: &str, version: u64, info: &[u8], data: Option<&Bytes>) -> Result<AgentSnapshot> {
    let info: SnapshotInfo = decode_record(info)?;
    if info.agent_id != agent || info.version != version {
        return Err(
            Error::corruption("snapshot metadata names another snapshot")
                .with_context("agent", agent)
                .with_context("version", version),
        );
    }
    verify_snapshot(info, data.map(|d| &d[..]))
}

#[async_trait]
impl AgentStateStore for GenericAgentStateStore {
    async fn save(
        &self,
        agent_id: &str,
        state: &Value,
        expected_version: Option<u64>,
    ) -> Result<SnapshotInfo> {
        check_id("agent id", agent_id)?;
        let payload = Bytes::from(encode_state(state)?);
        retry("agent state save", || {
            self.try_save(agent_id, &payload, expected_version)
        })
        .await
    }

    async fn load_latest(&self, agent_id: &str) -> Result<Option<AgentSnapshot>> {
        check_id("agent id", agent_id)?;
        match self.head(agent_id).await?.1 {
            Some(head) => {
                let latest = decode_record::<AgentHead>(&head)?.latest;
                self.load_version(agent_id, latest).await
            }
            None => Ok(None),
        }
    }

    async fn load_version(&self, agent_id: &str, version: u64) -> Result<Option<AgentSnapshot>> {
        check_id("agent id", agent_id)?;
        let agent = agent_id;
        let keys = [
            AgentStateKey::Info { agent, version }.key()?,
            AgentStateKey::Data { agent, version }.key()?,
        ];
        let mut values = self.backend.get_batch(&keys).await?.into_iter();
        let (info, data) = (values.next().flatten(), values.next().flatten());
        info.map(|info| verify(agent, version, &info, data.as_ref()))
            .transpose()
    }

    async fn list_versions(&self, agent_id: &str) -> Result<Vec<SnapshotInfo>> {
        check_id("agent id", agent_id)?;
        let mut scan = RangeScan::new(AgentStateKey::infos_prefix(agent_id));
        let mut out = Vec::new();
        loop {
            let page = scan.next_page(&*self.backend, SCAN_PAGE).await?;
            if page.is_empty() {
                return Ok(out);
            }
            for (_, value) in page {
                out.push(decode_record(&value)?);
            }
        }
    }

    async fn delete_agent(&self, agent_id: &str) -> Result<u64> {
        check_id("agent id", agent_id)?;
        retry("agent state delete", || self.try_delete(agent_id)).await
    }

    async fn prune(&self, agent_id: &str, keep_last: u64) -> Result<u64> {
        check_id("agent id", agent_id)?;
        check_keep_last(keep_last)?;
        retry("agent state prune", || self.try_prune(agent_id, keep_last)).await
    }
}

/// The portable record of a snapshot is its [`SnapshotInfo`] with the payload bytes as the
/// blob, in record-key order (agent, then version). An import raises each agent's latest
/// pointer to the largest version imported for it, so later saves continue the numbering and
/// a repeated import leaves it as it is.
#[async_trait]
impl PortableStore for GenericAgentStateStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let (entries, next) = scan_export(
            &*self.backend,
            &AgentStateKey::all_infos_prefix(),
            after,
            limit,
        )
        .await?;
        let infos = entries
            .iter()
            .map(|(key, bytes)| {
                decode_record::<SnapshotInfo>(bytes).map_err(|e| e.with_context("key", key))
            })
            .collect::<Result<Vec<_>>>()?;
        let data_keys = infos
            .iter()
            .map(|info| {
                AgentStateKey::Data {
                    agent: &info.agent_id,
                    version: info.version,
                }
                .key()
            })
            .collect::<Result<Vec<_>>>()?;
        let payloads = self.backend.get_batch(&data_keys).await?;
        let records = infos
            .iter()
            .zip(payloads)
            .map(|(info, payload)| {
                let payload = payload.ok_or_else(|| {
                    Error::corruption("snapshot payload is missing")
                        .with_context("agent", &info.agent_id)
                        .with_context("version", info.version)
                })?;
                encode_portable(info, &payload)
            })
            .collect::<Result<_>>()?;
        Ok(ExportPage { records, next })
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut snapshots = BTreeMap::new();
        let mut latest = BTreeMap::<String, u64>::new();
        for record in records {
            let (info, payload): (SnapshotInfo, _) = decode_portable(record)?;
            check_snapshot(&info, payload)?;
            let newest = latest.entry(info.agent_id.clone()).or_default();
            *newest = (*newest).max(info.version);
            let payload = record.slice_ref(payload);
            snapshots.insert((info.agent_id.clone(), info.version), (info, payload));
        }
        let head_keys = latest
            .keys()
            .map(|agent| AgentStateKey::Head { agent }.key())
            .collect::<Result<Vec<_>>>()?;
        let heads = self.backend.get_batch(&head_keys).await?;
        let mut batch = WriteBatch::new();
        for (info, payload) in snapshots.into_values() {
            let (agent, version) = (info.agent_id.as_str(), info.version);
            batch = batch
                .put(AgentStateKey::Data { agent, version }.key()?, payload)
                .put(
                    AgentStateKey::Info { agent, version }.key()?,
                    encode_record(&info)?,
                );
        }
        for ((key, (agent_id, newest)), head) in head_keys.into_iter().zip(latest).zip(heads) {
            let current = match head {
                Some(bytes) => {
                    decode_record::<AgentHead>(&bytes)
                        .map_err(|e| e.with_context("key", &key))?
                        .latest
                }
                None => 0,
            };
            if newest > current {
                let head = AgentHead {
                    agent_id,
                    latest: newest,
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
