//! [`PostgresHookHistoryStore`]: [`HookHistoryStore`] on the `hook_executions` table.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Result, StorageBackend, check_scan_limit};
use cairn_stores::codec::check_id;
use cairn_stores::hooks::{
    HookCursor, HookExecution, HookHistoryStore, HookQuery, HookRecord, HookStats,
    check_hook_record,
};
use cairn_stores::portable::{
    ExportPage, PortableStore, check_export_limit, decode_cursor, decode_portable, encode_cursor,
    encode_portable, page_of,
};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::timestamps::{check_year, join, split};
use super::{QuerySql, check_range};
use crate::backend::PostgresBackend;
use crate::error;

/// A [`HookHistoryStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it
/// was built on.
///
/// # Storage
/// One table, `hook_executions`, ordered by `(at, at_ns, id)` (primary key `(tenant_id, at,
/// at_ns, id)`; `at` the time rounded down to the microsecond, `at_ns` the rest). Durations
/// are exact whole nanoseconds (`numeric`, any [`Duration`]). The index `(tenant_id,
/// hook_name, at, at_ns, id) INCLUDE (duration_ns, failed)` serves per-hook queries and covers
/// everything [`HookHistoryStore::stats`] reads (an index-only scan once vacuumed).
///
/// # Statistics
/// One statement: count, failures (`error IS NOT NULL`), the mean as the generic store
/// computes it (`(sum in ns as f64 / 1e6) / count`), and nearest-rank p50/p95 (the duration of
/// rank `ceil(p × count / 100)` in ascending order, computed with integers) — the same
/// numbers, to the bit, as the generic store.
#[derive(Clone)]
pub struct PostgresHookHistoryStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresHookHistoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresHookHistoryStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Every statement of the hook history. `$1` is always the tenant id; [`QuerySql`] assembles
/// queries and statistics from the fragments below and the shared time-range fragments.
mod sql {
    /// `$2` time, `$3` nanoseconds, `$4` id, `$5` hook, `$6` input, `$7` output, `$8` error,
    /// `$9` duration in nanoseconds (decimal text).
    pub(super) const RECORD: &str = "\
INSERT INTO hook_executions (tenant_id, at, at_ns, id, hook_name, input, output, error, duration_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric)";

    /// Writes whole executions, replacing those of the same time and id: `$2` times, `$3`
    /// nanoseconds, `$4` ids, `$5` hooks, `$6` inputs, `$7` outputs (nullable), `$8` errors
    /// (nullable), `$9` durations in nanoseconds (decimal text), all in the same order, each
    /// time and id once.
    pub(super) const IMPORT: &str = "\
INSERT INTO hook_executions (tenant_id, at, at_ns, id, hook_name, input, output, error, duration_ns)
SELECT $1, h.at, h.at_ns, h.id, h.hook_name, h.input, h.output, h.error, h.duration::numeric
FROM unnest($2::timestamptz[], $3::int2[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[],
    $8::text[], $9::text[]) AS h(at, at_ns, id, hook_name, input, output, error, duration)
ON CONFLICT (tenant_id, at, at_ns, id) DO UPDATE SET hook_name = EXCLUDED.hook_name,
    input = EXCLUDED.input, output = EXCLUDED.output, error = EXCLUDED.error,
    duration_ns = EXCLUDED.duration_ns";

    /// The start of every query.
    pub(super) const SELECT: &str = "\
SELECT id, at, at_ns, hook_name, input, output, error, duration_ns::text
FROM hook_executions WHERE tenant_id = $1";

    /// `{0}` the hook.
    pub(super) const HOOK: &str = " AND hook_name = {0}";

    /// The start of a statistics statement: one hook's executions, then the time range.
    pub(super) const STATS_FROM: &str = "\
WITH d AS (
    SELECT duration_ns, failed,
           row_number() OVER (ORDER BY duration_ns) AS rank, count(*) OVER () AS n
    FROM hook_executions WHERE tenant_id = $1";

    /// `{0}` the hook; closes the CTE and aggregates it. Ranks are nearest-rank,
    /// `ceil(p * n / 100)` in integers.
    pub(super) const STATS_AGGREGATE: &str = " AND hook_name = {0}
)
SELECT count(*), count(*) FILTER (WHERE failed),
       sum(duration_ns)::float8 / 1e6::float8 / count(*)::float8,
       min(duration_ns) FILTER (WHERE rank = (50 * n + 99) / 100)::float8 / 1e6::float8,
       min(duration_ns) FILTER (WHERE rank = (95 * n + 99) / 100)::float8 / 1e6::float8
FROM d";

    /// `$2` the bound rounded down to the microsecond, `$3` its nanoseconds.
    pub(super) const DROP_BEFORE: &str = "\
DELETE FROM hook_executions WHERE tenant_id = $1 AND at <= $2 AND (at, at_ns) < ($2, $3)";
}

fn record_from(row: &Row) -> Result<HookRecord> {
    const OP: &str = "hook_query";
    let map = |err| error::from_pg(OP, err);
    let duration: String = row.try_get(7).map_err(map)?;
    Ok(HookRecord {
        id: row.try_get(0).map_err(map)?,
        at: join(row.try_get(1).map_err(map)?, row.try_get(2).map_err(map)?)?,
        hook_name: row.try_get(3).map_err(map)?,
        input: row.try_get::<_, Value>(4).map_err(map)?,
        output: row.try_get::<_, Option<Value>>(5).map_err(map)?,
        error: row.try_get(6).map_err(map)?,
        duration: duration_from(&duration)?,
    })
}

