//! [`PostgresEventLogStore`]: [`EventLogStore`] on the monthly-partitioned `events` table.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use cairn_core::{Bytes, Result, StorageBackend, check_batch_len, check_scan_limit};
use cairn_stores::codec::check_id;
use cairn_stores::event_log::{
    Event, EventCursor, EventLogStore, EventQuery, EventRecord, TypePattern, check_event,
    check_event_type,
};
use cairn_stores::portable::{
    ExportPage, PortableStore, check_export_limit, decode_cursor, decode_portable, encode_cursor,
    encode_portable, page_of,
};
use serde_json::Value;
use time::{Month, OffsetDateTime, UtcOffset};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::timestamps::{check_year, join, split};
use super::{QuerySql, check_range};
use crate::backend::PostgresBackend;
use crate::error;

/// An [`EventLogStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was
/// built on.
///
/// # Storage
/// One table, `events`, `PARTITION BY RANGE (at)`: a partition `events_yYYYYmMM` per month
/// (UTC) and a DEFAULT partition for every month without one, so an event of any time (years 0
/// to 9999) is accepted. Times keep their nanoseconds: `at` holds the time rounded down to the
/// microsecond, `at_ns` the rest; events order by `(at, at_ns, id)`.
///
/// # Partitions
/// An append makes sure the partitions of the current and the next month exist (through the
/// `SECURITY DEFINER` function `cairn_ensure_event_partition`, in a short transaction of its
/// own), once per month and process; the backend remembers which months it has seen. Other
/// months (back-dated or far-future events) go to the DEFAULT partition.
///
/// # Queries
/// One statement per query, built from fixed fragments for the filters present: equality on
/// `event_type` or, for `prefix.*`, the range `event_type >= 'prefix.' AND event_type <
/// 'prefix/'` (`COLLATE "C"`: `/` follows `.`), equality on `correlation_id`, the time range
/// and the cursor as row comparisons on `(at, at_ns, id)`, each with a plain bound on `at` as
/// well so the planner prunes partitions. Indexes: `(tenant_id, at, at_ns, id)` (primary
/// key), `(tenant_id, event_type, at, at_ns, id)`, `(tenant_id, correlation_id, at, at_ns,
/// id)`.
///
/// # Retention
/// [`EventLogStore::drop_before`] deletes this tenant's rows before the time, then drops the
/// monthly partitions before both that time and the current month in which no tenant has
/// rows left (`cairn_drop_event_partitions_before`, migrations 0007 and 0008); other
/// tenants' rows are never touched.
#[derive(Clone)]
pub struct PostgresEventLogStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresEventLogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEventLogStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Months (as `year * 12 + month index`) whose partition this process has made sure exists.
#[derive(Debug, Default)]
pub(crate) struct EnsuredMonths(Mutex<HashSet<i32>>);

impl EnsuredMonths {
    fn contains(&self, month: i32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&month)
    }

    fn insert(&self, month: i32) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(month);
    }
}

/// Every statement of the event log. Values always travel as parameters; [`QuerySql`]
/// assembles a query from the fixed fragments below plus the shared time-range fragments
/// and numbers its parameters.
///
/// `$1` is always the tenant id.
mod sql {
    /// Makes sure the partitions of two months exist: `$1`, `$2` a time in each month.
    pub(super) const ENSURE_PARTITIONS: &str =
        "SELECT cairn_ensure_event_partition($1), cairn_ensure_event_partition($2)";

    /// `$2` times (rounded down to the microsecond), `$3` their nanoseconds, `$4` ids, `$5`
    /// types, `$6` correlation ids (nullable), `$7` payloads, all in the same order.
    macro_rules! insert_events {
        () => {
            "\
INSERT INTO events (tenant_id, at, at_ns, id, event_type, correlation_id, payload)
SELECT $1, e.at, e.at_ns, e.id, e.event_type, e.correlation_id, e.payload
FROM unnest($2::timestamptz[], $3::int2[], $4::uuid[], $5::text[], $6::text[], $7::jsonb[])
    AS e(at, at_ns, id, event_type, correlation_id, payload)"
        };
    }

