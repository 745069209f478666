//! [`PostgresAgentStateStore`]: [`AgentStateStore`] on the `agent_state_heads` and
//! `agent_state_snapshots` tables.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Result, StorageBackend};
use cairn_stores::agent_state::{
    AgentSnapshot, AgentStateStore, SnapshotInfo, check_keep_last, check_snapshot, encode_state,
    sha256_hex, verify_snapshot,
};
use cairn_stores::codec::check_id;
use cairn_stores::portable::{
    ExportPage, PortableStore, decode_cursor, decode_portable, encode_cursor, encode_portable,
    page_of,
};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{bigint, execute_pair, execute_two, export_fetch, query, stored_u64};
use crate::backend::PostgresBackend;
use crate::error;

/// An [`AgentStateStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it
/// was built on.
///
/// # Storage
/// `agent_state_heads` holds one row per agent with its latest version;
/// `agent_state_snapshots` one row per version with the payload (the compact JSON text, as
/// `bytea`), its size, its SHA-256 (computed by Cairn) and the save time (the server's
/// transaction time). Every load recomputes the SHA-256 and size of the payload and compares
/// them with the stored ones: a mismatch, a payload that is not JSON or a latest version
/// whose row is missing is `Corruption`.
///
/// # Concurrency
/// A save is one statement: the head is incremented (`INSERT ... ON CONFLICT DO UPDATE SET
/// latest = latest + 1`), or with an expected version `v` updated only `WHERE latest = v`
/// (with `Some(0)`: inserted only if absent), and the snapshot is inserted with the returned
/// version. The head's row lock serialises saves of one agent; of concurrent saves expecting
/// the same version one updates the head and the others, re-checking the condition on the
/// updated row, match nothing and report `Conflict` having written nothing.
///
/// # Pruning and deletion
/// A prune deletes the versions at or below the head's latest minus `keep_last` in one
/// statement, so the latest version is never pruned. Deleting an agent deletes its head
/// first (waiting for saves in flight), then its snapshots, in one transaction.
#[derive(Clone)]
pub struct PostgresAgentStateStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresAgentStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAgentStateStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Every statement of the agent-state store. `$1` is always the tenant id, `$2` the agent id.
mod sql {
    /// The end of every save: inserts the snapshot under the version the CTE `head`
    /// returned (none when `head` matched no row). `$3` checksum, `$4` size, `$5` payload.
    macro_rules! insert_snapshot {
        () => {
            "
INSERT INTO agent_state_snapshots (tenant_id, agent_id, version, checksum, size, payload)
SELECT $1, $2, head.latest, $3, $4, $5 FROM head
RETURNING version, saved_at"
        };
    }

    /// Saves whatever the latest version is.
    pub(super) const SAVE: &str = concat!(
        "\
WITH head AS (
    INSERT INTO agent_state_heads AS h (tenant_id, agent_id, latest) VALUES ($1, $2, 1)
    ON CONFLICT (tenant_id, agent_id) DO UPDATE SET latest = h.latest + 1
    RETURNING latest
)",
        insert_snapshot!()
    );

    /// Saves only if the agent has no version yet.
    pub(super) const SAVE_FIRST: &str = concat!(
        "\
WITH head AS (
    INSERT INTO agent_state_heads (tenant_id, agent_id, latest) VALUES ($1, $2, 1)
    ON CONFLICT (tenant_id, agent_id) DO NOTHING
    RETURNING latest
)",
        insert_snapshot!()
    );

    /// Saves only if the latest version is `$6`.
    pub(super) const SAVE_AFTER: &str = concat!(
        "\
WITH head AS (
    UPDATE agent_state_heads SET latest = latest + 1
    WHERE tenant_id = $1 AND agent_id = $2 AND latest = $6
    RETURNING latest
)",
        insert_snapshot!()
    );

    /// `$3` the version. Columns as [`info_from`](super::info_from) and
    /// [`snapshot_from`](super::snapshot_from) read them.
    pub(super) const LOAD_VERSION: &str = "\
SELECT version, checksum, size, saved_at, payload FROM agent_state_snapshots
WHERE tenant_id = $1 AND agent_id = $2 AND version = $3";

    /// The head's latest version and its snapshot (NULL columns when the row is missing).
    pub(super) const LOAD_LATEST: &str = "\
SELECT h.latest, s.checksum, s.size, s.saved_at, s.payload
FROM agent_state_heads h
LEFT JOIN agent_state_snapshots s
    ON s.tenant_id = h.tenant_id AND s.agent_id = h.agent_id AND s.version = h.latest
