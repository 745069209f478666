//! [`PostgresVectorStore`]: [`VectorStore`] on pgvector tables with HNSW indexes.
//!
//! Layout (migrations `0002_vectors_events.sql`, `0007_vector_dimensions_event_retention.sql`):
//! `vector_collections` holds one row per collection; vectors live in one table per dimension,
//! `vector_embeddings_<dimension>`: 384, 768, 1536 and 3072 exist from the start, every other
//! dimension's table is created by the first collection of that dimension.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend, check_batch_len};
use cairn_stores::codec::check_id;
use cairn_stores::portable::{ExportPage, PortableStore};
use cairn_stores::vectors::{
    CollectionInfo, Metadata, Metric, SearchHit, SearchRequest, VectorExportSource, VectorRecord,
    VectorStore, check_dimension, check_import_into, check_vector, decode_vector_import,
    export_vectors,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::backend::{MAX_STATEMENT_PAYLOAD_BYTES, PostgresBackend};
use crate::error;
use crate::stores::{bigint, query};

/// `hnsw.ef_search` of a search that does not set [`SearchRequest::ef_search`]: recall 0.965
/// in the measurements of DESIGN.md §3 (pgvector's own default, 40, gave 0.896).
pub const VECTOR_DEFAULT_EF_SEARCH: usize = 100;

/// Largest magnitude of a `halfvec` component: vectors of 2001 to 4000 dimensions are indexed
/// as `halfvec`, so their components must fit.
const HALFVEC_MAX: f32 = 65_504.0;

/// A [`VectorStore`] on PostgreSQL with pgvector, scoped to the tenant of the
/// [`PostgresBackend`] it was built on.
///
/// # How it searches
/// - Dimensions 1 to 2000: an HNSW index (m = 16, ef_construction = 128) per metric.
///   The search sets `hnsw.ef_search` (from [`SearchRequest::ef_search`], else
///   [`VECTOR_DEFAULT_EF_SEARCH`]) and `hnsw.iterative_scan = relaxed_order` for its
///   transaction only, so the tenant, collection and metadata filters never starve `k`: the
///   index scan continues until enough rows pass (up to pgvector's `hnsw.max_scan_tuples`).
///   It takes `max(k, ef_search)` candidates ordered by the index, then orders them exactly by
///   distance and id and keeps `k`.
/// - Dimensions 2001 to 4000 (3072 among them): the same, through an HNSW index on
///   `embedding::halfvec(N)`; the candidates are re-ranked by the exact `vector` distance.
///   Components must lie within ±65504 (the `halfvec` range).
/// - Dimensions 4001 to 16000, and any search with [`SearchRequest::exact`]: an exact scan of
///   the collection's rows, ordered by distance and id (pgvector indexes at most 4000
///   dimensions; the exact statement names no metric, so no partial HNSW index applies).
///
/// Each dimension has its own table, created (with its indexes and row-level security) in the
/// transaction of the first `create_collection` of that dimension, safely under concurrency.
///
/// Metadata filters run in SQL: `metadata @> $filter` (served by a GIN index) plus an exact
/// equality check per filter key, so `{"tags": ["a"]}` does not match `["a", "b"]`.
/// `min_score` is applied to the ordered hits before they are returned; since hits are ordered
/// by score, that equals applying it before the limit.
///
/// Every operation first reads the collection row (one round trip), then runs its statement
/// (one more; a bulk upsert is one `INSERT … SELECT FROM unnest(…)` statement).
#[derive(Clone)]
pub struct PostgresVectorStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresVectorStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Largest dimension pgvector indexes as `vector` (HNSW).
const VECTOR_INDEX_MAX_DIMENSION: usize = 2_000;

/// Largest dimension pgvector indexes as `halfvec` (HNSW).
const HALFVEC_INDEX_MAX_DIMENSION: usize = 4_000;

/// Where a collection's vectors live: `vector_embeddings_<dimension>`, a table per dimension
/// (384, 768, 1536 and 3072 from migration 0002, every other one created on first use by
/// `cairn_ensure_vector_table`, migration 0007). The name is built from the integer only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    dimension: usize,
}

/// How a table's HNSW indexes (one partial index per metric) see its vectors; the rule
/// matches `cairn_ensure_vector_table` and the 0002 tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    /// On the `vector` column: dimensions up to 2000.
    Vector,
    /// On `embedding::halfvec(N)`, candidates re-ranked exactly: 2001 to 4000.
    Halfvec,
    /// None (exact scan): above 4000.
    None,
}

