//! [`PostgresProceduralStore`]: [`ProceduralStore`] on the `procedures` table.

use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend};
use cairn_stores::codec::check_id;
use cairn_stores::paging::{Page, PageRequest};
use cairn_stores::portable::{
    ExportPage, PortableStore, decode_portable, encode_portable, page_of,
};
use cairn_stores::procedural::{
    OutcomeStats, ProceduralStore, Procedure, StoredProcedure, check_stored_procedure,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::timestamps::{join, optional_at, split};
use super::{bigint, export_after_id, export_fetch, query, stored_u64};
use crate::backend::PostgresBackend;
use crate::error;

/// A [`ProceduralStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was
/// built on.
///
/// # Storage
/// One table, `procedures`, primary key `(tenant_id, id)`: the definition (`content` and
/// `metadata` as `jsonb`), the counters `successes` and `failures` (`bigint`), the times with
/// their nanoseconds, and three generated columns: `sort_key` (the id escaped as in the
/// generic store's keys, for category listings), `uses` and `rate_key`.
///
/// # Counters
/// An outcome is one `UPDATE … SET successes = successes + 1` (or `failures`): concurrent
/// outcomes serialise on the row lock and none is lost, without retries. An upsert is one
/// `INSERT … ON CONFLICT DO UPDATE` of the definition columns only, so it never touches the
/// counters. A counter at `i64::MAX` (PostgreSQL's `bigint`, below the trait's `u64`) refuses
/// one more outcome with `InvalidInput`.
///
/// # Rankings
/// In SQL, on partial indexes over used procedures: by `rate_key DESC, uses DESC, id`, where
/// `rate_key = floor(successes · 10^40 / uses)` orders exactly as the fractions do (see the
/// migration), and by `uses DESC, id`. Each ranking reads only the `limit` rows it returns.
///
/// # Limits
/// PostgreSQL `text` and `jsonb` cannot hold NUL characters: a definition whose name,
/// description, content or metadata contains one is `InvalidInput` and nothing is written.
#[derive(Clone)]
pub struct PostgresProceduralStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresProceduralStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresProceduralStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Every statement of the procedural store. `$1` is always the tenant id; the columns of a
/// procedure are always the `columns!()` list, read by [`procedure_from`].
mod sql {
    /// The columns [`super::procedure_from`] reads, in order.
    macro_rules! columns {
        () => {
            "id, category, name, description, content, metadata, successes, failures, \
             last_used_at, last_used_ns, created_at, created_ns, updated_at, updated_ns"
        };
    }

    /// `$2` id, `$3` category, `$4` name, `$5` description, `$6` content, `$7` metadata,
    /// `$8`/`$9` the time of the write. Leaves the counters and the creation time of an
    /// existing procedure alone.
    pub(super) const UPSERT: &str = concat!(
        "\
INSERT INTO procedures (tenant_id, id, category, name, description, content, metadata,
                        created_at, created_ns, updated_at, updated_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $9)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    category = EXCLUDED.category, name = EXCLUDED.name, description = EXCLUDED.description,
    content = EXCLUDED.content, metadata = EXCLUDED.metadata,
    updated_at = EXCLUDED.updated_at, updated_ns = EXCLUDED.updated_ns
RETURNING ",
        columns!()
    );

    /// `$2` id.
    pub(super) const GET: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM procedures WHERE tenant_id = $1 AND id = $2"
    );

    /// `$2` id.
    pub(super) const DELETE: &str = "DELETE FROM procedures WHERE tenant_id = $1 AND id = $2";

    /// `$2` category, `$3` the id to list after (`''` from the start: every `sort_key` is
    /// longer), escaped here exactly as `sort_key` is; `$4` the most rows.
    pub(super) const LIST: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM procedures
WHERE tenant_id = $1 AND category = $2
    AND sort_key > replace(replace($3, '%', '%25'), '/', '%2F')
