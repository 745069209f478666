//! Raw tokio-postgres: the floor under `cairn-postgres`.
//!
//! One connection, prepared statements on a table of the same shape as Cairn's key-value
//! table, and each operation as one plain statement: no transaction, no tenant setting, no
//! row-level security. Batches are one statement over `unnest` arrays (writes) or
//! `= ANY($2)` (reads), as Cairn does.

use bytes::Bytes;
use cairn_core::{Key, prefix_upper_bound};
use tokio_postgres::{Client, NoTls, Statement};

use crate::BenchResult;
use crate::harness::Target;

/// Recreates the baseline table: the shape of Cairn's `kv_store` (migration 0001) without
/// row-level security.
const CREATE_TABLE: &str = r#"
DROP TABLE IF EXISTS bench_raw;
CREATE TABLE bench_raw (
    tenant_id text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    key       text COLLATE "C" NOT NULL CHECK (key <> ''),
    value     bytea NOT NULL,
    PRIMARY KEY (tenant_id, key)
)"#;

const DROP_TABLE: &str = "DROP TABLE IF EXISTS bench_raw";

const GET: &str = "SELECT value FROM bench_raw WHERE tenant_id = $1 AND key = $2";

const UPSERT: &str = "\
INSERT INTO bench_raw (tenant_id, key, value) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value";

const GET_MANY: &str =
    "SELECT key, value FROM bench_raw WHERE tenant_id = $1 AND key = ANY($2::text[])";

const UPSERT_MANY: &str = "\
INSERT INTO bench_raw (tenant_id, key, value)
SELECT $1, e.key, e.value FROM unnest($2::text[], $3::bytea[]) AS e(key, value)
ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value";

const SCAN: &str = "\
SELECT key, value FROM bench_raw WHERE tenant_id = $1 AND key >= $2 AND key < $3
ORDER BY key LIMIT $4";

const LIST_KEYS: &str = "\
SELECT key FROM bench_raw WHERE tenant_id = $1 AND key >= $2 AND key < $3 ORDER BY key";

/// The tenant column's value for every baseline row.
const TENANT: &str = "cairn-bench";

/// A single tokio-postgres connection with every statement prepared.
#[derive(Debug)]
pub(crate) struct RawPostgres {
    client: Client,
    get: Statement,
    upsert: Statement,
    get_many: Statement,
    upsert_many: Statement,
    scan: Statement,
    list_keys: Statement,
}

impl RawPostgres {
    /// Connects to `url`, recreates the `bench_raw` table and prepares the statements.
    pub(crate) async fn connect(url: &str) -> BenchResult<RawPostgres> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("raw postgres connection failed: {err}");
            }
        });
        client.batch_execute(CREATE_TABLE).await?;
        Ok(RawPostgres {
            get: client.prepare(GET).await?,
            upsert: client.prepare(UPSERT).await?,
            get_many: client.prepare(GET_MANY).await?,
            upsert_many: client.prepare(UPSERT_MANY).await?,
            scan: client.prepare(SCAN).await?,
            list_keys: client.prepare(LIST_KEYS).await?,
            client,
        })
    }

    /// Drops the `bench_raw` table.
    pub(crate) async fn drop_table(self) -> BenchResult<()> {
        Ok(self.client.batch_execute(DROP_TABLE).await?)
    }
}

/// The exclusive upper bound of `prefix`'s key range; workload prefixes always have one.
fn upper_bound(prefix: &str) -> BenchResult<String> {
    prefix_upper_bound(prefix).ok_or_else(|| format!("prefix {prefix:?} has no upper bound").into())
}

impl Target for RawPostgres {
    async fn get(&mut self, key: &Key) -> BenchResult<Option<usize>> {
        let row = self
            .client
            .query_opt(&self.get, &[&TENANT, &key.as_str()])
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<_, &[u8]>(0)?.len()),
            None => None,
        })
    }

    async fn set(&mut self, key: &Key, value: Bytes) -> BenchResult<()> {
        self.client
            .execute(&self.upsert, &[&TENANT, &key.as_str(), &value.as_ref()])
            .await?;
        Ok(())
    }

    async fn get_batch(&mut self, keys: &[Key]) -> BenchResult<usize> {
        let keys: Vec<&str> = keys.iter().map(Key::as_str).collect();
        let rows = self.client.query(&self.get_many, &[&TENANT, &keys]).await?;
        for row in &rows {
            row.try_get::<_, &[u8]>(1)?;
        }
        Ok(rows.len())
    }

    async fn set_batch(&mut self, entries: Vec<(Key, Bytes)>) -> BenchResult<()> {
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        let values: Vec<&[u8]> = entries.iter().map(|(_, value)| value.as_ref()).collect();
        self.client
            .execute(&self.upsert_many, &[&TENANT, &keys, &values])
            .await?;
        Ok(())
    }

    async fn scan(&mut self, prefix: &str, limit: usize) -> BenchResult<usize> {
        let end = upper_bound(prefix)?;
        let limit = i64::try_from(limit)?;
        let rows = self
            .client
            .query(&self.scan, &[&TENANT, &prefix, &end, &limit])
            .await?;
        for row in &rows {
            row.try_get::<_, &str>(0)?;
            row.try_get::<_, &[u8]>(1)?;
        }
        Ok(rows.len())
    }

    async fn list_keys(&mut self, prefix: &str) -> BenchResult<usize> {
        let end = upper_bound(prefix)?;
        let rows = self
            .client
            .query(&self.list_keys, &[&TENANT, &prefix, &end])
            .await?;
        for row in &rows {
            row.try_get::<_, &str>(0)?;
        }
        Ok(rows.len())
    }
}
