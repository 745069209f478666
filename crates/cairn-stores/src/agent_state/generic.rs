//! [`AgentStateStore`] over any [`StorageBackend`].

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Key, Result, StorageBackend, WriteBatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::keys::AgentStateKey;
use super::{AgentSnapshot, AgentStateStore, SnapshotInfo};
use crate::codec::{decode_record, encode_record};
use crate::kvops::{Guard, RangeScan, SCAN_PAGE, check_id, commit, delete_guarded, now, retry};

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
            saved_at: now(),
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

/// SHA-256 of `bytes` as 64 lowercase hex digits.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Checks a stored snapshot against its metadata and decodes it.
///
/// # Errors
/// `Corruption` when the metadata names another snapshot, the payload's size or checksum
/// differs, or the payload is not JSON.
fn verify(agent: &str, version: u64, info: &[u8], data: Option<&Bytes>) -> Result<AgentSnapshot> {
    let corrupt = |what: &'static str| {
        Error::corruption(what)
            .with_context("agent", agent)
            .with_context("version", version)
    };
    let info: SnapshotInfo = decode_record(info)?;
    if info.agent_id != agent || info.version != version {
        return Err(corrupt("snapshot metadata names another snapshot"));
    }
    let data = data.ok_or_else(|| corrupt("snapshot payload is missing"))?;
    if data.len() as u64 != info.size || sha256_hex(data) != info.checksum {
        return Err(corrupt("snapshot payload fails its SHA-256 checksum"));
    }
    let state = serde_json::from_slice(data)
        .map_err(|e| corrupt("snapshot payload is not JSON").with_source(e))?;
    Ok(AgentSnapshot { info, state })
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
        let payload = Bytes::from(
            serde_json::to_vec(state)
                .map_err(|e| Error::invalid_input("state cannot be encoded").with_source(e))?,
        );
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
        if keep_last == 0 {
            return Err(Error::invalid_input(
                "prune must keep at least one version; use delete_agent to remove all",
            ));
        }
        retry("agent state prune", || self.try_prune(agent_id, keep_last)).await
    }
}