ORDER BY sort_key LIMIT $4"
    );

    /// `$2` id, `$3` whether it succeeded, `$4`/`$5` the time of the outcome, which becomes
    /// `last_used_at` unless a later one is stored.
    pub(super) const OUTCOME: &str = "\
UPDATE procedures SET
    successes = successes + CASE WHEN $3 THEN 1 ELSE 0 END,
    failures = failures + CASE WHEN $3 THEN 0 ELSE 1 END,
    last_used_at = CASE WHEN (last_used_at, last_used_ns) > ($4, $5)
        THEN last_used_at ELSE $4 END,
    last_used_ns = CASE WHEN (last_used_at, last_used_ns) > ($4, $5)
        THEN last_used_ns ELSE $5 END
WHERE tenant_id = $1 AND id = $2
RETURNING successes, failures, last_used_at, last_used_ns";

    /// A ranking of used procedures with at least `$2` (text, a `u64`) uses. `$3` is the
    /// limit; with a category, `$4`. `uses > 0` repeats the indexes' predicate for the
    /// planner.
    macro_rules! ranking {
        ($filter:literal, $order:literal) => {
            concat!(
                "SELECT ",
                columns!(),
                " FROM procedures WHERE tenant_id = $1",
                $filter,
                " AND uses > 0 AND uses >= $2::text::numeric ORDER BY ",
                $order,
                " LIMIT $3"
            )
        };
    }

    pub(super) const TOP_RATE: &str = ranking!("", "rate_key DESC, uses DESC, id");
    pub(super) const TOP_RATE_IN: &str =
        ranking!(" AND category = $4", "rate_key DESC, uses DESC, id");
    pub(super) const TOP_USES: &str = ranking!("", "uses DESC, id");
    pub(super) const TOP_USES_IN: &str = ranking!(" AND category = $4", "uses DESC, id");

    /// Every procedure by id: `$2` the id to read after (NULL: from the start), `$3` the most
    /// rows.
    pub(super) const EXPORT: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM procedures WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id \
         LIMIT $3"
    );

    /// Writes whole procedures, counters included, replacing those of the same id: `$2` ids,
    /// `$3` categories, `$4` names, `$5` descriptions, `$6` contents, `$7` metadata, `$8`
    /// successes, `$9` failures, `$10`..`$15` last use, creation and update times (each with
    /// its nanoseconds), all in the same order.
    pub(super) const IMPORT: &str = "\
INSERT INTO procedures (tenant_id, id, category, name, description, content, metadata,
    successes, failures, last_used_at, last_used_ns, created_at, created_ns, updated_at,
    updated_ns)
SELECT $1, p.id, p.category, p.name, p.description, p.content, p.metadata, p.successes,
    p.failures, p.last_used_at, p.last_used_ns, p.created_at, p.created_ns, p.updated_at,
    p.updated_ns
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[],
    $8::int8[], $9::int8[], $10::timestamptz[], $11::int2[], $12::timestamptz[], $13::int2[],
    $14::timestamptz[], $15::int2[])
    AS p(id, category, name, description, content, metadata, successes, failures,
        last_used_at, last_used_ns, created_at, created_ns, updated_at, updated_ns)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    category = EXCLUDED.category, name = EXCLUDED.name, description = EXCLUDED.description,
    content = EXCLUDED.content, metadata = EXCLUDED.metadata,
    successes = EXCLUDED.successes, failures = EXCLUDED.failures,
    last_used_at = EXCLUDED.last_used_at, last_used_ns = EXCLUDED.last_used_ns,
    created_at = EXCLUDED.created_at, created_ns = EXCLUDED.created_ns,
    updated_at = EXCLUDED.updated_at, updated_ns = EXCLUDED.updated_ns";
}

/// The counters in columns `at..at + 4` (successes, failures, last_used_at, last_used_ns).
fn stats_from(row: &Row, at: usize, op: &'static str) -> Result<OutcomeStats> {
    let map = |err| error::from_pg(op, err);
    Ok(OutcomeStats {
        successes: stored_u64(row.try_get(at).map_err(map)?, "successes")?,
        failures: stored_u64(row.try_get(at + 1).map_err(map)?, "failures")?,
        last_used_at: optional_at(row, at + 2, op)?,
    })
}