/// A stored `duration_ns` (whole nanoseconds, decimal) as a [`Duration`].
fn duration_from(nanos: &str) -> Result<Duration> {
    let bad = || Error::corruption("stored hook duration is not a valid duration");
    let nanos: u128 = nanos.parse().map_err(|_| bad())?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    // The remainder is below 10^9 and fits u32.
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

impl PostgresHookHistoryStore {
    /// A hook history on `backend`'s pool and tenant. The table comes from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresHookHistoryStore {
        PostgresHookHistoryStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Runs an assembled statement in a tenant transaction.
    async fn run_query(&self, op: &'static str, sql: &QuerySql) -> Result<Vec<Row>> {
        let conn = self.backend.conn(op).await?;
        let stmt = conn.statement(&sql.text, op).await?;
        let params = sql.params();
        conn.run(
            self.backend.tenant_id(),
            op,
            conn.client().query(&stmt, &params),
        )
        .await
    }
}

#[async_trait]
impl HookHistoryStore for PostgresHookHistoryStore {
    async fn record(&self, execution: HookExecution) -> Result<HookRecord> {
        const OP: &str = "hook_record";
        check_id("hook name", &execution.hook_name)?;
        let at = execution
            .at
            .map_or_else(OffsetDateTime::now_utc, |t| t.to_offset(UtcOffset::UTC));
        check_year("hook execution", at)?;
        let record = HookRecord {
            id: Uuid::now_v7(),
            hook_name: execution.hook_name,
            input: execution.input,
            output: execution.output,
            error: execution.error,
            duration: execution.duration,
            at,
        };
        let (at, ns) = split(record.at);
        let duration = record.duration.as_nanos().to_string();
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 9] = [
            &tenant,
            &at,
            &ns,
            &record.id,
            &record.hook_name,
            &record.input,
            &record.output,
            &record.error,
            &duration,
        ];
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::RECORD, OP).await?;
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &params),
        )
        .await?;
        Ok(record)
    }

    async fn query(&self, query: &HookQuery) -> Result<Vec<HookRecord>> {
        check_scan_limit(query.limit)?;
        check_range(query.from, query.to)?;
        let mut sql = QuerySql::new(sql::SELECT, self.tenant());
        if let Some(name) = &query.hook_name {
            check_id("hook name", name)?;
            sql.push(sql::HOOK, vec![Box::new(name.clone())]);
        }
        sql.push_time_range(query.from, query.to, query.after, query.limit);
        let rows = self.run_query("hook_query", &sql).await?;
        rows.iter().map(record_from).collect()
    }

    async fn stats(
        &self,
        hook_name: &str,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<HookStats> {
        const OP: &str = "hook_stats";
        check_id("hook name", hook_name)?;
        check_range(from, to)?;
        let mut sql = QuerySql::new(sql::STATS_FROM, self.tenant());
        sql.push_time_bounds(from, to);
        sql.push(sql::STATS_AGGREGATE, vec![Box::new(hook_name.to_owned())]);
        let rows = self.run_query(OP, &sql).await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::corruption("hook statistics returned no row"))?;
        let map = |err| error::from_pg(OP, err);
        let count: i64 = row.try_get(0).map_err(map)?;
        let failures: i64 = row.try_get(1).map_err(map)?;
        Ok(HookStats {
            count: count.unsigned_abs(),
            failures: failures.unsigned_abs(),
            mean_ms: row.try_get(2).map_err(map)?,
            p50_ms: row.try_get(3).map_err(map)?,
            p95_ms: row.try_get(4).map_err(map)?,
        })
    }

    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64> {
        const OP: &str = "hook_drop_before";
        let (at, ns) = split(before);
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::DROP_BEFORE, OP).await?;
        let tenant = self.tenant();
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &[&tenant, &at, &ns]),
        )
        .await
    }
}

/// The portable record of an execution is its [`HookRecord`], id included, in (time, id)
/// order; the cursor is the last record's [`HookCursor`]. An import replaces an execution of
/// the same time and id; an output of JSON `null` is stored as no output, as the generic
/// store reads it.
#[async_trait]
impl PortableStore for PostgresHookHistoryStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        check_export_limit(limit)?;
        let after: Option<HookCursor> = after.map(decode_cursor).transpose()?;
        let mut sql = QuerySql::new(sql::SELECT, self.tenant());
        // One more than asked tells whether another page follows.
        sql.push_time_range(None, None, after, limit + 1);
        let rows = self.run_query("hook_export", &sql).await?;
        let records = rows.iter().map(record_from).collect::<Result<Vec<_>>>()?;
        page_of(
            records,
            limit,
            |record| encode_portable(record, &[]),
            |last| encode_cursor(&HookCursor::from(last)),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        const OP: &str = "hook_import";
        let mut executions = BTreeMap::new();
        for record in records {
            let (execution, _): (HookRecord, _) = decode_portable(record)?;
            check_hook_record(&execution)?;
            executions.insert((execution.at, execution.id), execution);
        }
        if executions.is_empty() {
            return Ok(());
        }
        let n = executions.len();
        let (mut ats, mut nss, mut ids) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut hooks, mut inputs, mut outputs) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut errors, mut durations) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for execution in executions.into_values() {
            let (at, ns) = split(execution.at);
            ats.push(at);
            nss.push(ns);
            ids.push(execution.id);
            hooks.push(execution.hook_name);
            inputs.push(execution.input);
            outputs.push(execution.output.filter(|output| !output.is_null()));
            errors.push(execution.error);
            durations.push(execution.duration.as_nanos().to_string());
        }
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 9] = [
            &tenant, &ats, &nss, &ids, &hooks, &inputs, &outputs, &errors, &durations,
        ];
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::IMPORT, OP).await?;
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &params),
        )
        .await?;
        Ok(())
    }
}
