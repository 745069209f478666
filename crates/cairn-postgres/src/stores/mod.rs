//! PostgreSQL-native implementations of component store traits from `cairn-stores`.
//!
//! Each store keeps its records in tables of its own (migrations `0002_vectors_events.sql`,
//! `0004_episodic_agent_state.sql`)
//! instead of encoding them into `kv_store`, and runs on the same pool, role and
//! per-transaction tenant setting as [`PostgresBackend`](crate::PostgresBackend): every
//! operation is a transaction that starts with `set_config('app.tenant_id', $1, true)`, and
//! row-level security on every table keeps tenants apart. Each store passes the same testkit
//! suite as the generic implementation of its trait.

mod agent_state;
mod episodic;
mod event_log;
mod timestamps;
mod vectors;

pub use agent_state::PostgresAgentStateStore;
pub use episodic::PostgresEpisodicStore;
pub(crate) use event_log::EnsuredMonths;
pub use event_log::PostgresEventLogStore;
pub use vectors::{PostgresVectorStore, VECTOR_DEFAULT_EF_SEARCH};

use cairn_core::{Error, Result, StorageBackend};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::backend::PostgresBackend;

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
    let conn = backend.conn(op).await?;
    let first = conn.statement(first, op).await?;
    let second = conn.statement(second, op).await?;
    let client = conn.client();
    let (_, affected) = conn
        .run(
            backend.tenant_id(),
            op,
            futures::future::try_join(
                client.execute(&first, params),
                client.execute(&second, params),
            ),
        )
        .await?;
    Ok(affected)
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