/// A procedure row (columns of `sql::columns!`).
fn procedure_from(row: &Row, op: &'static str) -> Result<StoredProcedure> {
    let map = |err| error::from_pg(op, err);
    let Value::Object(metadata) = row.try_get::<_, Value>(5).map_err(map)? else {
        return Err(Error::corruption(
            "stored procedure metadata is not a JSON object",
        ));
    };
    Ok(StoredProcedure {
        procedure: Procedure {
            id: row.try_get(0).map_err(map)?,
            category: row.try_get(1).map_err(map)?,
            name: row.try_get(2).map_err(map)?,
            description: row.try_get(3).map_err(map)?,
            content: row.try_get(4).map_err(map)?,
            metadata,
        },
        stats: stats_from(row, 6, op)?,
        created_at: join(row.try_get(10).map_err(map)?, row.try_get(11).map_err(map)?)?,
        updated_at: join(row.try_get(12).map_err(map)?, row.try_get(13).map_err(map)?)?,
    })
}

/// A checked ranking or page limit as the `bigint` of a `LIMIT`.
fn limit(limit: usize) -> Result<i64> {
    PageRequest::first(limit).validate()?;
    Ok(i64::try_from(limit).unwrap_or(i64::MAX))
}

impl PostgresProceduralStore {
    /// A procedural store on `backend`'s pool and tenant. The table comes from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresProceduralStore {
        PostgresProceduralStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Runs a statement returning procedure rows and maps them.
    async fn procedures(
        &self,
        text: &str,
        params: &[&(dyn ToSql + Sync)],
        op: &'static str,
    ) -> Result<Vec<StoredProcedure>> {
        let rows = query(&self.backend, text, params, op).await?;
        rows.iter().map(|row| procedure_from(row, op)).collect()
    }

    /// A ranking: `all` over every category, `within` over `category` when given.
    async fn ranking(
        &self,
        (all, within): (&str, &str),
        category: Option<&str>,
        limit: usize,
        min_uses: u64,
        op: &'static str,
    ) -> Result<Vec<StoredProcedure>> {
        let limit = self::limit(limit)?;
        let tenant = self.tenant();
        let min_uses = min_uses.to_string();
        match category {
            Some(category) => {
                check_id("procedure category", category)?;
                let params: [&(dyn ToSql + Sync); 4] = [&tenant, &min_uses, &limit, &category];
                self.procedures(within, &params, op).await
            }
            None => {
                self.procedures(all, &[&tenant, &min_uses, &limit], op)
                    .await
            }
        }
    }
}

