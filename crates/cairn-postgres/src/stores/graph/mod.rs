//! [`PostgresGraphStore`]: [`GraphStore`] on the `graph_entities` and `graph_relationships`
//! tables.

mod rows;
mod sql;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend};
use cairn_stores::codec::check_id;
use cairn_stores::graph::{
    AsOf, Bitemporal, Direction, Entity, EntityInput, GraphRecord, GraphStore, Relationship,
    RelationshipInput, TraversalHit, TraverseRequest, Validity, check_graph_record, to_utc,
};
use cairn_stores::paging::{Page, PageRequest};
use cairn_stores::portable::{
    ExportPage, PortableStore, decode_cursor, decode_portable, encode_cursor, encode_portable,
    page_of,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::timestamps::{check_year, split};
use super::{QuerySql, bigint, execute_two, export_fetch, query};
use crate::backend::PostgresBackend;
use rows::{Cols, entity_from, relationship_from};

/// A [`GraphStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was built
/// on.
///
/// # Storage
/// `graph_entities` and `graph_relationships` hold one row per version, keyed by `(tenant_id,
/// id, version)`, never deleted. Each of the four times is a `timestamptz` plus its
/// nanoseconds; an open end is NULL. As-of reads search the GiST indexes (btree_gist)
/// `(tenant_id, id, recorded_at, known_until, valid_from, valid_until)`, where the generated
/// `*_until` columns hold the ends with an open end as `infinity`; the exact `(time, ns)`
/// comparisons then decide. The index holds plain times rather than ranges because only
/// leakproof operators (timestamptz comparisons, not range operators) become index conditions
/// under row-level security. The current view is the versions with an open transaction end;
/// a partial unique index on them guarantees one current version per id.
///
/// # Writes
/// A write is one transaction of two pipelined statements (one round trip): a transaction
/// advisory lock on the id, which serialises its writers (each then reads the newest version,
/// so no update is lost and none retries), then one statement that reads the current version,
/// checks the input against it, sets its `superseded_at` and inserts the next version with
/// merged properties (`jsonb ||`: input keys win, others stay). A check that fails writes
/// nothing. Transaction time is the client's clock, never before the version it supersedes.
///
/// # Reads
/// Each read is one statement: by id on the indexes above; history in primary-key order; listings in the order of the id escaped as in the generic
/// store's keys (`sort_key`); `relationships_of` on the endpoint indexes; `traverse` as one
/// recursive CTE, breadth first, with the visited ids as its cycle protection (see
/// [`PostgresGraphStore::explain_traverse`]).
///
/// # Export and import
/// Exports read the entity versions, then the relationship versions, each in primary-key
/// order `(id, version)`; the cursor is the last version's kind, id and version. An import is
/// one transaction of two `INSERT … SELECT FROM unnest(…) ON CONFLICT (tenant_id, id,
/// version) DO UPDATE` statements (entities, relationships), each writing its rows in
/// `(id, version)` order so an id's closed versions are written before its open one.
///
/// # Limits
/// Times lie in years 0 to 9999. PostgreSQL `text` and `jsonb` cannot hold NUL characters: a
/// name or properties containing one are refused by the server and nothing is written.
#[derive(Clone)]
pub struct PostgresGraphStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresGraphStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresGraphStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// The earliest and latest instants a query bound needs: one nanosecond outside the years 0
/// to 9999 that stored times lie in, so clamping a bound to them keeps every comparison with a
/// stored time.
const BOUNDS: (OffsetDateTime, OffsetDateTime) = (
    datetime!(-0001-12-31 23:59:59.999_999_999 UTC),
    datetime!(9999-12-31 23:59:59.999_999_999 UTC),
);

/// `t` as a query bound in UTC, clamped to [`BOUNDS`], split for the `(time, ns)` columns.
fn bound(t: OffsetDateTime) -> (OffsetDateTime, i16) {
    let t = match t.checked_to_offset(UtcOffset::UTC) {
        Some(t) => t.clamp(BOUNDS.0, BOUNDS.1),
        None if t.year() < 0 => BOUNDS.0,
        None => BOUNDS.1,
    };
    split(t)
}

/// Which versions a read sees.
#[derive(Debug, Clone, Copy)]
enum View {
    /// The current version, if it is valid at `now`.
    Current { now: OffsetDateTime },
    /// The version matching both axes.
    AsOf(AsOf),
}

impl View {
    fn new(as_of: Option<AsOf>) -> View {
        match as_of {
            Some(as_of) => View::AsOf(as_of),
            None => View::Current {
                now: OffsetDateTime::now_utc(),
            },
        }
    }

    /// Appends the view's condition on the table named `v` (entities or relationships) to
    /// `sql`.
    fn push(&self, sql: &mut QuerySql) {
        match *self {
            View::Current { now } => {
                let (at, ns) = bound(now);
                sql.push(sql::CURRENT_VIEW, vec![Box::new(at), Box::new(ns)]);
            }
            View::AsOf(as_of) => {
                let (valid_at, valid_ns) = bound(as_of.valid_at);
                let (known_at, known_ns) = bound(as_of.known_at);
                sql.push(
                    sql::AS_OF_VIEW,
                    vec![
                        Box::new(valid_at),
                        Box::new(valid_ns),
                        Box::new(known_at),
                        Box::new(known_ns),
                    ],
                );
            }
        }
    }
}

/// Checks that the times of `validity` lie in years 0 to 9999, like every stored time.
fn check_times(validity: &Validity) -> Result<()> {
    for t in [validity.valid_from, validity.valid_to]
        .into_iter()
        .flatten()
    {
        check_year("validity", t)?;
    }
    Ok(())
}

/// `t` as the `(time, ns)` parameters of a column pair that may be NULL.
fn split_opt(t: Option<OffsetDateTime>) -> (Option<OffsetDateTime>, Option<i16>) {
    t.map(split).unzip()
}

fn not_found(what: &'static str, id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("{what} not found")).with_context("id", id)
}

/// The error of a write whose defaulted `valid_from` (the time of the write) is not before
/// `valid_to`.
fn ends_before_write(valid_to: Option<OffsetDateTime>) -> Error {
    let error = Error::invalid_input("valid_to must be after valid_from (the time of the write)");
    match valid_to {
        Some(to) => error.with_context("valid_to", to),
        None => error,
    }
}

/// The first row of a statement that always returns one.
fn only_row<'r>(rows: &'r [Row], op: &'static str) -> Result<&'r Row> {
    rows.first().ok_or_else(|| {
        Error::new(ErrorKind::Backend, "the graph statement returned no row")
            .with_context("operation", op)
    })
}

impl PostgresGraphStore {
    /// A graph store on `backend`'s pool and tenant. The tables come from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresGraphStore {
        PostgresGraphStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Runs `lock` (parameters `$1` tenant, `$2` id) and then `write` in one transaction,
    /// pipelined, and returns `write`'s rows.
    async fn locked_write(
        &self,
        lock: &str,
        write: &str,
        params: &[&(dyn ToSql + Sync)],
        op: &'static str,
    ) -> Result<Vec<Row>> {
        let conn = self.backend.conn(op).await?;
        let lock = conn.statement(lock, op).await?;
        let write = conn.statement(write, op).await?;
        let client = conn.client();
        let (_, rows) = conn
            .run(
                self.backend.tenant_id(),
                op,
                futures::future::try_join(
                    client.execute(&lock, &params[..2]),
                    client.query(&write, params),
                ),
            )
            .await?;
        Ok(rows)
    }

    /// Runs `sql` (prefixed with `EXPLAIN` when `explain` is set) in a tenant transaction.
    async fn run(&self, sql: &QuerySql, explain: bool, op: &'static str) -> Result<Vec<Row>> {
        let text = if explain {
            format!("EXPLAIN {}", sql.text)
        } else {
            sql.text.clone()
        };
        query(&self.backend, &text, &sql.params(), op).await
    }

    /// Lines of a plan from `EXPLAIN` rows.
    fn plan(rows: &[Row], op: &'static str) -> Result<Vec<String>> {
        rows.iter().map(|row| Cols::new(row, op).get(0)).collect()
    }

    /// The statement reading entity `id` in `view`.
    fn entity_query(&self, id: &str, view: View) -> QuerySql {
        let mut sql = QuerySql::new(sql::SELECT_ENTITIES, self.tenant());
        sql.push(sql::ENTITY_ID, vec![Box::new(id.to_owned())]);
        view.push(&mut sql);
        sql
    }

    async fn entity_in(&self, id: &str, view: View) -> Result<Option<Entity>> {
        const OP: &str = "graph_get_entity";
        check_id("entity id", id)?;
        let rows = self.run(&self.entity_query(id, view), false, OP).await?;
        rows.first()
            .map(|row| entity_from(&Cols::new(row, OP), 0))
            .transpose()
    }

    async fn relationship_in(&self, id: &str, view: View) -> Result<Option<Relationship>> {
        const OP: &str = "graph_get_relationship";
        check_id("relationship id", id)?;
        let mut sql = QuerySql::new(sql::SELECT_RELATIONSHIPS, self.tenant());
        sql.push(sql::RELATIONSHIP_ID, vec![Box::new(id.to_owned())]);
        view.push(&mut sql);
        let rows = self.run(&sql, false, OP).await?;
        rows.first()
            .map(|row| relationship_from(&Cols::new(row, OP), 0))
            .transpose()
    }

    /// The one statement of a traversal (see `sql::TRAVERSE_START`).
    fn traverse_query(&self, start: &str, request: &TraverseRequest) -> QuerySql {
        let view = View::new(request.as_of);
        let mut sql = QuerySql::new("", self.tenant());
        sql.push(sql::TRAVERSE_START, vec![Box::new(start.to_owned())]);
        view.push(&mut sql);
        sql.push(sql::TRAVERSE_STEP, Vec::new());
        view.push(&mut sql);
        sql.push(sql::TRAVERSE_LEVEL, Vec::new());
        let steps: &[&str] = match request.direction {
            Direction::Outgoing => &[sql::TRAVERSE_OUT],
            Direction::Incoming => &[sql::TRAVERSE_IN],
            Direction::Both => &[sql::TRAVERSE_OUT, sql::TRAVERSE_IN],
        };
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                sql.push(sql::TRAVERSE_UNION, Vec::new());
            }
            sql.push(step, Vec::new());
            if let Some(types) = &request.relation_types {
                sql.push(sql::RELATION_TYPES, vec![Box::new(types.clone())]);
            }
            view.push(&mut sql);
        }
        // `validate` bounds the depth by MAX_TRAVERSE_DEPTH.
        let depth = i32::try_from(request.max_depth).unwrap_or(i32::MAX);
        sql.push(sql::TRAVERSE_NEXT, vec![Box::new(depth)]);
        sql.push(sql::TRAVERSE_HITS, Vec::new());
        view.push(&mut sql);
        sql.push(sql::TRAVERSE_ORDER, Vec::new());
        sql
    }

    /// The plan PostgreSQL chooses for [`GraphStore::get_entity_as_of`] (`EXPLAIN`, one line
    /// per row), for checking index use.
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity_as_of`].
    pub async fn explain_entity_as_of(&self, id: &str, as_of: AsOf) -> Result<Vec<String>> {
        const OP: &str = "graph_explain_entity_as_of";
        check_id("entity id", id)?;
        let rows = self
            .run(&self.entity_query(id, View::AsOf(as_of)), true, OP)
            .await?;
        Self::plan(&rows, OP)
    }

    /// The plan PostgreSQL chooses for [`GraphStore::traverse`]: one statement, a recursive
    /// CTE (`Recursive Union`) whose every iteration is one breadth-first level.
    ///
    /// # Errors
    /// As for [`GraphStore::traverse`].
    pub async fn explain_traverse(
        &self,
        start: &str,
        request: TraverseRequest,
    ) -> Result<Vec<String>> {
        const OP: &str = "graph_explain_traverse";
        check_id("start entity id", start)?;
        request.validate()?;
        let rows = self
            .run(&self.traverse_query(start, &request), true, OP)
            .await?;
        Self::plan(&rows, OP)
    }

    /// Runs a close statement (`statements`: the lock and the close) of `id` (`what` names
    /// it) at `valid_to`; returns its rows, or `None` when `id` has no version.
    async fn close(
        &self,
        statements: (&str, &str),
        what: &'static str,
        id: &str,
        valid_to: OffsetDateTime,
        op: &'static str,
    ) -> Result<Option<Vec<Row>>> {
        check_id(what, id)?;
        let valid_to = to_utc("valid_to", valid_to)?;
        check_year("validity", valid_to)?;
        let (now_at, now_ns) = split(OffsetDateTime::now_utc());
        let (to_at, to_ns) = split(valid_to);
        let tenant = self.tenant();
        let rows = self
            .locked_write(
                statements.0,
                statements.1,
                &[&tenant, &id, &now_at, &now_ns, &to_at, &to_ns],
                op,
            )
            .await?;
        let found: bool = Cols::new(only_row(&rows, op)?, op).get(0)?;
        Ok(found.then_some(rows))
    }
}

/// The version a close statement wrote, or why it wrote none: the current version starts at
/// or after `valid_to`.
fn closed<T>(
    rows: &[Row],
    valid_to: OffsetDateTime,
    op: &'static str,
    read: fn(&Cols<'_>, usize) -> Result<T>,
) -> Result<T> {
    let cols = Cols::new(only_row(rows, op)?, op);
    if cols.get::<Option<String>>(1)?.is_none() {
        return Err(Error::invalid_input(
            "valid_to must be after the current version's valid_from",
        )
        .with_context("valid_to", valid_to));
    }
    read(&cols, 1)
}

#[async_trait]
impl GraphStore for PostgresGraphStore {
    async fn upsert_entity(&self, input: EntityInput) -> Result<Entity> {
        const OP: &str = "graph_upsert_entity";
        let validity = input.validate()?;
        check_times(&validity)?;
        let (now_at, now_ns) = split(OffsetDateTime::now_utc());
        let (from_at, from_ns) = split_opt(validity.valid_from);
        let (to_at, to_ns) = split_opt(validity.valid_to);
        let properties = Json(&input.properties);
        let tenant = self.tenant();
        let rows = self
            .locked_write(
                sql::LOCK_ENTITY,
                sql::UPSERT_ENTITY,
                &[
                    &tenant,
                    &input.id,
                    &now_at,
                    &now_ns,
                    &input.entity_type,
                    &input.name,
                    &properties,
                    &from_at,
                    &from_ns,
                    &to_at,
                    &to_ns,
                ],
                OP,
            )
            .await?;
        match rows.first() {
            Some(row) => entity_from(&Cols::new(row, OP), 0),
            None => Err(ends_before_write(validity.valid_to)),
        }
    }

    async fn close_entity(&self, id: &str, valid_to: OffsetDateTime) -> Result<Entity> {
        const OP: &str = "graph_close_entity";
        let statements = (sql::LOCK_ENTITY, sql::CLOSE_ENTITY);
        match self
            .close(statements, "entity id", id, valid_to, OP)
            .await?
        {
            Some(rows) => closed(&rows, valid_to, OP, entity_from),
            None => Err(not_found("entity", id)),
        }
    }

    async fn get_entity(&self, id: &str) -> Result<Option<Entity>> {
        self.entity_in(id, View::new(None)).await
    }

    async fn get_entity_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Entity>> {
        self.entity_in(id, View::AsOf(as_of)).await
    }

    async fn entity_history(&self, id: &str) -> Result<Vec<Entity>> {
        const OP: &str = "graph_entity_history";
        check_id("entity id", id)?;
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::ENTITY_HISTORY, &[&tenant, &id], OP).await?;
        rows.iter()
            .map(|row| entity_from(&Cols::new(row, OP), 0))
            .collect()
    }

    async fn list_entities(
        &self,
        entity_type: Option<&str>,
        as_of: Option<AsOf>,
        page: PageRequest,
    ) -> Result<Page<Entity>> {
        const OP: &str = "graph_list_entities";
        page.validate()?;
        let mut sql = QuerySql::new(sql::SELECT_ENTITIES, self.tenant());
        if let Some(entity_type) = entity_type {
            check_id("entity type", entity_type)?;
            sql.push(sql::ENTITY_TYPE, vec![Box::new(entity_type.to_owned())]);
        }
        if let Some(after) = &page.after {
            sql.push(sql::ENTITY_AFTER, vec![Box::new(after.clone())]);
        }
        View::new(as_of).push(&mut sql);
        // One more than the page, to know whether another follows.
        let limit = bigint(page.limit as u64 + 1);
        sql.push(sql::ENTITY_ORDER_LIMIT, vec![Box::new(limit)]);
        let rows = self.run(&sql, false, OP).await?;
        let mut items = rows
            .iter()
            .map(|row| entity_from(&Cols::new(row, OP), 0))
            .collect::<Result<Vec<_>>>()?;
        let next_after = if items.len() > page.limit {
            items.truncate(page.limit);
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }

    async fn upsert_relationship(&self, input: RelationshipInput) -> Result<Relationship> {
        const OP: &str = "graph_upsert_relationship";
        let validity = input.validate()?;
        check_times(&validity)?;
        let (now_at, now_ns) = split(OffsetDateTime::now_utc());
        let (from_at, from_ns) = split_opt(validity.valid_from);
        let (to_at, to_ns) = split_opt(validity.valid_to);
        let properties = Json(&input.properties);
        let tenant = self.tenant();
        let rows = self
            .locked_write(
                sql::LOCK_RELATIONSHIP,
                sql::UPSERT_RELATIONSHIP,
                &[
                    &tenant,
                    &input.id,
                    &now_at,
                    &now_ns,
                    &input.from,
                    &input.to,
                    &input.relation_type,
                    &properties,
                    &from_at,
                    &from_ns,
                    &to_at,
                    &to_ns,
                ],
                OP,
            )
            .await?;
        let cols = Cols::new(only_row(&rows, OP)?, OP);
        for (i, end) in [(0, &input.from), (1, &input.to)] {
            if !cols.get::<bool>(i)? {
                return Err(not_found("relationship endpoint entity", end));
            }
        }
        if !cols.get::<bool>(2)? {
            return Err(Error::invalid_input(
                "a relationship's from, to and relation_type cannot change",
            )
            .with_context("id", &input.id));
        }
        if cols.get::<Option<String>>(3)?.is_none() {
            return Err(ends_before_write(validity.valid_to));
        }
        relationship_from(&cols, 3)
    }

    async fn close_relationship(&self, id: &str, valid_to: OffsetDateTime) -> Result<Relationship> {
        const OP: &str = "graph_close_relationship";
        let statements = (sql::LOCK_RELATIONSHIP, sql::CLOSE_RELATIONSHIP);
        match self
            .close(statements, "relationship id", id, valid_to, OP)
            .await?
        {
            Some(rows) => closed(&rows, valid_to, OP, relationship_from),
            None => Err(not_found("relationship", id)),
        }
    }

    async fn get_relationship(&self, id: &str) -> Result<Option<Relationship>> {
        self.relationship_in(id, View::new(None)).await
    }

    async fn get_relationship_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Relationship>> {
        self.relationship_in(id, View::AsOf(as_of)).await
    }

    async fn relationship_history(&self, id: &str) -> Result<Vec<Relationship>> {
        const OP: &str = "graph_relationship_history";
        check_id("relationship id", id)?;
        let tenant = self.tenant();
        let rows = query(
            &self.backend,
            sql::RELATIONSHIP_HISTORY,
            &[&tenant, &id],
            OP,
        )
        .await?;
        rows.iter()
            .map(|row| relationship_from(&Cols::new(row, OP), 0))
            .collect()
    }

    async fn relationships_of(
        &self,
        id: &str,
        direction: Direction,
        relation_type: Option<&str>,
        as_of: Option<AsOf>,
    ) -> Result<Vec<Relationship>> {
        const OP: &str = "graph_relationships_of";
        check_id("entity id", id)?;
        let ends = match direction {
            Direction::Outgoing => sql::RELATIONSHIP_ENDS[0],
            Direction::Incoming => sql::RELATIONSHIP_ENDS[1],
            Direction::Both => sql::RELATIONSHIP_ENDS[2],
        };
        let mut sql = QuerySql::new(sql::SELECT_RELATIONSHIPS, self.tenant());
        sql.push(ends, vec![Box::new(id.to_owned())]);
        if let Some(relation_type) = relation_type {
            check_id("relation type", relation_type)?;
            sql.push(sql::RELATION_TYPE, vec![Box::new(relation_type.to_owned())]);
        }
        View::new(as_of).push(&mut sql);
        sql.push(sql::RELATIONSHIP_ORDER, Vec::new());
        let rows = self.run(&sql, false, OP).await?;
        rows.iter()
            .map(|row| relationship_from(&Cols::new(row, OP), 0))
            .collect()
    }

    async fn traverse(&self, start: &str, request: TraverseRequest) -> Result<Vec<TraversalHit>> {
        const OP: &str = "graph_traverse";
        check_id("start entity id", start)?;
        request.validate()?;
        let rows = self
            .run(&self.traverse_query(start, &request), false, OP)
            .await?;
        rows.iter()
            .map(|row| {
                let cols = Cols::new(row, OP);
                let depth: i32 = cols.get(0)?;
                Ok(TraversalHit {
                    depth: usize::try_from(depth)
                        .map_err(|_| Error::corruption("traversal depth is negative"))?,
                    path: cols.get(1)?,
                    relationships: cols.get(2)?,
                    entity: entity_from(&cols, 3)?,
                })
            })
            .collect()
    }
}

/// Where an export stands: the kind, id and version of the last version exported.
#[derive(Debug, Serialize, Deserialize)]
enum Position {
    Entity(String, u64),
    Relationship(String, u64),
}

impl Position {
    fn of(record: &GraphRecord) -> Position {
        match record {
            GraphRecord::Entity(e) => Position::Entity(e.id.clone(), e.version),
            GraphRecord::Relationship(r) => Position::Relationship(r.id.clone(), r.version),
        }
    }
}

/// The time columns of imported versions, one array per column.
#[derive(Default)]
struct TimeColumns {
    valid_from: Vec<OffsetDateTime>,
    valid_from_ns: Vec<i16>,
    valid_to: Vec<Option<OffsetDateTime>>,
    valid_to_ns: Vec<Option<i16>>,
    recorded_at: Vec<OffsetDateTime>,
    recorded_ns: Vec<i16>,
    superseded_at: Vec<Option<OffsetDateTime>>,
    superseded_ns: Vec<Option<i16>>,
}

impl TimeColumns {
    fn push(&mut self, time: &Bitemporal) {
        let (at, ns) = split(time.valid_from);
        self.valid_from.push(at);
        self.valid_from_ns.push(ns);
        let (at, ns) = split_opt(time.valid_to);
        self.valid_to.push(at);
        self.valid_to_ns.push(ns);
        let (at, ns) = split(time.recorded_at);
        self.recorded_at.push(at);
        self.recorded_ns.push(ns);
        let (at, ns) = split_opt(time.superseded_at);
        self.superseded_at.push(at);
        self.superseded_ns.push(ns);
    }

    /// The arrays in the order of the import statements' time parameters.
    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.valid_from,
            &self.valid_from_ns,
            &self.valid_to,
            &self.valid_to_ns,
            &self.recorded_at,
            &self.recorded_ns,
            &self.superseded_at,
            &self.superseded_ns,
        ]
    }
}

/// The portable record of a version is a [`GraphRecord`]; the order and the writes are in the
/// type's docs.
#[async_trait]
impl PortableStore for PostgresGraphStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        const OP: &str = "graph_export";
        let fetch = export_fetch(limit)?;
        let after: Option<Position> = after.map(decode_cursor).transpose()?;
        let tenant = self.tenant();
        let mut versions = Vec::new();
        let relationships_after = match after {
            Some(Position::Relationship(id, version)) => Some((id, bigint(version))),
            entity => {
                let (id, version) = match entity {
                    Some(Position::Entity(id, version)) => (Some(id), bigint(version)),
                    _ => (None, 0),
                };
                let params: [&(dyn ToSql + Sync); 4] = [&tenant, &id, &version, &fetch];
                for row in query(&self.backend, sql::EXPORT_ENTITIES, &params, OP).await? {
                    versions.push(GraphRecord::Entity(entity_from(&Cols::new(&row, OP), 0)?));
                }
                None
            }
        };
        // `fetch` is at most MAX_EXPORT_PAGE + 1, so the count fits.
        let room = fetch - versions.len() as i64;
        if room > 0 {
            let (id, version) = relationships_after.unzip();
            let version = version.unwrap_or(0);
            let params: [&(dyn ToSql + Sync); 4] = [&tenant, &id, &version, &room];
            for row in query(&self.backend, sql::EXPORT_RELATIONSHIPS, &params, OP).await? {
                let rel = relationship_from(&Cols::new(&row, OP), 0)?;
                versions.push(GraphRecord::Relationship(rel));
            }
        }
        page_of(
            versions,
            limit,
            |version| encode_portable(version, &[]),
            |last| encode_cursor(&Position::of(last)),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut entities = BTreeMap::new();
        let mut relationships = BTreeMap::new();
        for record in records {
            let (version, _): (GraphRecord, _) = decode_portable(record)?;
            check_graph_record(&version)?;
            match version {
                GraphRecord::Entity(e) => {
                    entities.insert((e.id.clone(), e.version), e);
                }
                GraphRecord::Relationship(r) => {
                    relationships.insert((r.id.clone(), r.version), r);
                }
            }
        }
        if entities.is_empty() && relationships.is_empty() {
            return Ok(());
        }
        let tenant = self.tenant();

        let (mut ids, mut versions, mut types) = (Vec::new(), Vec::new(), Vec::new());
        let (mut names, mut properties, mut times) =
            (Vec::new(), Vec::new(), TimeColumns::default());
        for entity in entities.into_values() {
            times.push(&entity.time);
            ids.push(entity.id);
            // Checked to fit a `bigint`.
            versions.push(bigint(entity.version));
            types.push(entity.entity_type);
            names.push(entity.name);
            properties.push(Value::Object(entity.properties));
        }
        let mut entity_params: Vec<&(dyn ToSql + Sync)> =
            vec![&tenant, &ids, &versions, &types, &names, &properties];
        entity_params.extend(times.params());

        let (mut rel_ids, mut rel_versions, mut froms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut tos, mut rel_types, mut rel_properties) = (Vec::new(), Vec::new(), Vec::new());
        let mut rel_times = TimeColumns::default();
        for rel in relationships.into_values() {
            rel_times.push(&rel.time);
            rel_ids.push(rel.id);
            rel_versions.push(bigint(rel.version));
            froms.push(rel.from);
            tos.push(rel.to);
            rel_types.push(rel.relation_type);
            rel_properties.push(Value::Object(rel.properties));
        }
        let mut rel_params: Vec<&(dyn ToSql + Sync)> = vec![
            &tenant,
            &rel_ids,
            &rel_versions,
            &froms,
            &tos,
            &rel_types,
            &rel_properties,
        ];
        rel_params.extend(rel_times.params());

        execute_two(
            &self.backend,
            (sql::IMPORT_ENTITIES, &entity_params),
            (sql::IMPORT_RELATIONSHIPS, &rel_params),
            "graph_import",
        )
        .await?;
        Ok(())
    }
}
