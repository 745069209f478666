//! Raw PostgreSQL insert paths for vectors: the floor under the native store's
//! `upsert_batch`.
//!
//! Both load the base set into `bench_vectors_raw`, created fresh for each path as
//! `(LIKE <the store's table> INCLUDING ALL)`: the same columns, `CHECK`s, primary key, GIN
//! index on the metadata and the same partial HNSW indexes (m = 16, ef_construction = 128),
//! so every path maintains exactly the indexes the store's rows maintain. Rows carry the
//! store's values: a tenant, one collection id, the id, metric `cosine` (so the cosine HNSW
//! index takes every row, as it does the store's), the vector and the same metadata. What the
//! raw table lacks is what Cairn adds: row-level security, the collection foreign key and the
//! per-transaction tenant setting.
//!
//! - **COPY**: tokio-postgres binary `COPY … FROM STDIN`, one `COPY` (one transaction) per
//!   batch of the same size as the store's `upsert_batch` calls.
//! - **INSERT per row**: one prepared single-row `INSERT` per vector, each its own
//!   transaction (autocommit), one round trip each.

use std::error::Error;
use std::pin::pin;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use super::data::Dataset;
use super::engine::metadata;
use crate::BenchResult;
use crate::stats::elapsed_nanos;

/// The raw table.
const TABLE: &str = "bench_vectors_raw";

/// Its columns, in the order every statement lists them.
const COLUMNS: &str = "tenant_id, collection_id, id, metric, embedding, metadata";

/// The tenant column's value on raw rows.
const TENANT: &str = "cairn-bench";

/// One insert path's throughput.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Inserted {
    /// Which path.
    pub(crate) path: &'static str,
    /// Vectors written.
    pub(crate) rows: usize,
    /// Time spent writing.
    pub(crate) seconds: f64,
    /// `rows / seconds`.
    pub(crate) rows_per_sec: f64,
}

impl Inserted {
    pub(crate) fn new(path: &'static str, rows: usize, nanos: u64) -> Inserted {
        let seconds = nanos as f64 / 1e9;
        Inserted {
            path,
            rows,
            seconds,
            rows_per_sec: rows as f64 / seconds,
        }
    }
}

/// A pgvector `vector` parameter in pgvector's binary format: the dimension and a reserved
/// zero as 16-bit integers, then every component as a big-endian `f32`.
#[derive(Debug)]
struct PgVector<'a>(&'a [f32]);

impl ToSql for PgVector<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_u16(u16::try_from(self.0.len())?);
        out.put_u16(0);
        for &x in self.0 {
            out.put_f32(x);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

/// The table the native store keeps vectors of `dimension` in (migration 0002).
pub(crate) fn store_table(dimension: usize) -> &'static str {
    match dimension {
        384 => "vector_embeddings_384",
        768 => "vector_embeddings_768",
        1536 => "vector_embeddings_1536",
        3072 => "vector_embeddings_3072",
        _ => "vector_embeddings_other",
    }
}

/// A plain tokio-postgres connection as the URL's user.
pub(crate) async fn connect(url: &str) -> BenchResult<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("raw postgres connection failed: {err}");
        }
    });
    Ok(client)
}

/// Rows already in the store's table for `dimension` (every tenant and collection): they
/// share its HNSW index with the bench's rows. Read as the URL's user, which must bypass
/// row-level security (a superuser or the table owner) to see them all.
pub(crate) async fn rows_in_store_table(client: &Client, dimension: usize) -> BenchResult<i64> {
    let text = format!("SELECT count(*) FROM {}", store_table(dimension));
    Ok(client.query_one(&text, &[]).await?.try_get(0)?)
}

/// Recreates the raw table empty, shaped and indexed like the store's.
async fn recreate(client: &Client, dimension: usize) -> BenchResult<()> {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (LIKE {} INCLUDING ALL)",
            store_table(dimension)
        ))
        .await?;
    Ok(())
}

/// Drops the raw table.
pub(crate) async fn drop_table(client: &Client) -> BenchResult<()> {
    Ok(client
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .await?)
}