#[async_trait]
impl ProceduralStore for PostgresProceduralStore {
    async fn upsert_procedure(&self, procedure: Procedure) -> Result<StoredProcedure> {
        const OP: &str = "procedural_upsert";
        procedure.validate()?;
        let (at, ns) = split(OffsetDateTime::now_utc());
        let tenant = self.tenant();
        let content = Json(&procedure.content);
        let metadata = Json(&procedure.metadata);
        let params: [&(dyn ToSql + Sync); 9] = [
            &tenant,
            &procedure.id,
            &procedure.category,
            &procedure.name,
            &procedure.description,
            &content,
            &metadata,
            &at,
            &ns,
        ];
        let rows = self.procedures(sql::UPSERT, &params, OP).await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Backend, "the upsert returned no row"))
    }

    async fn get(&self, id: &str) -> Result<Option<StoredProcedure>> {
        check_id("procedure id", id)?;
        let tenant = self.tenant();
        let rows = self
            .procedures(sql::GET, &[&tenant, &id], "procedural_get")
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        const OP: &str = "procedural_delete";
        check_id("procedure id", id)?;
        let tenant = self.tenant();
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::DELETE, OP).await?;
        let deleted = conn
            .run(
                self.backend.tenant_id(),
                OP,
                conn.client().execute(&stmt, &[&tenant, &id]),
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn list_by_category(
        &self,
        category: &str,
        page: PageRequest,
    ) -> Result<Page<StoredProcedure>> {
        page.validate()?;
        check_id("procedure category", category)?;
        if let Some(after) = &page.after {
            check_id("procedure id", after)?;
        }
        let tenant = self.tenant();
        let after = page.after.as_deref().unwrap_or_default();
        // One row more than asked tells whether another page follows.
        let fetch = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
        let mut items = self
            .procedures(
                sql::LIST,
                &[&tenant, &category, &after, &fetch],
                "procedural_list",
            )
            .await?;
        let more = items.len() > page.limit;
        items.truncate(page.limit);
        let next_after = more
            .then(|| items.last().map(|p| p.procedure.id.clone()))
            .flatten();
        Ok(Page { items, next_after })
    }

    async fn record_outcome(&self, id: &str, success: bool) -> Result<OutcomeStats> {
        const OP: &str = "procedural_record_outcome";
        check_id("procedure id", id)?;
        let (at, ns) = split(OffsetDateTime::now_utc());
        let tenant = self.tenant();
        let rows = query(
            &self.backend,
            sql::OUTCOME,
            &[&tenant, &id, &success, &at, &ns],
            OP,
        )
        .await
        .map_err(|err| {
            // 22003: a counter would pass `bigint`.
            let overflow = err
                .context()
                .iter()
                .any(|(key, value)| *key == "sqlstate" && value == "22003");
            if overflow {
                Error::invalid_input("procedure outcome counter is at its maximum")
                    .with_context("id", id)
                    .with_source(err)
            } else {
                err
            }
        })?;
        match rows.first() {
            Some(row) => stats_from(row, 0, OP),
            None => {
                Err(Error::new(ErrorKind::NotFound, "procedure not found").with_context("id", id))
            }
        }
    }

    async fn top_by_success_rate(
        &self,
        category: Option<&str>,
        limit: usize,
        min_uses: u64,
    ) -> Result<Vec<StoredProcedure>> {
        self.ranking(
            (sql::TOP_RATE, sql::TOP_RATE_IN),
            category,
            limit,
            min_uses,
            "procedural_top_by_success_rate",
        )
        .await
    }

    async fn top_by_frequency(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredProcedure>> {
        self.ranking(
            (sql::TOP_USES, sql::TOP_USES_IN),
            category,
            limit,
            0,
            "procedural_top_by_frequency",
        )
        .await
    }
}

/// The portable record of a procedure is its [`StoredProcedure`] (definition, counters and
/// times), in id order; the cursor is the last id.
#[async_trait]
impl PortableStore for PostgresProceduralStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let fetch = export_fetch(limit)?;
        let after = export_after_id(after)?;
        let tenant = self.tenant();
        let procedures = self
            .procedures(sql::EXPORT, &[&tenant, &after, &fetch], "procedural_export")
            .await?;
        page_of(
            procedures,
            limit,
            |procedure| encode_portable(procedure, &[]),
            |last| Ok(last.procedure.id.as_bytes().to_vec()),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut procedures = std::collections::BTreeMap::new();
        for record in records {
            let (procedure, _): (StoredProcedure, _) = decode_portable(record)?;
            check_stored_procedure(&procedure)?;
            procedures.insert(procedure.procedure.id.clone(), procedure);
        }
        if procedures.is_empty() {
            return Ok(());
        }
        let n = procedures.len();
        let (mut ids, mut categories, mut names) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut descriptions, mut contents, mut metadata) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut successes, mut failures) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut used_at, mut used_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut created_at, mut created_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut updated_at, mut updated_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for record in procedures.into_values() {
            let used = record.stats.last_used_at.map(split);
            used_at.push(used.map(|t| t.0));
            used_ns.push(used.map(|t| t.1));
            let (at, ns) = split(record.created_at);
            created_at.push(at);
            created_ns.push(ns);
            let (at, ns) = split(record.updated_at);
            updated_at.push(at);
            updated_ns.push(ns);
            // Checked to fit a `bigint`.
            successes.push(bigint(record.stats.successes));
            failures.push(bigint(record.stats.failures));
            let procedure = record.procedure;
            metadata.push(Value::Object(procedure.metadata));
            contents.push(procedure.content);
            descriptions.push(procedure.description);
            names.push(procedure.name);
            categories.push(procedure.category);
            ids.push(procedure.id);
        }
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 15] = [
            &tenant,
            &ids,
            &categories,
            &names,
            &descriptions,
            &contents,
            &metadata,
            &successes,
            &failures,
            &used_at,
            &used_ns,
            &created_at,
            &created_ns,
            &updated_at,
            &updated_ns,
        ];
        query(&self.backend, sql::IMPORT, &params, "procedural_import").await?;
        Ok(())
    }
}
