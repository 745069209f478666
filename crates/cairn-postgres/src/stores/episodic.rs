//! [`PostgresEpisodicStore`]: [`EpisodicStore`] on the `episodic_sessions` and
//! `episodic_turns` tables.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend, check_scan_limit};
use cairn_stores::codec::check_id;
use cairn_stores::episodic::{
    EpisodicSession, EpisodicStore, Role, Turn, TurnPage, TurnRecord, check_turn,
};
use cairn_stores::portable::{
    ExportPage, PortableStore, decode_cursor, decode_portable, encode_cursor, encode_portable,
    page_of,
};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::timestamps::{check_year, join, split};
use super::{bigint, execute_pair, execute_two, export_fetch, query, stored_u64};
use crate::backend::PostgresBackend;
use crate::error;

/// An [`EpisodicStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was
/// built on.
///
/// # Storage
/// `episodic_sessions` holds one head row per session with its last `seq`;
/// `episodic_turns` one row per turn, keyed by `(tenant_id, session_id, seq)`. Turn times keep
/// their nanoseconds (`at` rounded down to the microsecond, `at_ns` the rest).
///
/// # Sequence numbers
/// An append is one statement: `INSERT ... ON CONFLICT DO UPDATE SET last_seq = last_seq + 1
/// RETURNING last_seq` on the head, feeding the `INSERT` of the turn. The head's row lock
/// serialises concurrent appends to one session, so they get distinct, gap-free numbers
/// without retries. Deleting a session deletes its head first (taking the same lock), then
/// its turns, in one transaction.
///
/// # Queries
/// Reads in `seq` order use the primary key; `read_range` the index `(tenant_id, session_id,
/// at, at_ns, seq)`; `by_role` the index `(tenant_id, session_id, role, seq)`; `count` reads
/// the head. `list_sessions` orders by the head's generated `sort_key`, the session id
/// escaped as in the generic store's keys, so every backend lists sessions alike.
///
/// # Limits
/// PostgreSQL `text` and `jsonb` cannot hold NUL characters: a turn whose content or metadata
/// contains one is refused by the server (`InvalidInput`) and nothing is written.
#[derive(Clone)]
pub struct PostgresEpisodicStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresEpisodicStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEpisodicStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Every statement of the episodic store. `$1` is always the tenant id, `$2` the session id
/// (or, in `LIST_SESSIONS`, the session to list after).
mod sql {
    /// Takes the next `seq` of the session and inserts the turn with it: `$3` role, `$4`
    /// content, `$5` metadata, `$6` time rounded down to the microsecond, `$7` its
    /// nanoseconds. Returns the `seq`.
    pub(super) const APPEND: &str = "\
WITH head AS (
    INSERT INTO episodic_sessions AS s (tenant_id, session_id, last_seq) VALUES ($1, $2, 1)
    ON CONFLICT (tenant_id, session_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING last_seq
)
INSERT INTO episodic_turns (tenant_id, session_id, seq, role, content, metadata, at, at_ns)
SELECT $1, $2, head.last_seq, $3, $4, $5, $6, $7 FROM head
RETURNING seq";

    /// The start of every turn query: the columns [`record_from`](super::record_from) reads,
    /// in its order.
    macro_rules! select_turns {
        () => {
            "SELECT seq, role, content, metadata, at, at_ns FROM episodic_turns "
        };
    }

    /// `$3` the `seq` to read after, `$4` the limit.
    pub(super) const READ: &str = concat!(
        select_turns!(),
        "\
WHERE tenant_id = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
    );

    /// `$3`, `$4` the inclusive lower bound (microseconds, nanoseconds), `$5`, `$6` the
    /// exclusive upper bound, `$7` the limit.
    pub(super) const READ_RANGE: &str = concat!(
        select_turns!(),
        "\
WHERE tenant_id = $1 AND session_id = $2 AND at >= $3 AND at <= $5 \
AND (at, at_ns) >= ($3, $4) AND (at, at_ns) < ($5, $6) \
ORDER BY at, at_ns, seq LIMIT $7"
    );