impl Table {
    fn for_dimension(dimension: usize) -> Table {
        Table { dimension }
    }

    fn name(self) -> String {
        format!("vector_embeddings_{}", self.dimension)
    }

    /// The type a `real[]` is cast to for this table's column.
    fn vector_type(self) -> String {
        format!("vector({})", self.dimension)
    }

    fn index(self) -> Index {
        match self.dimension {
            d if d <= VECTOR_INDEX_MAX_DIMENSION => Index::Vector,
            d if d <= HALFVEC_INDEX_MAX_DIMENSION => Index::Halfvec,
            _ => Index::None,
        }
    }
}

/// The name stored in the `metric` columns.
fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "cosine",
        Metric::L2 => "l2",
        Metric::Dot => "dot",
    }
}

fn parse_metric(name: &str) -> Result<Metric> {
    match name {
        "cosine" => Ok(Metric::Cosine),
        "l2" => Ok(Metric::L2),
        "dot" => Ok(Metric::Dot),
        other => Err(Error::corruption("vector collection has an unknown metric")
            .with_context("metric", other)),
    }
}

/// pgvector's distance operator for `metric`: cosine distance, Euclidean distance, negative
/// inner product. Smaller is always better.
fn operator(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "<=>",
        Metric::L2 => "<->",
        Metric::Dot => "<#>",
    }
}

/// The store's score (see `cairn_stores::vectors`) for a pgvector distance.
fn score(metric: Metric, distance: f64) -> f32 {
    let score = match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::L2 => distance,
        Metric::Dot => -distance,
    };
    score as f32
}

/// Whether `score` passes `min_score` (a minimum for cosine and dot, a maximum distance for L2).
fn passes(metric: Metric, score: f32, min_score: Option<f32>) -> bool {
    match (metric, min_score) {
        (_, None) => true,
        (Metric::L2, Some(max)) => score <= max,
        (Metric::Cosine | Metric::Dot, Some(min)) => score >= min,
    }
}

/// Every statement of the vector store. Values always travel as parameters; the only text
/// spliced in comes from [`Table`] and [`Metric`] (fixed identifiers and operators).
///
/// `$1` is always the tenant id.
mod sql {
    use cairn_stores::vectors::Metric;

    use super::{Index, Table, metric_name, operator};

    /// `$1` the dimension: creates its table unless it exists (migration 0007). First in its
    /// transaction, before anything touches `vector_collections`.
    pub(super) const ENSURE_TABLE: &str = "SELECT cairn_ensure_vector_table($1)";

    /// `$2` name, `$3` dimension, `$4` metric.
    pub(super) const CREATE_COLLECTION: &str = "\
INSERT INTO vector_collections (tenant_id, name, dimension, metric) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, name) DO NOTHING";

    /// `$2` name.
    pub(super) const COLLECTION: &str = "\
SELECT id, name, dimension, metric, created_at FROM vector_collections
WHERE tenant_id = $1 AND name = $2";

    /// `$2` the name after which to start (`''`: from the first): the next collection in name
    /// order.
    pub(super) const COLLECTION_AFTER: &str = "\
SELECT id, name, dimension, metric, created_at FROM vector_collections
WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT 1";

    /// `$2` names (`text[]`).
    pub(super) const COLLECTIONS_NAMED: &str = "\
SELECT id, name, dimension, metric, created_at FROM vector_collections
WHERE tenant_id = $1 AND name = ANY($2)";

    /// `$2` id, `$3` name, `$4` dimension, `$5` metric, `$6` creation time: an imported
    /// collection, as its records carry it.
    pub(super) const IMPORT_COLLECTION: &str = "\
INSERT INTO vector_collections (tenant_id, id, name, dimension, metric, created_at)
VALUES ($1, $2, $3, $4, $5, $6)";

    /// `$2` name. The foreign keys of the embedding tables delete the vectors in the same
    /// statement (`ON DELETE CASCADE`).
    pub(super) const DELETE_COLLECTION: &str =
        "DELETE FROM vector_collections WHERE tenant_id = $1 AND name = $2";

    /// Transaction-local HNSW settings: `$1` ef_search as text.
    pub(super) const HNSW_SETTINGS: &str = "\
SELECT set_config('hnsw.ef_search', $1, true),
       set_config('hnsw.iterative_scan', 'relaxed_order', true)";