WHERE h.tenant_id = $1 AND h.agent_id = $2";

    pub(super) const LIST_VERSIONS: &str = "\
SELECT version, checksum, size, saved_at FROM agent_state_snapshots
WHERE tenant_id = $1 AND agent_id = $2 ORDER BY version";

    /// Runs first in its transaction: waits for saves in flight and stops new ones.
    pub(super) const DELETE_HEAD: &str =
        "DELETE FROM agent_state_heads WHERE tenant_id = $1 AND agent_id = $2";

    pub(super) const DELETE_SNAPSHOTS: &str =
        "DELETE FROM agent_state_snapshots WHERE tenant_id = $1 AND agent_id = $2";

    /// Every snapshot of every agent by agent id, then version: `$2`, `$3` the agent and
    /// version to read after (`''` and 0 from the start: ids are never empty), `$4` the most
    /// rows. The columns of `LOAD_VERSION`, then the agent id.
    pub(super) const EXPORT: &str = "\
SELECT version, checksum, size, saved_at, payload, agent_id FROM agent_state_snapshots
WHERE tenant_id = $1 AND (agent_id, version) > ($2, $3) ORDER BY agent_id, version LIMIT $4";

    /// Raises the latest version of the agents in `$2` to the largest version in `$3` for
    /// each (the arrays of [`IMPORT_SNAPSHOTS`]), creating missing heads; runs first, taking
    /// the heads' row locks as saves do.
    pub(super) const IMPORT_HEADS: &str = "\
INSERT INTO agent_state_heads AS h (tenant_id, agent_id, latest)
SELECT $1, s.agent_id, max(s.version) FROM unnest($2::text[], $3::int8[]) AS s(agent_id, version)
GROUP BY s.agent_id
ON CONFLICT (tenant_id, agent_id) DO UPDATE SET latest = GREATEST(h.latest, EXCLUDED.latest)";

    /// Writes whole snapshots, replacing those of the same agent and version: `$2` agent ids,
    /// `$3` versions, `$4` checksums, `$5` sizes, `$6` save times, `$7` payloads, all in the
    /// same order, each (agent, version) once.
    pub(super) const IMPORT_SNAPSHOTS: &str = "\
INSERT INTO agent_state_snapshots (tenant_id, agent_id, version, checksum, size, saved_at, payload)
SELECT $1, s.agent_id, s.version, s.checksum, s.size, s.saved_at, s.payload
FROM unnest($2::text[], $3::int8[], $4::text[], $5::int8[], $6::timestamptz[], $7::bytea[])
    AS s(agent_id, version, checksum, size, saved_at, payload)
ON CONFLICT (tenant_id, agent_id, version) DO UPDATE SET
    checksum = EXCLUDED.checksum, size = EXCLUDED.size, saved_at = EXCLUDED.saved_at,
    payload = EXCLUDED.payload";

    /// `$3` how many versions to keep.
    pub(super) const PRUNE: &str = "\
DELETE FROM agent_state_snapshots
WHERE tenant_id = $1 AND agent_id = $2 AND version <= (
    SELECT latest - $3 FROM agent_state_heads WHERE tenant_id = $1 AND agent_id = $2
)";
}

