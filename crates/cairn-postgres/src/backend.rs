//! [`PostgresBackend`]: the `StorageBackend` implementation over the `kv_store` table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::{
    BatchOp, Check, Error, Key, MAX_BATCH_OPS, MAX_KEY_BYTES, MAX_SCAN_LIMIT, MAX_VALUE_BYTES,
    Result, ScanPage, StorageBackend, StorageBackendType, StorageCharacteristics, TenantId,
    WriteBatch, check_batch_len, check_prefix, check_scan_limit, check_value, prefix_upper_bound,
};
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::config::PostgresConfig;
use crate::conn::Conn;
use crate::stores::EnsuredMonths;
use crate::{error, migrate, pool, sql};

/// Most key and value bytes one statement may carry. PostgreSQL refuses a protocol message or
/// an array above 1 GiB, so a batch whose keys and values add up to more is `InvalidInput`
/// before anything is sent.
pub const MAX_STATEMENT_PAYLOAD_BYTES: usize = 1_000_000_000;

/// A [`StorageBackend`] on a PostgreSQL server, scoped to one tenant.
///
/// Cloning, or [`StorageBackend::tenant`], shares the connection pool. Tenants are kept apart
/// by row-level security inside the server: every operation is one transaction that first sets
/// `app.tenant_id` for that transaction only, and data flows as a role that cannot bypass the
/// policies (see the crate docs).
#[derive(Clone)]
pub struct PostgresBackend {
    shared: Arc<Shared>,
    tenant: TenantId,
}

struct Shared {
    pool: Pool,
    config: PostgresConfig,
    /// Months whose event partitions this process has made sure exist.
    event_partitions: EnsuredMonths,
}

impl PostgresBackend {
    /// Connects to the server in `config.url`, scoped to [`TenantId::default_tenant`].
    ///
    /// Applies pending migrations first when `auto_migrate` is set (as the URL's user, on a
    /// dedicated connection, under an advisory lock), then opens one pooled connection to
    /// check the setup: it switches to `app_role`, sets `statement_timeout`, and verifies that
    /// role is subject to row-level security.
    ///
    /// # Errors
    /// - [`Config`][config] for invalid settings or a database that does not exist.
    /// - [`Unavailable`][unavailable] or [`Timeout`][timeout] when the server cannot be
    ///   reached in time.
    /// - [`PermissionDenied`][denied] when the credentials are rejected, the user may not
    ///   `SET ROLE` to `app_role`, or (with `enforce_tenant_isolation`) `app_role` is a
    ///   superuser, has `BYPASSRLS` or owns `kv_store`.
    /// - [`Corruption`][corruption] when an applied migration differs from the embedded file
    ///   (see [`crate::migrate`]).
    ///
    /// [config]: cairn_core::ErrorKind::Config
    /// [unavailable]: cairn_core::ErrorKind::Unavailable
    /// [timeout]: cairn_core::ErrorKind::Timeout
    /// [denied]: cairn_core::ErrorKind::PermissionDenied
    /// [corruption]: cairn_core::ErrorKind::Corruption
    pub async fn connect(config: PostgresConfig) -> Result<PostgresBackend> {
        let driver = config.driver_config()?;
        if config.auto_migrate {
            migrate::apply(&driver).await?;
        }
        let pool = pool::build(&config, driver)?;
        // Open one connection now, so a wrong URL, a missing role or a role that bypasses
        // row-level security fails here rather than on the first operation.
        drop(Conn::checkout(&pool, "connect").await?);
        Ok(PostgresBackend {
            shared: Arc::new(Shared {
                pool,
                config,
                event_partitions: EnsuredMonths::default(),
            }),
            tenant: TenantId::default_tenant(),
        })
    }

    /// This backend on `tenant`, sharing the pool: what [`StorageBackend::tenant`] returns,
    /// as the concrete type the native stores are built on.
    pub fn scoped(&self, tenant: &TenantId) -> PostgresBackend {
        PostgresBackend {
            shared: Arc::clone(&self.shared),
            tenant: tenant.clone(),
        }
    }