    /// `$2` collection id, `$3` metric, `$4` every vector's components end to end (`real[]`),
    /// `$5` the dimension, `$6` ids (distinct, sorted), `$7` metadata (`jsonb[]`, same order).
    pub(super) fn upsert(table: Table) -> String {
        format!(
            "INSERT INTO {t} (tenant_id, collection_id, metric, id, embedding, metadata)
SELECT $1, $2, $3, r.id, ($4::real[])[(r.n - 1) * $5::int8 + 1 : r.n * $5::int8]::{v}, r.metadata
FROM unnest($6::text[], $7::jsonb[]) WITH ORDINALITY AS r(id, metadata, n)
ON CONFLICT (tenant_id, collection_id, id)
DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata",
            t = table.name(),
            v = table.vector_type(),
        )
    }

    /// `$2` collection id, `$3` vector id.
    pub(super) fn get(table: Table) -> String {
        format!(
            "SELECT embedding::real[], metadata FROM {t}
WHERE tenant_id = $1 AND collection_id = $2 AND id = $3",
            t = table.name()
        )
    }

    /// `$2` collection id, `$3` vector id.
    pub(super) fn delete(table: Table) -> String {
        format!(
            "DELETE FROM {t} WHERE tenant_id = $1 AND collection_id = $2 AND id = $3",
            t = table.name()
        )
    }

    /// `$2` collection id, `$3` the id after which to start (`''`: from the first), `$4` the
    /// limit: vectors in id order.
    pub(super) fn export(table: Table) -> String {
        format!(
            "SELECT id, embedding::real[], metadata FROM {t}
WHERE tenant_id = $1 AND collection_id = $2 AND id > $3 ORDER BY id LIMIT $4",
            t = table.name()
        )
    }

    /// `$2` collection id.
    pub(super) fn count(table: Table) -> String {
        format!(
            "SELECT count(*) FROM {t} WHERE tenant_id = $1 AND collection_id = $2",
            t = table.name()
        )
    }

    /// The metadata filter on alias `e`, `$4` the filter object: containment (GIN index),
    /// then exact equality of each filter key's value.
    const FILTER: &str = "e.metadata @> $4::jsonb
  AND NOT EXISTS (SELECT 1 FROM jsonb_each($4::jsonb) AS f(key, value)
                  WHERE e.metadata -> f.key IS DISTINCT FROM f.value)";

    /// Returns `(id, distance, metadata)` best first. `$2` collection id, `$3` query
    /// (`real[]`), then `$4` the filter when `filtered`, then k, and for indexed tables the
    /// candidates taken from the index. An empty filter leaves the filter out of the
    /// statement: the planner estimates any `@>` as selective, which would make it prefer an
    /// exact scan of the collection to the HNSW index.
    pub(super) fn search(table: Table, index: Index, metric: Metric, filtered: bool) -> String {
        let t = table.name();
        let v = table.vector_type();
        let op = operator(metric);
        let m = metric_name(metric);
        let (filter, k, c) = if filtered {
            (format!(" AND {FILTER}"), "$5", "$6")
        } else {
            (String::new(), "$4", "$5")
        };
        match index {
            Index::None => format!(
                "SELECT e.id, e.embedding {op} $3::real[]::{v} AS distance, e.metadata
FROM {t} e
WHERE e.tenant_id = $1 AND e.collection_id = $2{filter}
ORDER BY distance, e.id LIMIT {k}"
            ),
            Index::Halfvec => {
                let h = format!("halfvec({})", table.dimension);
                format!(
                    "WITH candidates AS MATERIALIZED (
  SELECT e.id, e.embedding, e.metadata FROM {t} e
  WHERE e.tenant_id = $1 AND e.collection_id = $2 AND e.metric = '{m}'{filter}
  ORDER BY (e.embedding::{h}) {op} ($3::real[]::{h}) LIMIT {c}
)
SELECT c.id, c.embedding {op} $3::real[]::{v} AS distance, c.metadata
FROM candidates c ORDER BY distance, c.id LIMIT {k}"
                )
            }
            Index::Vector => format!(
                "WITH candidates AS MATERIALIZED (
  SELECT e.id, e.embedding {op} $3::real[]::{v} AS distance, e.metadata FROM {t} e
  WHERE e.tenant_id = $1 AND e.collection_id = $2 AND e.metric = '{m}'{filter}
  ORDER BY e.embedding {op} $3::real[]::{v} LIMIT {c}
)
SELECT c.id, c.distance, c.metadata FROM candidates c ORDER BY c.distance, c.id LIMIT {k}"
            ),
        }
    }
}

