//! PostgreSQL-native implementations of component store traits from `cairn-stores`.
//!
//! Each store keeps its records in tables of its own (migrations `0002_vectors_events.sql`,
//! `0003_sessions_hooks.sql`, `0004_episodic_agent_state.sql`, `0005_graph.sql`,
//! `0006_procedural_workflow_artifacts.sql`) instead of encoding them into `kv_store`, and runs on the same
//! pool, role and per-transaction tenant setting as [`PostgresBackend`](crate::PostgresBackend):
//! every operation is a transaction that starts with `set_config('app.tenant_id', $1, true)`,
//! and row-level security on every table keeps tenants apart. Each store passes the same
//! testkit suite as the generic implementation of its trait.
//!
//! This module holds what several stores share: [`QuerySql`], which assembles a time-ordered
//! query from fixed fragments, and the one-statement transaction helpers; `timestamps` keeps
//! nanosecond times in `timestamptz` columns.

mod agent_state;
mod artifacts;
mod episodic;
mod event_log;
mod graph;
mod hooks;
mod procedural;
mod sessions;
mod timestamps;
mod vectors;
mod workflow;

use cairn_core::{Error, Result, StorageBackend};
use cairn_stores::portable::check_export_limit;
use cairn_stores::stream::StreamCursor;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::backend::PostgresBackend;
use timestamps::split;

pub use agent_state::PostgresAgentStateStore;
pub use artifacts::PostgresArtifactStore;
pub use episodic::PostgresEpisodicStore;
pub(crate) use event_log::EnsuredMonths;
pub use event_log::PostgresEventLogStore;
pub use graph::PostgresGraphStore;
pub use hooks::PostgresHookHistoryStore;
pub use procedural::PostgresProceduralStore;
pub use sessions::PostgresSessionStore;
pub use vectors::{PostgresVectorStore, VECTOR_DEFAULT_EF_SEARCH};
pub use workflow::PostgresWorkflowStore;

/// Time-range fragments of [`QuerySql`] on a table whose rows order by `(at, at_ns, id)`.
mod time_sql {
    /// `{0}` time, `{1}` nanoseconds: inclusive lower bound.
    pub(super) const FROM: &str = " AND at >= {0} AND (at, at_ns) >= ({0}, {1})";
    /// `{0}` time, `{1}` nanoseconds: exclusive upper bound.
    pub(super) const TO: &str = " AND at <= {0} AND (at, at_ns) < ({0}, {1})";
    /// `{0}` time, `{1}` nanoseconds, `{2}` id of the cursor.
    pub(super) const AFTER: &str = " AND at >= {0} AND (at, at_ns, id) > ({0}, {1}, {2})";
    /// `{0}` the limit.
    pub(super) const ORDER_LIMIT: &str = " ORDER BY at, at_ns, id LIMIT {0}";
}