    /// Every tenant with a row in any of Cairn's tables (the tables with a `tenant_id` column,
    /// found in the catalog), in byte order. An administrative read across tenants, for export
    /// and statistics tools: it runs on a connection of its own as the URL's user (as
    /// migrations do), not as `app_role`, with `row_security` off, so it sees every row or
    /// fails; it never silently misses a tenant.
    ///
    /// # Errors
    /// `PermissionDenied` when the URL's user is subject to row-level security (not a
    /// superuser, not `BYPASSRLS`); `Config`, `Unavailable` as for [`PostgresBackend::connect`].
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        const OP: &str = "list_tenants";
        let client = migrate::connect(&self.shared.config.driver_config()?).await?;
        let map = |err| crate::error::from_pg(OP, err);
        client
            .batch_execute("SET row_security = off")
            .await
            .map_err(map)?;
        let tables: Vec<String> = client
            .query(sql::TENANT_TABLES, &[])
            .await
            .map_err(map)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        // Identifiers come from the catalog, quoted by format('%I').
        let union = tables
            .iter()
            .map(|table| format!("SELECT tenant_id FROM {table}"))
            .collect::<Vec<_>>()
            .join(" UNION ");
        let rows = client
            .query(&format!("{union} ORDER BY 1"), &[])
            .await
            .map_err(map)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(map)?;
                TenantId::new(&id).map_err(|err| {
                    Error::corruption("a stored tenant id is not valid")
                        .with_context("tenant", id.clone())
                        .with_source(err)
                })
            })
            .collect()
    }

    /// A pooled connection for one operation (the native stores use it too).
    pub(crate) async fn conn(&self, operation: &'static str) -> Result<Conn> {
        Conn::checkout(&self.shared.pool, operation).await
    }

    /// The months whose event partitions exist, as far as this process knows.
    pub(crate) fn event_partitions(&self) -> &EnsuredMonths {
        &self.shared.event_partitions
    }

    fn tenant_str(&self) -> &str {
        self.tenant.as_str()
    }
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("tenant", &self.tenant)
            .field("config", &self.shared.config)
            .field("pool", &self.shared.pool.status())
            .finish()
    }
}