/// A collection row.
#[derive(Debug)]
struct Collection {
    id: Uuid,
    info: CollectionInfo,
}

impl Collection {
    fn table(&self) -> Table {
        Table::for_dimension(self.info.dimension)
    }

    fn metric(&self) -> Metric {
        self.info.metric
    }

    /// Checks a vector against the collection, including the `halfvec` range of the 3072
    /// table's index.
    fn check(&self, vector: &[f32]) -> Result<()> {
        check_vector(vector, self.info.dimension, self.info.metric)?;
        if self.table().index() == Index::Halfvec {
            if let Some(i) = vector.iter().position(|x| x.abs() > HALFVEC_MAX) {
                return Err(Error::invalid_input(format!(
                    "vector component {i} is {}; a vector of {} dimensions is indexed as \
                     halfvec, whose components lie within ±{HALFVEC_MAX}",
                    vector[i], self.info.dimension
                )));
            }
        }
        Ok(())
    }
}

fn not_found(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, "vector collection does not exist")
        .with_context("collection", name)
}

fn collection_from(row: &Row, op: &'static str) -> Result<Collection> {
    let map = |err| error::from_pg(op, err);
    let dimension: i32 = row.try_get(2).map_err(map)?;
    let metric: &str = row.try_get(3).map_err(map)?;
    Ok(Collection {
        id: row.try_get(0).map_err(map)?,
        info: CollectionInfo {
            name: row.try_get(1).map_err(map)?,
            dimension: usize::try_from(dimension).map_err(|_| {
                Error::corruption("vector collection has a negative dimension")
                    .with_context("dimension", dimension)
            })?,
            metric: parse_metric(metric)?,
            created_at: row.try_get::<_, OffsetDateTime>(4).map_err(map)?,
        },
    })
}

/// The columns of an upsert (see [`sql::upsert`]): distinct ids in a fixed order.
struct Rows {
    components: Vec<f32>,
    dimension: i64,
    ids: Vec<String>,
    metadata: Vec<Value>,
}

impl Rows {
    /// The columns of `records` (distinct ids, in lock order) of dimension `dimension`.
    ///
    /// # Errors
    /// `InvalidInput` when the components exceed what one statement carries.
    fn new(records: impl ExactSizeIterator<Item = VectorRecord>, dimension: usize) -> Result<Rows> {
        let n = records.len();
        if n.saturating_mul(dimension).saturating_mul(4) > MAX_STATEMENT_PAYLOAD_BYTES {
            return Err(Error::invalid_input(format!(
                "batch of {n} vectors of dimension {dimension} exceeds the {} bytes one \
                 statement carries; split it",
                MAX_STATEMENT_PAYLOAD_BYTES
            )));
        }
        let mut rows = Rows {
            components: Vec::with_capacity(n * dimension),
            dimension: i64::try_from(dimension).unwrap_or(i64::MAX),
            ids: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
        };
        for record in records {
            rows.components.extend_from_slice(&record.vector);
            rows.ids.push(record.id);
            rows.metadata.push(Value::Object(record.metadata));
        }
        Ok(rows)
    }
}

fn metadata_from(value: Value) -> Result<Metadata> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::corruption(
            "stored vector metadata is not a JSON object",
        )),
    }
}

impl PostgresVectorStore {
    /// A vector store on `backend`'s pool and tenant. The tables come from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresVectorStore {
        PostgresVectorStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    async fn load(&self, name: &str, op: &'static str) -> Result<Option<Collection>> {
        check_id("collection name", name)?;
        let conn = self.backend.conn(op).await?;
        let stmt = conn.statement(sql::COLLECTION, op).await?;
        let tenant = self.tenant();
        let row = conn
            .run(
                self.backend.tenant_id(),
                op,
                conn.client().query_opt(&stmt, &[&tenant, &name]),
            )
            .await?;
        row.map(|row| collection_from(&row, op)).transpose()
    }

    async fn load_required(&self, name: &str, op: &'static str) -> Result<Collection> {
        self.load(name, op).await?.ok_or_else(|| not_found(name))
    }