    /// Inserts new events (parameters of `insert_events!`).
    pub(super) const APPEND: &str = insert_events!();

    /// Writes whole events (parameters of `insert_events!`, each time and id once),
    /// replacing those of the same time and id.
    pub(super) const IMPORT: &str = concat!(
        insert_events!(),
        "
ON CONFLICT (tenant_id, at, at_ns, id) DO UPDATE SET event_type = EXCLUDED.event_type,
    correlation_id = EXCLUDED.correlation_id, payload = EXCLUDED.payload"
    );

    /// `$2` the bound rounded down to the microsecond, `$3` its nanoseconds.
    pub(super) const DROP_BEFORE: &str = "\
DELETE FROM events WHERE tenant_id = $1 AND at <= $2 AND (at, at_ns) < ($2, $3)";

    /// `$1` the cutoff: drops the monthly partitions wholly before it that no tenant has rows
    /// in any more (migration 0007).
    pub(super) const DROP_EMPTY_PARTITIONS: &str = "SELECT cairn_drop_event_partitions_before($1)";

    /// The start of every query.
    pub(super) const SELECT: &str = "\
SELECT id, at, at_ns, event_type, correlation_id, payload FROM events WHERE tenant_id = $1";

    /// `{0}` the type.
    pub(super) const TYPE_EXACT: &str = " AND event_type = {0}";
    /// `{0}` `prefix.`, `{1}` `prefix/`.
    pub(super) const TYPE_PREFIX: &str = " AND event_type >= {0} AND event_type < {1}";
    /// `{0}` the correlation id.
    pub(super) const CORRELATION: &str = " AND correlation_id = {0}";
}

/// The query statement for `query`, assembled from [`sql`] fragments.
fn query_sql(tenant: &str, query: &EventQuery) -> QuerySql {
    let mut sql = QuerySql::new(sql::SELECT, tenant);
    match &query.event_type {
        Some(TypePattern::Exact(t)) => sql.push(sql::TYPE_EXACT, vec![Box::new(t.clone())]),
        Some(TypePattern::Prefix(p)) => sql.push(
            sql::TYPE_PREFIX,
            vec![Box::new(format!("{p}.")), Box::new(format!("{p}/"))],
        ),
        None => {}
    }
    if let Some(correlation) = &query.correlation_id {
        sql.push(sql::CORRELATION, vec![Box::new(correlation.clone())]);
    }
    sql.push_time_range(query.from, query.to, query.after, query.limit);
    sql
}

/// A month as `year * 12 + month index` (0-based), the key of [`EnsuredMonths`].
fn month_key(at: OffsetDateTime) -> i32 {
    at.year() * 12 + i32::from(u8::from(at.month())) - 1
}

/// The first instant of the month after `at`'s (UTC).
fn next_month(at: OffsetDateTime) -> OffsetDateTime {
    let (year, month) = match at.month() {
        Month::December => (at.year() + 1, Month::January),
        month => (at.year(), month.next()),
    };
    time::Date::from_calendar_date(year, month, 1)
        .map(|date| date.midnight().assume_utc())
        .unwrap_or(at)
}

/// Checks an event and turns it into the record to store.
fn prepare(event: Event) -> Result<EventRecord> {
    check_event_type(&event.event_type)?;
    if let Some(correlation) = &event.correlation_id {
        check_id("correlation id", correlation)?;
    }
    let at = event
        .at
        .map_or_else(OffsetDateTime::now_utc, |t| t.to_offset(UtcOffset::UTC));
    check_year("event", at)?;
    Ok(EventRecord {
        id: Uuid::now_v7(),
        event_type: event.event_type,
        payload: event.payload,
        correlation_id: event.correlation_id,
        at,
    })
}

fn record_from(row: &Row) -> Result<EventRecord> {
    const OP: &str = "event_query";
    let map = |err| error::from_pg(OP, err);
    Ok(EventRecord {
        id: row.try_get(0).map_err(map)?,
        at: join(row.try_get(1).map_err(map)?, row.try_get(2).map_err(map)?)?,
        event_type: row.try_get(3).map_err(map)?,
        correlation_id: row.try_get(4).map_err(map)?,
        payload: row.try_get::<_, Value>(5).map_err(map)?,
    })
}

