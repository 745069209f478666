//! PostgreSQL-native implementations of component store traits from `cairn-stores`.
//!
//! Each store keeps its records in tables of its own (migrations `0002_vectors_events.sql`,
//! `0003_sessions_hooks.sql`) instead of encoding them into `kv_store`, and runs on the same
//! pool, role and per-transaction tenant setting as [`PostgresBackend`](crate::PostgresBackend):
//! every operation is a transaction that starts with `set_config('app.tenant_id', $1, true)`,
//! and row-level security on every table keeps tenants apart. Each store passes the same
//! testkit suite as the generic implementation of its trait.
//!
//! This module holds what several stores share: nanosecond times split into a `timestamptz`
//! and the remaining nanoseconds ([`split`], [`join`]), and [`QuerySql`], which assembles a
//! time-ordered query from fixed fragments.

mod event_log;
mod hooks;
mod sessions;
mod vectors;

use cairn_core::{Error, Result};
use cairn_stores::stream::StreamCursor;
use time::{Duration, OffsetDateTime, UtcOffset};
use tokio_postgres::types::ToSql;

pub(crate) use event_log::EnsuredMonths;
pub use event_log::PostgresEventLogStore;
pub use hooks::PostgresHookHistoryStore;
pub use sessions::PostgresSessionStore;
pub use vectors::{PostgresVectorStore, VECTOR_DEFAULT_EF_SEARCH};

/// `at` in UTC split into the time rounded down to the microsecond (what `timestamptz` holds)
/// and the remaining nanoseconds.
fn split(at: OffsetDateTime) -> (OffsetDateTime, i16) {
    let at = at.to_offset(UtcOffset::UTC);
    let ns = at.nanosecond() % 1_000;
    // `ns` < 1000 fits i16; subtracting it keeps the time within the valid range.
    (at - Duration::nanoseconds(i64::from(ns)), ns as i16)
}

/// The inverse of [`split`].
///
/// # Errors
/// `Corruption` when `ns` is outside 0..1000.
fn join(at: OffsetDateTime, ns: i16) -> Result<OffsetDateTime> {
    if !(0..1_000).contains(&ns) {
        return Err(
            Error::corruption("a stored time has out-of-range nanoseconds").with_context("ns", ns),
        );
    }
    Ok(at.to_offset(UtcOffset::UTC) + Duration::nanoseconds(i64::from(ns)))
}

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

/// Checks that a time lies in years 0 to 9999, the range every backend stores.
///
/// # Errors
/// `InvalidInput` otherwise, naming `what`.
fn check_year(what: &str, at: OffsetDateTime) -> Result<()> {
    if (0..=9999).contains(&at.year()) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "{what} {at} lies outside years 0 to 9999"
        )))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn split_and_join_keep_nanoseconds_before_and_after_1970() {
        for at in [
            datetime!(2999-12-31 23:59:59.999999999 UTC),
            datetime!(1969-12-31 23:59:59.5 UTC),
            datetime!(1900-01-01 0:00:00.000000001 UTC),
        ] {
            let (micros, ns) = split(at);
            assert_eq!(micros.nanosecond() % 1_000, 0);
            assert_eq!(join(micros, ns).unwrap(), at);
        }
    }
}