    /// Writes `records` (ids checked) into `name` in one statement.
    async fn write(&self, name: &str, records: Vec<VectorRecord>) -> Result<()> {
        const OP: &str = "vector_upsert";
        let collection = self.load_required(name, OP).await?;
        for record in &records {
            collection.check(&record.vector)?;
        }
        // ON CONFLICT cannot touch a row twice in one statement: keep each id's last record.
        // The map also sorts the ids, a fixed lock order for concurrent batches.
        let last: BTreeMap<String, VectorRecord> = records
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        let Rows {
            components,
            dimension,
            ids,
            metadata,
        } = Rows::new(last.into_values(), collection.info.dimension)?;
        let table = collection.table();
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(&sql::upsert(table), OP).await?;
        let tenant = self.tenant();
        let metric = metric_name(collection.metric());
        let params: [&(dyn ToSql + Sync); 7] = [
            &tenant,
            &collection.id,
            &metric,
            &components,
            &dimension,
            &ids,
            &metadata,
        ];
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &params),
        )
        .await
        .map_err(|err| match err.kind() {
            // The foreign key found no collection: it was deleted since it was read.
            ErrorKind::NotFound => not_found(name).with_source(err),
            _ => err,
        })?;
        Ok(())
    }
    /// The plan PostgreSQL picks for `request` on `collection`: the lines of `EXPLAIN` for the
    /// search statement, run in the same transaction setup as [`VectorStore::search`] (tenant,
    /// `hnsw.ef_search`, `hnsw.iterative_scan`), with the request's values. For checking that
    /// a search uses its HNSW index.
    ///
    /// # Errors
    /// As [`VectorStore::search`].
    pub async fn explain_search(
        &self,
        collection: &str,
        request: SearchRequest,
    ) -> Result<Vec<String>> {
        let (_, rows) = self.run_search(collection, request, true).await?;
        rows.iter()
            .map(|row| {
                row.try_get(0)
                    .map_err(|err| error::from_pg("vector_explain_search", err))
            })
            .collect()
    }

    /// The rows of `request` on `collection`, ordered best first: the statement runs as
    /// itself, or prefixed with `EXPLAIN` when `explain` is set (then each row is one line of
    /// the plan).
    async fn run_search(
        &self,
        collection: &str,
        request: SearchRequest,
        explain: bool,
    ) -> Result<(Collection, Vec<Row>)> {
        const OP: &str = "vector_search";
        let loaded = self.load_required(collection, OP).await?;
        request.validate(&loaded.info)?;
        loaded.check(&request.vector)?;
        let table = loaded.table();
        let metric = loaded.metric();
        let ef_search = request.ef_search.unwrap_or(VECTOR_DEFAULT_EF_SEARCH);
        let k = i64::try_from(request.k).unwrap_or(i64::MAX);
        let candidates = i64::try_from(request.k.max(ef_search)).unwrap_or(i64::MAX);
        let filtered = !request.filter.is_empty();
        // The exact statement names no metric, so no (partial) HNSW index applies to it.
        let index = if request.exact {
            Index::None
        } else {
            table.index()
        };
        let filter = Value::Object(request.filter);
        let conn = self.backend.conn(OP).await?;
        let settings = conn.statement(sql::HNSW_SETTINGS, OP).await?;
        let text = sql::search(table, index, metric, filtered);
        let text = if explain {
            format!("EXPLAIN {text}")
        } else {
            text
        };
        let stmt = conn.statement(&text, OP).await?;
        let client = conn.client();
        let tenant = self.tenant();
        let ef_text = ef_search.to_string();
        let settings_params: [&(dyn ToSql + Sync); 1] = [&ef_text];
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant, &loaded.id, &request.vector];
        if filtered {
            params.push(&filter);
        }
        params.push(&k);
        if index != Index::None {
            params.push(&candidates);
        }
        let rows = conn
            .run(self.backend.tenant_id(), OP, async {
                if index == Index::None {
                    return client.query(&stmt, &params).await;
                }
                let (set, rows) = futures::join!(
                    client.execute(&settings, &settings_params),
                    client.query(&stmt, &params),
                );
                set?;
                rows
            })
            .await?;
        Ok((loaded, rows))
    }
}