fn check_query(query: &EventQuery) -> Result<()> {
    check_scan_limit(query.limit)?;
    check_range(query.from, query.to)?;
    if let Some(pattern) = &query.event_type {
        pattern.validate()?;
    }
    if let Some(correlation) = &query.correlation_id {
        check_id("correlation id", correlation)?;
    }
    Ok(())
}

impl PostgresEventLogStore {
    /// An event log on `backend`'s pool and tenant. The table and the partition function come
    /// from the embedded migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresEventLogStore {
        PostgresEventLogStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Makes sure the current and the next month have their partitions, unless this process
    /// already did. Runs in a transaction of its own, so the lock that creating a partition
    /// takes on `events` is held only briefly.
    async fn ensure_partitions(&self) -> Result<()> {
        const OP: &str = "event_partitions";
        let now = OffsetDateTime::now_utc();
        let next = next_month(now);
        let months = self.backend.event_partitions();
        if months.contains(month_key(now)) && months.contains(month_key(next)) {
            return Ok(());
        }
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::ENSURE_PARTITIONS, OP).await?;
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &[&now, &next]),
        )
        .await?;
        months.insert(month_key(now));
        months.insert(month_key(next));
        Ok(())
    }

    /// Writes `records` with `statement` (`sql::APPEND` or `sql::IMPORT`) as operation `op`,
    /// after making sure the current months have their partitions.
    async fn insert(
        &self,
        records: &[EventRecord],
        statement: &str,
        op: &'static str,
    ) -> Result<()> {
        check_batch_len(records.len())?;
        if records.is_empty() {
            return Ok(());
        }
        self.ensure_partitions().await?;
        let mut ats = Vec::with_capacity(records.len());
        let mut nss = Vec::with_capacity(records.len());
        for record in records {
            let (at, ns) = split(record.at);
            ats.push(at);
            nss.push(ns);
        }
        let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
        let types: Vec<&str> = records.iter().map(|r| r.event_type.as_str()).collect();
        let correlations: Vec<Option<&str>> = records
            .iter()
            .map(|r| r.correlation_id.as_deref())
            .collect();
        let payloads: Vec<&Value> = records.iter().map(|r| &r.payload).collect();
        let conn = self.backend.conn(op).await?;
        let stmt = conn.statement(statement, op).await?;
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 7] =
            [&tenant, &ats, &nss, &ids, &types, &correlations, &payloads];
        conn.run(
            self.backend.tenant_id(),
            op,
            conn.client().execute(&stmt, &params),
        )
        .await?;
        Ok(())
    }
    /// The plan PostgreSQL picks for `query`: the lines of `EXPLAIN` for the query statement,
    /// run in the same transaction setup as [`EventLogStore::query`] with the query's values.
    /// For checking which partitions a query reads.
    ///
    /// # Errors
    /// As [`EventLogStore::query`].
    pub async fn explain_query(&self, query: &EventQuery) -> Result<Vec<String>> {
        self.run_query(query, true)
            .await?
            .iter()
            .map(|row| {
                row.try_get(0)
                    .map_err(|err| error::from_pg("event_explain_query", err))
            })
            .collect()
    }

    /// The rows of `query`, or of its `EXPLAIN` when `explain` is set.
    async fn run_query(&self, query: &EventQuery, explain: bool) -> Result<Vec<Row>> {
        check_query(query)?;
        self.run(&query_sql(self.tenant(), query), explain).await
    }

    /// The rows of an assembled query, or of its `EXPLAIN` when `explain` is set.
    async fn run(&self, sql: &QuerySql, explain: bool) -> Result<Vec<Row>> {
        const OP: &str = "event_query";
        let text = if explain {
            format!("EXPLAIN {}", sql.text)
        } else {
            sql.text.clone()
        };
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(&text, OP).await?;
        let params = sql.params();
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().query(&stmt, &params),
        )
        .await
    }
}