    /// `$3` the role, `$4` the `seq` to read after, `$5` the limit.
    pub(super) const BY_ROLE: &str = concat!(
        select_turns!(),
        "\
WHERE tenant_id = $1 AND session_id = $2 AND role = $3 AND seq > $4 ORDER BY seq LIMIT $5"
    );

    pub(super) const COUNT: &str =
        "SELECT last_seq FROM episodic_sessions WHERE tenant_id = $1 AND session_id = $2";

    /// Runs first in its transaction: waits for appends in flight and stops new ones.
    pub(super) const DELETE_HEAD: &str =
        "DELETE FROM episodic_sessions WHERE tenant_id = $1 AND session_id = $2";

    pub(super) const DELETE_TURNS: &str =
        "DELETE FROM episodic_turns WHERE tenant_id = $1 AND session_id = $2";

    /// Every turn of every session by session id, then `seq`: `$2`, `$3` the session and
    /// `seq` to read after (`''` and 0 from the start: ids are never empty), `$4` the most
    /// rows. The columns of `select_turns!`, then the session id.
    pub(super) const EXPORT: &str = "\
SELECT seq, role, content, metadata, at, at_ns, session_id FROM episodic_turns
WHERE tenant_id = $1 AND (session_id, seq) > ($2, $3) ORDER BY session_id, seq LIMIT $4";

    /// Raises the counters of the sessions in `$2` to the largest `seq` in `$3` for each
    /// (the arrays of [`IMPORT_TURNS`]), creating missing heads; runs first, taking the
    /// heads' row locks as appends do.
    pub(super) const IMPORT_HEADS: &str = "\
INSERT INTO episodic_sessions AS s (tenant_id, session_id, last_seq)
SELECT $1, t.session_id, max(t.seq) FROM unnest($2::text[], $3::int8[]) AS t(session_id, seq)
GROUP BY t.session_id
ON CONFLICT (tenant_id, session_id) DO UPDATE SET last_seq = GREATEST(s.last_seq, EXCLUDED.last_seq)";

    /// Writes whole turns, replacing those of the same session and `seq`: `$2` session ids,
    /// `$3` seqs, `$4` roles, `$5` contents, `$6` metadata, `$7`/`$8` times, all in the same
    /// order, each (session, `seq`) once.
    pub(super) const IMPORT_TURNS: &str = "\
INSERT INTO episodic_turns (tenant_id, session_id, seq, role, content, metadata, at, at_ns)
SELECT $1, t.session_id, t.seq, t.role, t.content, t.metadata, t.at, t.at_ns
FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[],
    $8::int2[]) AS t(session_id, seq, role, content, metadata, at, at_ns)
ON CONFLICT (tenant_id, session_id, seq) DO UPDATE SET
    role = EXCLUDED.role, content = EXCLUDED.content, metadata = EXCLUDED.metadata,
    at = EXCLUDED.at, at_ns = EXCLUDED.at_ns";

    /// `$2` the session to list after (`''` from the start: every `sort_key` is longer),
    /// escaped here exactly as `sort_key` is; `$3` the limit.
    pub(super) const LIST_SESSIONS: &str = "\
SELECT session_id, last_seq FROM episodic_sessions
WHERE tenant_id = $1 AND sort_key > replace(replace($2, '%', '%25'), '/', '%2F')
ORDER BY sort_key LIMIT $3";
}

/// A stored role name as a [`Role`].
fn parse_role(name: &str) -> Result<Role> {
    Role::ALL
        .into_iter()
        .find(|role| role.as_str() == name)
        .ok_or_else(|| {
            Error::corruption("stored turn has an unknown role").with_context("role", name)
        })
}

/// A checked limit as the `bigint` of a `LIMIT`.
fn limit(limit: usize) -> Result<i64> {
    check_scan_limit(limit)?;
    Ok(i64::try_from(limit).unwrap_or(i64::MAX))
}