/// The metadata of a snapshot row (version, checksum, size, saved_at); `None` when the
/// snapshot's columns are NULL (the latest version's row is missing).
fn info_from(agent: &str, row: &Row, op: &'static str) -> Result<Option<SnapshotInfo>> {
    let map = |err| error::from_pg(op, err);
    let version = stored_u64(row.try_get(0).map_err(map)?, "version")?;
    let checksum: Option<String> = row.try_get(1).map_err(map)?;
    let size: Option<i64> = row.try_get(2).map_err(map)?;
    let saved_at = row.try_get(3).map_err(map)?;
    let (Some(checksum), Some(size), Some(saved_at)) = (checksum, size, saved_at) else {
        return Ok(None);
    };
    Ok(Some(SnapshotInfo {
        agent_id: agent.to_owned(),
        version,
        checksum,
        size: stored_u64(size, "size")?,
        saved_at,
    }))
}

/// A verified snapshot from a row of `LOAD_VERSION` or `LOAD_LATEST`.
///
/// # Errors
/// `Corruption` when the snapshot is missing or fails [`verify_snapshot`].
fn snapshot_from(agent: &str, row: &Row, op: &'static str) -> Result<AgentSnapshot> {
    let payload: Option<Vec<u8>> = row.try_get(4).map_err(|err| error::from_pg(op, err))?;
    match info_from(agent, row, op)? {
        Some(info) => verify_snapshot(info, payload.as_deref()),
        None => {
            Err(Error::corruption("the latest snapshot is missing").with_context("agent", agent))
        }
    }
}

impl PostgresAgentStateStore {
    /// An agent-state store on `backend`'s pool and tenant. The tables come from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresAgentStateStore {
        PostgresAgentStateStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Runs a load statement and verifies the snapshot it returns, if any.
    async fn load(
        &self,
        agent: &str,
        text: &str,
        params: &[&(dyn ToSql + Sync)],
        op: &'static str,
    ) -> Result<Option<AgentSnapshot>> {
        let rows = query(&self.backend, text, params, op).await?;
        rows.first()
            .map(|row| snapshot_from(agent, row, op))
            .transpose()
    }
}

#[async_trait]
impl AgentStateStore for PostgresAgentStateStore {
    async fn save(
        &self,
        agent_id: &str,
        state: &Value,
        expected_version: Option<u64>,
    ) -> Result<SnapshotInfo> {
        const OP: &str = "agent_state_save";
        check_id("agent id", agent_id)?;
        let payload = encode_state(state)?;
        let checksum = sha256_hex(&payload);
        let size = payload.len() as u64;
        let tenant = self.tenant();
        let size_param = bigint(size);
        let expected = expected_version.map(bigint);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&tenant, &agent_id, &checksum, &size_param, &payload];
        let text = match &expected {
            None => sql::SAVE,
            Some(0) => sql::SAVE_FIRST,
            Some(expected) => {
                params.push(expected);
                sql::SAVE_AFTER
            }
        };
        let rows = query(&self.backend, text, &params, OP).await?;
        let Some(row) = rows.first() else {
            return Err(
                Error::conflict("agent state changed since the expected version")
                    .with_context("agent", agent_id)
                    .with_context("expected", expected_version.unwrap_or_default()),
            );
        };
        let map = |err| error::from_pg(OP, err);
        Ok(SnapshotInfo {
            agent_id: agent_id.to_owned(),
            version: stored_u64(row.try_get(0).map_err(map)?, "version")?,
            checksum,
            size,
            saved_at: row.try_get(1).map_err(map)?,
        })
    }

    async fn load_latest(&self, agent_id: &str) -> Result<Option<AgentSnapshot>> {
        check_id("agent id", agent_id)?;
        let tenant = self.tenant();
        self.load(
            agent_id,
            sql::LOAD_LATEST,
            &[&tenant, &agent_id],
            "agent_state_load_latest",
        )
        .await
    }

    async fn load_version(&self, agent_id: &str, version: u64) -> Result<Option<AgentSnapshot>> {
        check_id("agent id", agent_id)?;
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        let tenant = self.tenant();
        self.load(
            agent_id,
            sql::LOAD_VERSION,
            &[&tenant, &agent_id, &version],
            "agent_state_load_version",
        )
        .await
    }

    async fn list_versions(&self, agent_id: &str) -> Result<Vec<SnapshotInfo>> {
        const OP: &str = "agent_state_list_versions";
        check_id("agent id", agent_id)?;
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::LIST_VERSIONS, &[&tenant, &agent_id], OP).await?;
        rows.iter()
            .map(|row| {
                info_from(agent_id, row, OP)?
                    .ok_or_else(|| Error::corruption("stored snapshot metadata is NULL"))
            })
            .collect()
    }

    async fn delete_agent(&self, agent_id: &str) -> Result<u64> {
        check_id("agent id", agent_id)?;
        let tenant = self.tenant();
        execute_pair(
            &self.backend,
            sql::DELETE_HEAD,
            sql::DELETE_SNAPSHOTS,
            &[&tenant, &agent_id],
            "agent_state_delete",
        )
        .await
    }

    async fn prune(&self, agent_id: &str, keep_last: u64) -> Result<u64> {
        const OP: &str = "agent_state_prune";
        check_id("agent id", agent_id)?;
        check_keep_last(keep_last)?;
        let tenant = self.tenant();
        let keep = bigint(keep_last);
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::PRUNE, OP).await?;
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &[&tenant, &agent_id, &keep]),
        )
        .await
    }
}