#[async_trait]
impl VectorStore for PostgresVectorStore {
    async fn create_collection(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<CollectionInfo> {
        const OP: &str = "vector_create_collection";
        check_id("collection name", name)?;
        check_dimension(dimension)?;
        let dim =
            i32::try_from(dimension).map_err(|_| Error::invalid_input("dimension too large"))?;
        let conn = self.backend.conn(OP).await?;
        let ensure = conn.statement(sql::ENSURE_TABLE, OP).await?;
        let insert = conn.statement(sql::CREATE_COLLECTION, OP).await?;
        let select = conn.statement(sql::COLLECTION, OP).await?;
        let client = conn.client();
        let tenant = self.tenant();
        let metric_text = metric_name(metric);
        let ensure_params: [&(dyn ToSql + Sync); 1] = [&dim];
        let insert_params: [&(dyn ToSql + Sync); 4] = [&tenant, &name, &dim, &metric_text];
        let select_params: [&(dyn ToSql + Sync); 2] = [&tenant, &name];
        // Create the dimension's table unless it exists, insert the collection unless
        // present, then read whichever row won, in one round trip.
        let row = conn
            .run(self.backend.tenant_id(), OP, async {
                let (ensured, inserted, row) = futures::join!(
                    client.query_one(&ensure, &ensure_params),
                    client.execute(&insert, &insert_params),
                    client.query_one(&select, &select_params),
                );
                ensured?;
                inserted?;
                row
            })
            .await?;
        let existing = collection_from(&row, OP)?.info;
        if existing.dimension != dimension || existing.metric != metric {
            return Err(Error::conflict(format!(
                "collection exists with dimension {} and metric {:?}",
                existing.dimension, existing.metric
            ))
            .with_context("collection", name));
        }
        Ok(existing)
    }

    async fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        Ok(self
            .load(name, "vector_collection")
            .await?
            .map(|collection| collection.info))
    }

    async fn delete_collection(&self, name: &str) -> Result<bool> {
        const OP: &str = "vector_delete_collection";
        check_id("collection name", name)?;
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::DELETE_COLLECTION, OP).await?;
        let tenant = self.tenant();
        let deleted = conn
            .run(
                self.backend.tenant_id(),
                OP,
                conn.client().execute(&stmt, &[&tenant, &name]),
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        vector: Vec<f32>,
        metadata: Metadata,
    ) -> Result<()> {
        check_id("vector id", id)?;
        let record = VectorRecord {
            id: id.to_owned(),
            vector,
            metadata,
        };
        self.write(collection, vec![record]).await
    }