/// A query statement and its parameters, assembled from fixed fragments; values always
/// travel as parameters. `$1` is the tenant id.
struct QuerySql {
    text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl QuerySql {
    /// Starts with `select`, whose only parameter is `$1`, the tenant.
    fn new(select: &str, tenant: &str) -> QuerySql {
        QuerySql {
            text: select.to_owned(),
            params: vec![Box::new(tenant.to_owned())],
        }
    }

    /// Appends `fragment` with `{i}` replaced by the placeholder of `values[i]`.
    fn push(&mut self, fragment: &str, values: Vec<Box<dyn ToSql + Sync + Send>>) {
        let mut text = fragment.to_owned();
        for (i, value) in values.into_iter().enumerate() {
            self.params.push(value);
            text = text.replace(&format!("{{{i}}}"), &format!("${}", self.params.len()));
        }
        self.text.push_str(&text);
    }

    /// Appends `from <= (at, at_ns) < to`. Each bound also bounds `at` alone, so the planner
    /// can prune partitions and use indexes.
    fn push_time_bounds(&mut self, from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) {
        if let Some(from) = from {
            let (at, ns) = split(from);
            self.push(time_sql::FROM, vec![Box::new(at), Box::new(ns)]);
        }
        if let Some(to) = to {
            let (at, ns) = split(to);
            self.push(time_sql::TO, vec![Box::new(at), Box::new(ns)]);
        }
    }

    /// Appends [`QuerySql::push_time_bounds`], the cursor `(at, at_ns, id) > after`, and the
    /// order and limit.
    fn push_time_range(
        &mut self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
        after: Option<StreamCursor>,
        limit: usize,
    ) {
        self.push_time_bounds(from, to);
        if let Some(after) = after {
            let (at, ns) = split(after.at);
            self.push(
                time_sql::AFTER,
                vec![Box::new(at), Box::new(ns), Box::new(after.id)],
            );
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.push(time_sql::ORDER_LIMIT, vec![Box::new(limit)]);
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Checks that a time range is not reversed.
///
/// # Errors
/// `InvalidInput` when both ends are given and `from > to`.
fn check_range(from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Result<()> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(Error::invalid_input(
            "time range starts after it ends (from > to)",
        )),
        _ => Ok(()),
    }
}

/// Runs one statement returning rows in a transaction scoped to `backend`'s tenant.
pub(crate) async fn query(
    backend: &PostgresBackend,
    text: &str,
    params: &[&(dyn ToSql + Sync)],
    op: &'static str,
) -> Result<Vec<Row>> {
    let conn = backend.conn(op).await?;
    let stmt = conn.statement(text, op).await?;
    conn.run(backend.tenant_id(), op, conn.client().query(&stmt, params))
        .await
}

/// Runs `first` then `second` with the same parameters in one transaction scoped to
/// `backend`'s tenant (pipelined: one round trip) and returns how many rows `second`
/// affected. The deletes of a head row and the rows it counts use it: deleting the head
/// first takes its row lock, so writers in flight finish before the rows are deleted.
pub(crate) async fn execute_pair(
    backend: &PostgresBackend,
    first: &str,
    second: &str,
    params: &[&(dyn ToSql + Sync)],
    op: &'static str,
) -> Result<u64> {
    let (_, affected) = execute_two(backend, (first, params), (second, params), op).await?;
    Ok(affected)
}

/// Runs two statements, each with its parameters, in order in one transaction scoped to
/// `backend`'s tenant (pipelined: one round trip) and returns how many rows each affected.
pub(crate) async fn execute_two(
    backend: &PostgresBackend,
    first: (&str, &[&(dyn ToSql + Sync)]),
    second: (&str, &[&(dyn ToSql + Sync)]),
    op: &'static str,
) -> Result<(u64, u64)> {
    let conn = backend.conn(op).await?;
    let first_stmt = conn.statement(first.0, op).await?;
    let second_stmt = conn.statement(second.0, op).await?;
    let client = conn.client();
    conn.run(
        backend.tenant_id(),
        op,
        futures::future::try_join(
            client.execute(&first_stmt, first.1),
            client.execute(&second_stmt, second.1),
        ),
    )
    .await
}

/// The rows an export page of `limit` records fetches: one more, which tells whether another
/// page follows (see [`cairn_stores::portable::page_of`]).
///
/// # Errors
/// `InvalidInput` for a `limit` outside 1 to
/// [`MAX_EXPORT_PAGE`](cairn_stores::portable::MAX_EXPORT_PAGE).
pub(crate) fn export_fetch(limit: usize) -> Result<i64> {
    check_export_limit(limit)?;
    Ok(bigint(limit as u64 + 1))
}

/// The id an export cursor of a store exported in id order holds (its last id).
///
/// # Errors
/// `InvalidInput` for a cursor that is not UTF-8, which no such store produced.
pub(crate) fn export_after_id(cursor: Option<&[u8]>) -> Result<Option<&str>> {
    cursor
        .map(|cursor| {
            std::str::from_utf8(cursor)
                .map_err(|_| Error::invalid_input("export cursor was not produced by this store"))
        })
        .transpose()
}

/// A stored counter, sequence number or size (never negative) as a `u64`.
///
/// # Errors
/// `Corruption` for a negative value.
pub(crate) fn stored_u64(value: i64, column: &'static str) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        Error::corruption("stored value is negative")
            .with_context("column", column)
            .with_context("value", value)
    })
}

/// A `u64` as the `bigint` it is compared with: values past `i64::MAX` become `i64::MAX`,
/// which no stored counter reaches.
pub(crate) fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