#[async_trait]
impl EventLogStore for PostgresEventLogStore {
    async fn append(&self, event: Event) -> Result<EventRecord> {
        let record = prepare(event)?;
        self.insert(std::slice::from_ref(&record), sql::APPEND, "event_append")
            .await?;
        Ok(record)
    }

    async fn append_batch(&self, events: Vec<Event>) -> Result<Vec<EventRecord>> {
        let records = events
            .into_iter()
            .map(prepare)
            .collect::<Result<Vec<_>>>()?;
        self.insert(&records, sql::APPEND, "event_append").await?;
        Ok(records)
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<EventRecord>> {
        self.run_query(query, false)
            .await?
            .iter()
            .map(record_from)
            .collect()
    }

    /// Deletes this tenant's events before `before`, then, in a transaction of its own,
    /// drops the monthly partitions wholly before `before` in which no tenant has rows left
    /// (other tenants' rows are never touched: their partitions stay until they apply
    /// retention too).
    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64> {
        const OP: &str = "event_drop_before";
        let (at, ns) = split(before);
        let conn = self.backend.conn(OP).await?;
        let delete = conn.statement(sql::DROP_BEFORE, OP).await?;
        let drop_partitions = conn.statement(sql::DROP_EMPTY_PARTITIONS, OP).await?;
        let tenant = self.tenant();
        let deleted = conn
            .run(
                self.backend.tenant_id(),
                OP,
                conn.client().execute(&delete, &[&tenant, &at, &ns]),
            )
            .await?;
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().query_one(&drop_partitions, &[&at]),
        )
        .await?;
        Ok(deleted)
    }
}

/// The portable record of an event is its [`EventRecord`], id included, in (time, id) order;
/// the cursor is the last event's [`EventCursor`]. An import writes through `events`, so each
/// event lands in its month's partition, or the DEFAULT one when that month has none (as an
/// append of a back-dated event does), and replaces an event of the same time and id.
#[async_trait]
impl PortableStore for PostgresEventLogStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        check_export_limit(limit)?;
        let after: Option<EventCursor> = after.map(decode_cursor).transpose()?;
        // One more than asked tells whether another page follows.
        let query = EventQuery {
            limit: limit + 1,
            after,
            ..EventQuery::default()
        };
        let rows = self.run(&query_sql(self.tenant(), &query), false).await?;
        let records = rows.iter().map(record_from).collect::<Result<Vec<_>>>()?;
        page_of(
            records,
            limit,
            |record| encode_portable(record, &[]),
            |last| encode_cursor(&EventCursor::from(last)),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut events = BTreeMap::new();
        for record in records {
            let (event, _): (EventRecord, _) = decode_portable(record)?;
            check_event(&event)?;
            events.insert((event.at, event.id), event);
        }
        let events = events.into_values().collect::<Vec<_>>();
        self.insert(&events, sql::IMPORT, "event_import").await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn next_month_wraps_the_year() {
        assert_eq!(
            next_month(datetime!(2026-12-15 10:00 UTC)),
            datetime!(2027-01-01 0:00 UTC)
        );
        assert_eq!(
            month_key(datetime!(2027-01-01 0:00 UTC)),
            month_key(datetime!(2026-12-31 0:00 UTC)) + 1
        );
    }

    #[test]
    fn queries_number_their_parameters() {
        let query = EventQuery {
            event_type: Some(TypePattern::Prefix("tool".into())),
            correlation_id: Some("c".into()),
            from: Some(datetime!(2026-01-01 0:00 UTC)),
            ..EventQuery::default()
        };
        let sql = query_sql("t", &query);
        assert!(
            sql.text.contains("event_type >= $2 AND event_type < $3"),
            "{}",
            sql.text
        );
        assert!(sql.text.contains("correlation_id = $4"), "{}", sql.text);
        assert!(sql.text.contains("(at, at_ns) >= ($5, $6)"), "{}", sql.text);
        assert!(sql.text.ends_with("LIMIT $7"), "{}", sql.text);
        assert_eq!(sql.params.len(), 7);
    }
}