#[async_trait]
impl StorageBackend for PostgresBackend {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        const OP: &str = "get";
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::GET, OP).await?;
        let tenant = self.tenant_str();
        let row = conn
            .run(
                &self.tenant,
                OP,
                conn.client().query_opt(&stmt, &[&tenant, &key.as_str()]),
            )
            .await?;
        row.map(|row| value_at(&row, 0, OP)).transpose()
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        const OP: &str = "set";
        check_value(&value)?;
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::UPSERT, OP).await?;
        let tenant = self.tenant_str();
        conn.run(
            &self.tenant,
            OP,
            conn.client()
                .execute(&stmt, &[&tenant, &key.as_str(), &value.as_ref()]),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        const OP: &str = "delete";
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::DELETE, OP).await?;
        let tenant = self.tenant_str();
        let deleted = conn
            .run(
                &self.tenant,
                OP,
                conn.client().execute(&stmt, &[&tenant, &key.as_str()]),
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        const OP: &str = "exists";
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::EXISTS, OP).await?;
        let tenant = self.tenant_str();
        let row = conn
            .run(
                &self.tenant,
                OP,
                conn.client().query_one(&stmt, &[&tenant, &key.as_str()]),
            )
            .await?;
        row.try_get(0).map_err(|err| error::from_pg(OP, err))
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        const OP: &str = "list_keys";
        check_prefix(prefix)?;
        let upper = prefix_upper_bound(prefix);
        let conn = self.conn(OP).await?;
        let tenant = self.tenant_str();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant, &prefix];
        let stmt = match &upper {
            Some(upper) => {
                params.push(upper);
                conn.statement(sql::LIST_KEYS_RANGE, OP).await?
            }
            None => conn.statement(sql::LIST_KEYS_FROM, OP).await?,
        };
        let rows = conn
            .run(&self.tenant, OP, conn.client().query(&stmt, &params))
            .await?;
        rows.iter().map(|row| key_at(row, 0, OP)).collect()
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        const OP: &str = "get_batch";
        check_batch_len(keys.len())?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let distinct: Vec<&str> = keys
            .iter()
            .map(Key::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::GET_MANY, OP).await?;
        let tenant = self.tenant_str();
        let rows = conn
            .run(
                &self.tenant,
                OP,
                conn.client().query(&stmt, &[&tenant, &distinct]),
            )
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get(0).map_err(|err| error::from_pg(OP, err))?;
            found.insert(key, value_at(row, 1, OP)?);
        }
        Ok(keys
            .iter()
            .map(|key| found.get(key.as_str()).cloned())
            .collect())
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        const OP: &str = "set_batch";
        check_batch_len(entries.len())?;
        for (_, value) in &entries {
            check_value(value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        // ON CONFLICT cannot touch a row twice in one statement: keep each key's last value.
        // The map also sorts the keys, a fixed lock order for concurrent batches.
        let last: BTreeMap<Key, Bytes> = entries.into_iter().collect();
        check_payload(
            last.iter()
                .map(|(key, value)| key.as_str().len() + value.len())
                .sum(),
        )?;
        let keys: Vec<&str> = last.keys().map(Key::as_str).collect();
        let values: Vec<&[u8]> = last.values().map(Bytes::as_ref).collect();
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::UPSERT_MANY, OP).await?;
        let tenant = self.tenant_str();
        conn.run(
            &self.tenant,
            OP,
            conn.client().execute(&stmt, &[&tenant, &keys, &values]),
        )
        .await?;
        Ok(())
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        const OP: &str = "delete_batch";
        check_batch_len(keys.len())?;
        if keys.is_empty() {
            return Ok(0);
        }
        let distinct: Vec<&str> = keys
            .iter()
            .map(Key::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::DELETE_MANY, OP).await?;
        let tenant = self.tenant_str();
        conn.run(
            &self.tenant,
            OP,
            conn.client().execute(&stmt, &[&tenant, &distinct]),
        )
        .await
    }

    async fn clear(&self) -> Result<()> {
        const OP: &str = "clear";
        let conn = self.conn(OP).await?;
        let stmt = conn.statement(sql::CLEAR, OP).await?;
        let tenant = self.tenant_str();
        conn.run(&self.tenant, OP, conn.client().execute(&stmt, &[&tenant]))
            .await?;
        Ok(())
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        const OP: &str = "write_batch";
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        let (ops, checks) = batch.into_parts();
        let plan = BatchPlan::new(&ops, &checks)?;
        let conn = self.conn(OP).await?;
        let lock_absent = conn.statement(sql::LOCK_ABSENT, OP).await?;
        let lock_present = conn.statement(sql::LOCK_PRESENT, OP).await?;
        let upsert = conn.statement(sql::UPSERT_MANY, OP).await?;
        let delete = conn.statement(sql::DELETE_MANY, OP).await?;
        let client = conn.client();
        let tenant = self.tenant_str();

        // Checks first (they lock what they read), then the writes, all pipelined after
        // BEGIN; with checks, the transaction commits only if every check held.
        let body = async {
            let (absent, present, upserted, deleted) = futures::join!(
                async {
                    if plan.absent.is_empty() {
                        return Ok(Vec::new());
                    }
                    client.query(&lock_absent, &[&tenant, &plan.absent]).await
                },
                async {
                    if plan.present.is_empty() {
                        return Ok(Vec::new());
                    }
                    let keys: Vec<&str> = plan.present.keys().copied().collect();
                    client.query(&lock_present, &[&tenant, &keys]).await
                },
                async {
                    if plan.put_keys.is_empty() {
                        return Ok(0);
                    }
                    let params: [&(dyn ToSql + Sync); 3] =
                        [&tenant, &plan.put_keys, &plan.put_values];
                    client.execute(&upsert, &params).await
                },
                async {
                    if plan.delete_keys.is_empty() {
                        return Ok(0);
                    }
                    client.execute(&delete, &[&tenant, &plan.delete_keys]).await
                },
            );
            // The first failure in pipeline order is the cause; later statements only report
            // the aborted transaction.
            let checked = (absent?, present?);
            upserted?;
            deleted?;
            Ok(checked)
        };
        if plan.absent.is_empty() && plan.present.is_empty() {
            // Nothing to decide: commit in the same round trip.
            conn.run(&self.tenant, OP, body).await?;
            return Ok(());
        }
        let ((absent, present), committed) = conn
            .run_if(&self.tenant, OP, body, |(absent, present)| {
                plan.failed_check(absent, present).is_none()
            })
            .await?;
        if committed {
            return Ok(());
        }
        let failed = plan.failed_check(&absent, &present).unwrap_or("<unknown>");
        Err(
            Error::conflict("a write_batch check did not hold; nothing was written")
                .with_context("operation", OP)
                .with_context("key", failed),
        )
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()> {
        const OP: &str = "compare_and_swap";
        if let Some(new) = &new {
            check_value(new)?;
        }
        let conn = self.conn(OP).await?;
        let tenant = self.tenant_str();
        let key_str = key.as_str();
        let client = conn.client();
        let (changed, message) = match (&expected, &new) {
            (None, Some(new)) => {
                let stmt = conn.statement(sql::CREATE, OP).await?;
                let params: [&(dyn ToSql + Sync); 3] = [&tenant, &key_str, &new.as_ref()];
                let rows = conn
                    .run(&self.tenant, OP, client.execute(&stmt, &params))
                    .await?;
                (rows > 0, "the key already exists")
            }
            (None, None) => {
                let stmt = conn.statement(sql::EXISTS, OP).await?;
                let row = conn
                    .run(
                        &self.tenant,
                        OP,
                        client.query_one(&stmt, &[&tenant, &key_str]),
                    )
                    .await?;
                let exists: bool = row.try_get(0).map_err(|err| error::from_pg(OP, err))?;
                (!exists, "the key exists")
            }
            (Some(expected), Some(new)) => {
                let stmt = conn.statement(sql::SWAP, OP).await?;
                let params: [&(dyn ToSql + Sync); 4] =
                    [&tenant, &key_str, &new.as_ref(), &expected.as_ref()];
                let rows = conn
                    .run(&self.tenant, OP, client.execute(&stmt, &params))
                    .await?;
                (rows > 0, "the current value differs from the expected one")
            }
            (Some(expected), None) => {
                let stmt = conn.statement(sql::DELETE_IF, OP).await?;
                let params: [&(dyn ToSql + Sync); 3] = [&tenant, &key_str, &expected.as_ref()];
                let rows = conn
                    .run(&self.tenant, OP, client.execute(&stmt, &params))
                    .await?;
                (rows > 0, "the current value differs from the expected one")
            }
        };
        if changed {
            Ok(())
        } else {
            Err(Error::conflict(message)
                .with_context("operation", OP)
                .with_context("key", key))
        }
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        const OP: &str = "scan";
        check_prefix(prefix)?;
        check_scan_limit(limit)?;
        let upper = prefix_upper_bound(prefix);
        // Start strictly after `after` when it lies inside or above the prefix range, else at
        // the prefix itself.
        let (lower, exclusive) = match after {
            Some(after) if after.as_str() >= prefix => (after.as_str(), true),
            _ => (prefix, false),
        };
        // One extra row tells whether another page follows.
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let conn = self.conn(OP).await?;
        let tenant = self.tenant_str();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tenant, &lower];
        let sql = match (&upper, exclusive) {
            (Some(upper), false) => {
                params.push(upper);
                sql::SCAN_FROM_BOUNDED
            }
            (Some(upper), true) => {
                params.push(upper);
                sql::SCAN_AFTER_BOUNDED
            }
            (None, false) => sql::SCAN_FROM,
            (None, true) => sql::SCAN_AFTER,
        };
        params.push(&fetch);
        let stmt = conn.statement(sql, OP).await?;
        let rows = conn
            .run(&self.tenant, OP, conn.client().query(&stmt, &params))
            .await?;
        let entries = rows
            .iter()
            .map(|row| Ok((key_at(row, 0, OP)?, value_at(row, 1, OP)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(ScanPage::from_overfetched(entries, limit))
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(self.scoped(tenant))
    }

    fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    fn backend_type(&self) -> StorageBackendType {
        StorageBackendType::Postgres
    }

    fn characteristics(&self) -> StorageCharacteristics {
        StorageCharacteristics {
            persistent: true,
            durable_on_ack: true,
            shared_across_processes: true,
            atomic_batches: true,
            conditional_writes: true,
            ordered_scans: true,
            engine_enforced_tenancy: true,
            max_key_bytes: MAX_KEY_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            max_batch_ops: MAX_BATCH_OPS,
            max_scan_limit: MAX_SCAN_LIMIT,
        }
    }
}

/// A [`WriteBatch`] reduced to set operations: one expectation per checked key and the final
/// value (or deletion) per written key, each list sorted by key. Applying the final state per
/// key is the same as applying the operations in order, since a later operation on a key
/// replaces the effect of an earlier one.
struct BatchPlan<'a> {
    /// Keys that must be absent.
    absent: Vec<&'a str>,
    /// Keys that must hold a value, with that value.
    present: BTreeMap<&'a str, &'a [u8]>,
    /// Keys to store, and their values in the same order.
    put_keys: Vec<&'a str>,
    put_values: Vec<&'a [u8]>,
    /// Keys to delete: the batch's deletes plus the placeholders of `absent` keys the batch
    /// does not store (see [`sql::LOCK_ABSENT`]).
    delete_keys: Vec<&'a str>,
}

impl<'a> BatchPlan<'a> {
    /// # Errors
    /// [`Conflict`][conflict] when two checks expect different things of one key (one of
    /// them cannot hold, whatever is stored); [`InvalidInput`][invalid] when the writes
    /// exceed [`MAX_STATEMENT_PAYLOAD_BYTES`].
    ///
    /// [conflict]: cairn_core::ErrorKind::Conflict
    /// [invalid]: cairn_core::ErrorKind::InvalidInput
    fn new(ops: &'a [BatchOp], checks: &'a [Check]) -> Result<BatchPlan<'a>> {
        let mut expected: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        for check in checks {
            let want = check.expected.as_deref();
            if let Some(previous) = expected.insert(check.key.as_str(), want) {
                if previous != want {
                    return Err(Error::conflict(
                        "two checks on one key expect different values, so one cannot hold; \
                         nothing was written",
                    )
                    .with_context("operation", "write_batch")
                    .with_context("key", &check.key));
                }
            }
        }
        let mut last: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        let mut payload = 0usize;
        for op in ops {
            match op {
                BatchOp::Put { key, value } => {
                    payload += key.as_str().len() + value.len();
                    last.insert(key.as_str(), Some(value.as_ref()));
                }
                BatchOp::Delete { key } => {
                    last.insert(key.as_str(), None);
                }
            }
        }
        check_payload(payload)?;
        let absent: Vec<&str> = expected
            .iter()
            .filter(|(_, want)| want.is_none())
            .map(|(key, _)| *key)
            .collect();
        let mut delete_keys: BTreeSet<&str> = last
            .iter()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| *key)
            .collect();
        delete_keys.extend(absent.iter().filter(|key| !last.contains_key(*key)));
        let (put_keys, put_values) = last
            .iter()
            .filter_map(|(key, value)| value.map(|value| (*key, value)))
            .unzip();
        Ok(BatchPlan {
            present: expected
                .iter()
                .filter_map(|(key, want)| want.map(|want| (*key, want)))
                .collect(),
            absent,
            put_keys,
            put_values,
            delete_keys: delete_keys.into_iter().collect(),
        })
    }

    /// The first check that did not hold, given the rows returned by [`sql::LOCK_ABSENT`]
    /// (keys whose placeholder was inserted, so they were absent) and [`sql::LOCK_PRESENT`]
    /// (current key/value pairs). A row that cannot be decoded counts as a failed check.
    fn failed_check(&self, absent_rows: &[Row], present_rows: &[Row]) -> Option<&'a str> {
        let inserted: BTreeSet<&str> = absent_rows
            .iter()
            .filter_map(|row| row.try_get::<_, &str>(0).ok())
            .collect();
        if let Some(key) = self.absent.iter().find(|key| !inserted.contains(*key)) {
            return Some(key);
        }
        let current: HashMap<&str, &[u8]> = present_rows
            .iter()
            .filter_map(|row| Some((row.try_get(0).ok()?, row.try_get(1).ok()?)))
            .collect();
        self.present
            .iter()
            .find(|(key, want)| current.get(*key) != Some(*want))
            .map(|(key, _)| *key)
    }
}

/// Checks the key and value bytes one statement would carry against
/// [`MAX_STATEMENT_PAYLOAD_BYTES`].
fn check_payload(total: usize) -> Result<()> {
    if total > MAX_STATEMENT_PAYLOAD_BYTES {
        return Err(Error::invalid_input(format!(
            "batch carries {total} bytes of keys and values; one PostgreSQL statement takes at \
             most {MAX_STATEMENT_PAYLOAD_BYTES}"
        )));
    }
    Ok(())
}

fn key_at(row: &Row, index: usize, operation: &'static str) -> Result<Key> {
    let key: String = row
        .try_get(index)
        .map_err(|err| error::from_pg(operation, err))?;
    Key::new(key).map_err(error::bad_stored_key)
}

fn value_at(row: &Row, index: usize, operation: &'static str) -> Result<Bytes> {
    row.try_get::<_, Vec<u8>>(index)
        .map(Bytes::from)
        .map_err(|err| error::from_pg(operation, err))
}