/// A turn row (columns of `sql::select_turns!`, in order from the first) of `session`.
fn record_from(session: &str, row: &Row, op: &'static str) -> Result<TurnRecord> {
    let map = |err| error::from_pg(op, err);
    let metadata = match row.try_get::<_, Value>(3).map_err(map)? {
        Value::Object(map) => map,
        _ => {
            return Err(Error::corruption(
                "stored turn metadata is not a JSON object",
            ));
        }
    };
    Ok(TurnRecord {
        session_id: session.to_owned(),
        seq: stored_u64(row.try_get(0).map_err(map)?, "seq")?,
        role: parse_role(row.try_get(1).map_err(map)?)?,
        content: row.try_get(2).map_err(map)?,
        metadata,
        at: join(row.try_get(4).map_err(map)?, row.try_get(5).map_err(map)?)?,
    })
}

impl PostgresEpisodicStore {
    /// An episodic store on `backend`'s pool and tenant. The tables come from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresEpisodicStore {
        PostgresEpisodicStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Runs a turn query of `session` and maps its rows.
    async fn turns(
        &self,
        session: &str,
        text: &str,
        params: &[&(dyn ToSql + Sync)],
        op: &'static str,
    ) -> Result<Vec<TurnRecord>> {
        let rows = query(&self.backend, text, params, op).await?;
        rows.iter()
            .map(|row| record_from(session, row, op))
            .collect()
    }
}

#[async_trait]
impl EpisodicStore for PostgresEpisodicStore {
    async fn append(&self, session_id: &str, turn: Turn) -> Result<TurnRecord> {
        const OP: &str = "episodic_append";
        check_id("session id", session_id)?;
        let at = turn
            .at
            .map_or_else(OffsetDateTime::now_utc, |t| t.to_offset(UtcOffset::UTC));
        check_year("turn", at)?;
        let (micros, ns) = split(at);
        let metadata = Json(&turn.metadata);
        let tenant = self.tenant();
        let role = turn.role.as_str();
        let rows = query(
            &self.backend,
            sql::APPEND,
            &[
                &tenant,
                &session_id,
                &role,
                &turn.content,
                &metadata,
                &micros,
                &ns,
            ],
            OP,
        )
        .await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Backend, "the append returned no seq"))?;
        let seq: i64 = row.try_get(0).map_err(|err| error::from_pg(OP, err))?;
        Ok(TurnRecord {
            session_id: session_id.to_owned(),
            seq: stored_u64(seq, "seq")?,
            role: turn.role,
            content: turn.content,
            metadata: turn.metadata,
            at,
        })
    }

    async fn read(&self, session_id: &str, page: TurnPage) -> Result<Vec<TurnRecord>> {
        check_id("session id", session_id)?;
        let limit = limit(page.limit)?;
        let after = bigint(page.after_seq.unwrap_or(0));
        let tenant = self.tenant();
        self.turns(
            session_id,
            sql::READ,
            &[&tenant, &session_id, &after, &limit],
            "episodic_read",
        )
        .await
    }

    async fn read_range(
        &self,
        session_id: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<TurnRecord>> {
        check_id("session id", session_id)?;
        let limit = self::limit(limit)?;
        if from > to {
            return Err(Error::invalid_input(
                "time range starts after it ends (from > to)",
            ));
        }
        let ((from, from_ns), (to, to_ns)) = (split(from), split(to));
        let tenant = self.tenant();
        self.turns(
            session_id,
            sql::READ_RANGE,
            &[&tenant, &session_id, &from, &from_ns, &to, &to_ns, &limit],
            "episodic_read_range",
        )
        .await
    }

    async fn by_role(
        &self,
        session_id: &str,
        role: Role,
        page: TurnPage,
    ) -> Result<Vec<TurnRecord>> {
        check_id("session id", session_id)?;
        let limit = limit(page.limit)?;
        let after = bigint(page.after_seq.unwrap_or(0));
        let tenant = self.tenant();
        let role = role.as_str();
        self.turns(
            session_id,
            sql::BY_ROLE,
            &[&tenant, &session_id, &role, &after, &limit],
            "episodic_by_role",
        )
        .await
    }

    async fn count(&self, session_id: &str) -> Result<u64> {
        const OP: &str = "episodic_count";
        check_id("session id", session_id)?;
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::COUNT, &[&tenant, &session_id], OP).await?;
        match rows.first() {
            Some(row) => stored_u64(
                row.try_get(0).map_err(|e| error::from_pg(OP, e))?,
                "last_seq",
            ),
            None => Ok(0),
        }
    }

    async fn delete_session(&self, session_id: &str) -> Result<u64> {
        const OP: &str = "episodic_delete_session";
        check_id("session id", session_id)?;
        let tenant = self.tenant();
        execute_pair(
            &self.backend,
            sql::DELETE_HEAD,
            sql::DELETE_TURNS,
            &[&tenant, &session_id],
            OP,
        )
        .await
    }

    async fn list_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EpisodicSession>> {
        const OP: &str = "episodic_list_sessions";
        if let Some(after) = after {
            check_id("session id", after)?;
        }
        let limit = self::limit(limit)?;
        let tenant = self.tenant();
        let after = after.unwrap_or_default();
        let rows = query(
            &self.backend,
            sql::LIST_SESSIONS,
            &[&tenant, &after, &limit],
            OP,
        )
        .await?;
        let map = |err| error::from_pg(OP, err);
        rows.iter()
            .map(|row| {
                Ok(EpisodicSession {
                    session_id: row.try_get(0).map_err(map)?,
                    turns: stored_u64(row.try_get(1).map_err(map)?, "last_seq")?,
                })
            })
            .collect()
    }
}