/// The portable record of a snapshot is its [`SnapshotInfo`] with the payload bytes as the
/// blob, in (agent id, version) order; the cursor is the last (agent id, version). An import
/// raises each agent's latest version to the largest version imported for it (never lowers
/// it), in the same transaction as the snapshots.
#[async_trait]
impl PortableStore for PostgresAgentStateStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        const OP: &str = "agent_state_export";
        let fetch = export_fetch(limit)?;
        let (agent, version): (String, u64) =
            after.map(decode_cursor).transpose()?.unwrap_or_default();
        let version = bigint(version);
        let tenant = self.tenant();
        let rows = query(
            &self.backend,
            sql::EXPORT,
            &[&tenant, &agent, &version, &fetch],
            OP,
        )
        .await?;
        let map = |err| error::from_pg(OP, err);
        let snapshots = rows
            .iter()
            .map(|row| {
                let agent: String = row.try_get(5).map_err(map)?;
                let payload: Vec<u8> = row.try_get(4).map_err(map)?;
                let info = info_from(&agent, row, OP)?
                    .ok_or_else(|| Error::corruption("stored snapshot metadata is NULL"))?;
                Ok((info, payload))
            })
            .collect::<Result<Vec<_>>>()?;
        page_of(
            snapshots,
            limit,
            |(info, payload)| encode_portable(info, payload),
            |(last, _)| encode_cursor(&(&last.agent_id, last.version)),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut snapshots = BTreeMap::new();
        for record in records {
            let (info, payload): (SnapshotInfo, &[u8]) = decode_portable(record)?;
            check_snapshot(&info, payload)?;
            if info.saved_at.nanosecond() % 1_000 != 0 {
                // The table keeps microseconds; rounding would make the copy differ.
                return Err(Error::invalid_input(
                    "this snapshot's save time has nanoseconds, which the PostgreSQL store \
                     cannot hold (it keeps microseconds; snapshots saved by this version of \
                     Cairn always fit)",
                )
                .with_context("agent", &info.agent_id)
                .with_context("version", info.version));
            }
            snapshots.insert((info.agent_id.clone(), info.version), (info, payload));
        }
        if snapshots.is_empty() {
            return Ok(());
        }
        let n = snapshots.len();
        let (mut agents, mut versions, mut checksums) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut sizes, mut saved_ats, mut payloads) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (info, payload) in snapshots.into_values() {
            versions.push(bigint(info.version));
            sizes.push(bigint(info.size));
            saved_ats.push(info.saved_at);
            checksums.push(info.checksum);
            agents.push(info.agent_id);
            payloads.push(payload);
        }
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 7] = [
            &tenant, &agents, &versions, &checksums, &sizes, &saved_ats, &payloads,
        ];
        execute_two(
            &self.backend,
            (sql::IMPORT_HEADS, &params[..3]),
            (sql::IMPORT_SNAPSHOTS, &params),
            "agent_state_import",
        )
        .await?;
        Ok(())
    }
}