    async fn upsert_batch(&self, collection: &str, records: Vec<VectorRecord>) -> Result<()> {
        check_batch_len(records.len())?;
        for record in &records {
            check_id("vector id", &record.id)?;
        }
        if records.is_empty() {
            // Still report a missing collection.
            self.load_required(collection, "vector_upsert").await?;
            return Ok(());
        }
        self.write(collection, records).await
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<VectorRecord>> {
        const OP: &str = "vector_get";
        check_id("vector id", id)?;
        let loaded = self.load_required(collection, OP).await?;
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(&sql::get(loaded.table()), OP).await?;
        let tenant = self.tenant();
        let row = conn
            .run(
                self.backend.tenant_id(),
                OP,
                conn.client().query_opt(&stmt, &[&tenant, &loaded.id, &id]),
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let map = |err| error::from_pg(OP, err);
        Ok(Some(VectorRecord {
            id: id.to_owned(),
            vector: row.try_get(0).map_err(map)?,
            metadata: metadata_from(row.try_get(1).map_err(map)?)?,
        }))
    }

    async fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        const OP: &str = "vector_delete";
        check_id("vector id", id)?;
        let loaded = self.load_required(collection, OP).await?;
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(&sql::delete(loaded.table()), OP).await?;
        let tenant = self.tenant();
        let deleted = conn
            .run(
                self.backend.tenant_id(),
                OP,
                conn.client().execute(&stmt, &[&tenant, &loaded.id, &id]),
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn count(&self, collection: &str) -> Result<u64> {
        const OP: &str = "vector_count";
        let loaded = self.load_required(collection, OP).await?;
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(&sql::count(loaded.table()), OP).await?;
        let tenant = self.tenant();
        let row = conn
            .run(
                self.backend.tenant_id(),
                OP,
                conn.client().query_one(&stmt, &[&tenant, &loaded.id]),
            )
            .await?;
        let count: i64 = row.try_get(0).map_err(|err| error::from_pg(OP, err))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<SearchHit>> {
        const OP: &str = "vector_search";
        let min_score = request.min_score;
        let (loaded, rows) = self.run_search(collection, request, false).await?;
        let metric = loaded.metric();
        let map = |err| error::from_pg(OP, err);
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let distance: f64 = row.try_get(1).map_err(map)?;
            let score = score(metric, distance);
            if !passes(metric, score, min_score) {
                // Hits come best first: every later one fails too.
                break;
            }
            hits.push(SearchHit {
                id: row.try_get(0).map_err(map)?,
                score,
                metadata: metadata_from(row.try_get(2).map_err(map)?)?,
            });
        }
        Ok(hits)
    }
}

/// The native store as an export reads it.
struct Export<'a>(&'a PostgresVectorStore);

#[async_trait]
impl VectorExportSource for Export<'_> {
    type Collection = Collection;

    fn info(collection: &Collection) -> &CollectionInfo {
        &collection.info
    }

    async fn collection_named(&self, name: &str) -> Result<Option<Collection>> {
        self.0.load(name, "vector_export").await
    }

    async fn collection_after(&self, after: Option<&str>) -> Result<Option<Collection>> {
        const OP: &str = "vector_export";
        let tenant = self.0.tenant();
        let after = after.unwrap_or_default();
        let rows = query(
            &self.0.backend,
            sql::COLLECTION_AFTER,
            &[&tenant, &after],
            OP,
        )
        .await?;
        rows.first().map(|row| collection_from(row, OP)).transpose()
    }

    async fn vectors_after(
        &self,
        collection: &Collection,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VectorRecord>> {
        const OP: &str = "vector_export";
        let tenant = self.0.tenant();
        let after = after.unwrap_or_default();
        let limit = bigint(limit as u64);
        let rows = query(
            &self.0.backend,
            &sql::export(collection.table()),
            &[&tenant, &collection.id, &after, &limit],
            OP,
        )
        .await?;
        let map = |err| error::from_pg(OP, err);
        rows.iter()
            .map(|row| {
                Ok(VectorRecord {
                    id: row.try_get(0).map_err(map)?,
                    vector: row.try_get(1).map_err(map)?,
                    metadata: metadata_from(row.try_get(2).map_err(map)?)?,
                })
            })
            .collect()
    }
}

/// One collection an import writes to.
struct ImportTarget {
    collection: Collection,
    /// Whether the import creates it.
    create: bool,
    rows: Rows,
}

/// The records of [`cairn_stores::vectors::PortableVector`], byte-identical to the generic
/// store's. An import is one transaction: the tables of new dimensions, the missing
/// collections (with the creation time the records carry), then one upsert per collection.
#[async_trait]
impl PortableStore for PostgresVectorStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        export_vectors(&Export(self), after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        const OP: &str = "vector_import";
        let plan = decode_vector_import(records)?;
        if plan.is_empty() {
            return Ok(());
        }
        let tenant = self.tenant();
        let names: Vec<&str> = plan
            .iter()
            .map(|import| import.info.name.as_str())
            .collect();
        let mut existing = BTreeMap::new();
        for row in query(
            &self.backend,
            sql::COLLECTIONS_NAMED,
            &[&tenant, &names],
            OP,
        )
        .await?
        {
            let collection = collection_from(&row, OP)?;
            existing.insert(collection.info.name.clone(), collection);
        }
        let mut targets = Vec::with_capacity(plan.len());
        for import in plan {
            let (collection, create) = match existing.remove(&import.info.name) {
                Some(collection) => {
                    check_import_into(&collection.info, &import.info)?;
                    (collection, false)
                }
                None if import.info.created_at.nanosecond() % 1_000 != 0 => {
                    // The table keeps microseconds; rounding would make the copy differ.
                    return Err(Error::invalid_input(
                        "this collection's creation time has nanoseconds, which the PostgreSQL \
                         store cannot hold (it keeps microseconds; collections created by this \
                         version of Cairn always fit)",
                    )
                    .with_context("collection", &import.info.name));
                }
                None => (
                    Collection {
                        id: Uuid::now_v7(),
                        info: import.info,
                    },
                    true,
                ),
            };
            for record in &import.vectors {
                collection
                    .check(&record.vector)
                    .map_err(|e| e.with_context("id", &record.id))?;
            }
            let rows = Rows::new(import.vectors.into_iter(), collection.info.dimension)?;
            targets.push(ImportTarget {
                collection,
                create,
                rows,
            });
        }
        let created: Vec<&ImportTarget> = targets.iter().filter(|t| t.create).collect();
        let mut dimensions = Vec::new();
        for target in &created {
            dimensions.push(
                i32::try_from(target.collection.info.dimension)
                    .map_err(|_| Error::invalid_input("dimension too large"))?,
            );
        }
        dimensions.sort_unstable();
        dimensions.dedup();
        let created_columns: Vec<(&Uuid, &str, i32, &str, &time::OffsetDateTime)> = created
            .iter()
            .map(|target| {
                let info = &target.collection.info;
                (
                    &target.collection.id,
                    info.name.as_str(),
                    // Checked above for every created collection.
                    i32::try_from(info.dimension).unwrap_or(i32::MAX),
                    metric_name(info.metric),
                    &info.created_at,
                )
            })
            .collect();
        let written: Vec<&ImportTarget> =
            targets.iter().filter(|t| !t.rows.ids.is_empty()).collect();
        let metrics: Vec<&str> = written
            .iter()
            .map(|t| metric_name(t.collection.metric()))
            .collect();

        let conn = self.backend.conn(OP).await?;
        let client = conn.client();
        if !dimensions.is_empty() {
            // The tables first, committed on their own (as `create_collection` would leave
            // them): the upserts below can only be prepared once their tables exist.
            let ensure = conn.statement(sql::ENSURE_TABLE, OP).await?;
            let params: Vec<[&(dyn ToSql + Sync); 1]> = dimensions
                .iter()
                .map(|dimension| [dimension as _])
                .collect();
            conn.run(
                self.backend.tenant_id(),
                OP,
                futures::future::try_join_all(
                    params
                        .iter()
                        .map(|params| client.query_one(&ensure, params)),
                ),
            )
            .await?;
        }
        let insert = conn.statement(sql::IMPORT_COLLECTION, OP).await?;
        let mut upserts = Vec::with_capacity(written.len());
        for target in &written {
            upserts.push(
                conn.statement(&sql::upsert(target.collection.table()), OP)
                    .await?,
            );
        }
        // In order: the collections, then their vectors; all sent at once, one round trip.
        let mut statements: Vec<(&tokio_postgres::Statement, Vec<&(dyn ToSql + Sync)>)> =
            Vec::new();
        for (id, name, dimension, metric, created_at) in &created_columns {
            statements.push((
                &insert,
                vec![&tenant, *id, name, dimension, metric, *created_at],
            ));
        }
        for ((target, stmt), metric) in written.iter().zip(&upserts).zip(&metrics) {
            let rows = &target.rows;
            statements.push((
                stmt,
                vec![
                    &tenant,
                    &target.collection.id,
                    metric,
                    &rows.components,
                    &rows.dimension,
                    &rows.ids,
                    &rows.metadata,
                ],
            ));
        }
        conn.run_all(self.backend.tenant_id(), OP, &statements)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_route_to_their_tables_and_index_kinds() {
        assert_eq!(Table::for_dimension(384).name(), "vector_embeddings_384");
        assert_eq!(Table::for_dimension(7).vector_type(), "vector(7)");
        assert_eq!(Table::for_dimension(2000).index(), Index::Vector);
        assert_eq!(Table::for_dimension(2001).index(), Index::Halfvec);
        assert_eq!(Table::for_dimension(3072).index(), Index::Halfvec);
        assert_eq!(Table::for_dimension(4000).index(), Index::Halfvec);
        assert_eq!(Table::for_dimension(4001).index(), Index::None);
    }

    #[test]
    fn scores_follow_the_store_convention() {
        assert!((score(Metric::Cosine, 0.25) - 0.75).abs() < 1e-6);
        assert!((score(Metric::L2, 2.0) - 2.0).abs() < 1e-6);
        assert!((score(Metric::Dot, -6.0) - 6.0).abs() < 1e-6);
        assert!(passes(Metric::L2, 1.0, Some(1.5)));
        assert!(!passes(Metric::Dot, 1.0, Some(1.5)));
    }

    #[test]
    fn search_statements_name_the_metric_and_operator() {
        let wide = Table::for_dimension(3072);
        let text = sql::search(wide, wide.index(), Metric::Dot, true);
        assert!(text.contains("e.metric = 'dot'"), "{text}");
        assert!(text.contains("halfvec(3072)) <#>"), "{text}");
        assert!(
            text.contains("@> $4::jsonb") && text.contains("LIMIT $6"),
            "{text}"
        );
        let small = Table::for_dimension(384);
        let unfiltered = sql::search(small, small.index(), Metric::Cosine, false);
        assert!(!unfiltered.contains("jsonb"), "{unfiltered}");
        assert!(
            unfiltered.contains("LIMIT $5") && !unfiltered.contains("$6"),
            "{unfiltered}"
        );
        let exact = sql::search(Table::for_dimension(5000), Index::None, Metric::L2, false);
        assert!(!exact.contains("metric ="), "{exact}");
        assert!(
            exact.contains("vector(5000)") && exact.contains("LIMIT $4"),
            "{exact}"
        );
    }
}