/// Loads the base set with binary `COPY`, `batch` rows per `COPY`.
pub(crate) async fn copy(client: &Client, data: &Dataset, batch: usize) -> BenchResult<Inserted> {
    let shape = data.shape();
    recreate(client, shape.dimension).await?;
    let types = insert_types(client).await?;
    let collection = Uuid::now_v7();
    let statement = format!("COPY {TABLE} ({COLUMNS}) FROM STDIN (FORMAT binary)");
    let mut nanos = 0;
    for start in (0..shape.vectors).step_by(batch) {
        let rows: Vec<(String, Value)> = (start..(start + batch).min(shape.vectors))
            .map(|i| (Dataset::id(i), Value::Object(metadata(data, i))))
            .collect();
        let began = Instant::now();
        let sink = client.copy_in(&statement).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
        for (offset, (id, metadata)) in rows.iter().enumerate() {
            let vector = PgVector(data.point(start + offset));
            writer
                .as_mut()
                .write(&[&TENANT, &collection, id, &"cosine", &vector, metadata])
                .await?;
        }
        writer.finish().await?;
        nanos += elapsed_nanos(began);
    }
    check_count(client, shape.vectors).await?;
    Ok(Inserted::new("raw binary COPY", shape.vectors, nanos))
}

/// Loads the base set with one autocommitted single-row `INSERT` per vector.
pub(crate) async fn row_by_row(client: &Client, data: &Dataset) -> BenchResult<Inserted> {
    let shape = data.shape();
    recreate(client, shape.dimension).await?;
    let insert = client.prepare(&insert_text()).await?;
    let collection = Uuid::now_v7();
    let mut nanos = 0;
    for i in 0..shape.vectors {
        let (id, metadata) = (Dataset::id(i), Value::Object(metadata(data, i)));
        let vector = PgVector(data.point(i));
        let began = Instant::now();
        client
            .execute(
                &insert,
                &[&TENANT, &collection, &id, &"cosine", &vector, &metadata],
            )
            .await?;
        nanos += elapsed_nanos(began);
    }
    check_count(client, shape.vectors).await?;
    Ok(Inserted::new("raw INSERT per row", shape.vectors, nanos))
}

/// Fails unless the raw table holds `expected` rows: a load that lost rows measured nothing.
async fn check_count(client: &Client, expected: usize) -> BenchResult<()> {
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])
        .await?
        .try_get(0)?;
    if usize::try_from(count)? != expected {
        return Err(format!("{TABLE} holds {count} rows after loading {expected}").into());
    }
    Ok(())
}

fn insert_text() -> String {
    format!("INSERT INTO {TABLE} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)")
}

/// The column types of the raw table, as the server names them (pgvector's `vector` has no
/// fixed type id): the parameter types of the single-row insert.
async fn insert_types(client: &Client) -> BenchResult<Vec<Type>> {
    Ok(client.prepare(&insert_text()).await?.params().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::data::Shape;

    #[test]
    fn dimensions_name_the_store_tables() {
        assert_eq!(store_table(384), "vector_embeddings_384");
        assert_eq!(store_table(3072), "vector_embeddings_3072");
        assert_eq!(store_table(100), "vector_embeddings_other");
    }

    /// Needs a server, like every PostgreSQL test of the workspace: `cargo xtask test` sets
    /// `DATABASE_URL`; without it the test fails rather than skips.
    #[tokio::test]
    async fn raw_paths_load_every_row_into_an_indexed_copy_of_the_store_table() {
        let url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run `cargo xtask test` (it starts PostgreSQL and sets it)",
        );
        let client = connect(&url).await.unwrap();
        let data = Dataset::generate(Shape {
            vectors: 120,
            queries: 1,
            fresh: 0,
            dimension: 384,
        })
        .unwrap();
        let copied = copy(&client, &data, 50).await.unwrap();
        assert_eq!(copied.rows, 120);
        let indexes: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%hnsw%'",
                &[&TABLE],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            indexes, 3,
            "one partial HNSW index per metric, as on the store table"
        );
        let inserted = row_by_row(&client, &data).await.unwrap();
        assert!(inserted.rows_per_sec > 0.0);
        drop_table(&client).await.unwrap();
    }
}