/// The portable record of a turn is its [`TurnRecord`], in (session id, `seq`) order; the
/// cursor is the last (session id, `seq`). An import raises each session's counter to the
/// largest `seq` imported for it (never lowers it), in the same transaction as the turns.
#[async_trait]
impl PortableStore for PostgresEpisodicStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        const OP: &str = "episodic_export";
        let fetch = export_fetch(limit)?;
        let (session, seq): (String, u64) =
            after.map(decode_cursor).transpose()?.unwrap_or_default();
        let seq = bigint(seq);
        let tenant = self.tenant();
        let rows = query(
            &self.backend,
            sql::EXPORT,
            &[&tenant, &session, &seq, &fetch],
            OP,
        )
        .await?;
        let turns = rows
            .iter()
            .map(|row| {
                let session: String = row.try_get(6).map_err(|e| error::from_pg(OP, e))?;
                record_from(&session, row, OP)
            })
            .collect::<Result<Vec<_>>>()?;
        page_of(
            turns,
            limit,
            |turn| encode_portable(turn, &[]),
            |last| encode_cursor(&(&last.session_id, last.seq)),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut turns = BTreeMap::new();
        for record in records {
            let (turn, _): (TurnRecord, _) = decode_portable(record)?;
            check_turn(&turn)?;
            turns.insert((turn.session_id.clone(), turn.seq), turn);
        }
        if turns.is_empty() {
            return Ok(());
        }
        let n = turns.len();
        let (mut sessions, mut seqs, mut roles) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut contents, mut metadata) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut ats, mut nss) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for turn in turns.into_values() {
            let (at, ns) = split(turn.at);
            ats.push(at);
            nss.push(ns);
            seqs.push(bigint(turn.seq));
            roles.push(turn.role.as_str());
            contents.push(turn.content);
            metadata.push(Json(turn.metadata));
            sessions.push(turn.session_id);
        }
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 8] = [
            &tenant, &sessions, &seqs, &roles, &contents, &metadata, &ats, &nss,
        ];
        execute_two(
            &self.backend,
            (sql::IMPORT_HEADS, &params[..3]),
            (sql::IMPORT_TURNS, &params),
            "episodic_import",
        )
        .await?;
        Ok(())
    }
}
