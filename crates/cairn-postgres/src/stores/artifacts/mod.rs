//! [`PostgresArtifactStore`]: [`ArtifactStore`] on the `artifacts` and `artifact_chunks`
//! tables. `upload` writes content, `reading` streams it back.

mod portable;
mod reading;
mod upload;

use std::fmt;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, MAX_VALUE_BYTES, Result, StorageBackend, check_scan_limit,
};
use cairn_stores::artifacts::chunking::content_hash;
use cairn_stores::artifacts::{
    Artifact, ArtifactInfo, ArtifactReader, ArtifactRecord, ArtifactRef, ArtifactStore,
    ChunkStream, DEFAULT_CHUNK_SIZE, PutOptions, check_hash, chunk_stream,
};
use cairn_stores::paging::Page;
use futures::StreamExt;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::timestamps::join;
use super::{query, stored_u64};
use crate::backend::PostgresBackend;
use crate::error;
use reading::RowChunks;

/// An [`ArtifactStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was
/// built on.
///
/// # Storage
/// `artifacts` holds one row per content hash, primary key `(tenant_id, content_hash)`: the
/// deduplication index, so the same content in two tenants is two rows with two reference
/// counts. `artifact_chunks` holds the content, one `bytea` row per chunk of
/// [`DEFAULT_CHUNK_SIZE`] (or the store's chunk size), keyed by `(tenant_id, blob_id, seq)`;
/// its foreign key to the artifact's `blob_id` is checked at commit and cascades deletes.
///
/// # Writing
/// A put is one transaction on one connection: the content is cut and hashed by Cairn's
/// [`Chunker`](cairn_stores::artifacts::chunking::Chunker) as it arrives, chunks are inserted
/// under a fresh `blob_id` in batches of about 8 MiB (one `INSERT … FROM unnest` each), and at
/// the end one pipelined round trip inserts the last chunks, inserts the artifact row or adds
/// a reference to the existing one (`INSERT … ON CONFLICT DO UPDATE SET refcount = refcount +
/// 1`), deletes the chunks just written if the content was already stored, and commits.
/// Content is never held whole, a failed or interrupted put rolls back completely (no
/// orphaned chunks, unlike the generic store), and concurrent puts of one content serialise
/// on the unique index: one copy, one reference each. A put of up to 8 MiB is one round trip
/// (the transaction opens with the first statement); `put` of content larger than a chunk
/// first tries to add a reference to stored content, without sending it.
///
/// # Reading
/// Reads stream the chunks back in batches of about 8 MiB per query and verify lengths and
/// the BLAKE3 hash with the generic store's reader
/// ([`chunk_stream`](cairn_stores::artifacts::chunk_stream)): damaged bytes are `Corruption`.
/// The row and each batch are read in transactions of their own, which is safe because a
/// blob's chunks are written once, with its row, and never change; an artifact released
/// during a read ends the stream with `NotFound`.
///
/// # Releasing
/// One transaction of three pipelined statements: lock the row (`FOR UPDATE`), delete it if
/// this was the last reference (its chunks go with it, by the cascade), else decrement.
///
/// # Limits
/// Metadata holding a NUL character (which `jsonb` cannot store) is `InvalidInput` and the
/// put stores nothing. A put holds one pooled connection until its stream ends.
#[derive(Clone)]
pub struct PostgresArtifactStore {
    backend: PostgresBackend,
    chunk_size: usize,
}

impl fmt::Debug for PostgresArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresArtifactStore")
            .field("tenant", self.backend.tenant_id())
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

/// Every statement of the artifact store. `$1` is always the tenant id, `$2` the content
/// hash (lowercase) unless said otherwise; the columns of an artifact are always the
/// `columns!()` list, read by [`record_from`].
mod sql {
    /// The columns [`super::record_from`] reads, in order.
    macro_rules! columns {
        () => {
            "content_hash, blob_id, size, chunk_size, chunks, content_type, metadata, refcount, \
             created_at, created_ns"
        };
    }

    /// Adds a reference to stored content.
    pub(super) const JOIN: &str = "\
UPDATE artifacts SET refcount = refcount + 1 WHERE tenant_id = $1 AND content_hash = $2
RETURNING size, content_type, refcount";

    /// `$2` blob id, `$3` the `seq` of the first chunk, `$4` the chunks.
    pub(super) const INSERT_CHUNKS: &str = "\
INSERT INTO artifact_chunks (tenant_id, blob_id, seq, data)
SELECT $1, $2, $3 + c.n - 1, c.data FROM unnest($4::bytea[]) WITH ORDINALITY AS c(data, n)";

    /// `$3` blob id, `$4` size, `$5` chunk size, `$6` chunks, `$7` content type, `$8`
    /// metadata, `$9`/`$10` the creation time. Stored content keeps its row and gains a
    /// reference.
    pub(super) const UPSERT: &str = "\
INSERT INTO artifacts AS a (tenant_id, content_hash, blob_id, size, chunk_size, chunks,
                            content_type, metadata, refcount, created_at, created_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10)
ON CONFLICT (tenant_id, content_hash) DO UPDATE SET refcount = a.refcount + 1
RETURNING size, content_type, refcount";

    /// `$2` blob id: deletes its chunks unless an artifact row points at it (runs after
    /// `UPSERT` in the same transaction, so it sees which blob the row kept).
    pub(super) const DISCARD: &str = "\
DELETE FROM artifact_chunks WHERE tenant_id = $1 AND blob_id = $2
    AND NOT EXISTS (SELECT 1 FROM artifacts WHERE tenant_id = $1 AND blob_id = $2)";

    pub(super) const GET: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM artifacts WHERE tenant_id = $1 AND content_hash = $2"
    );

    pub(super) const EXISTS: &str =
        "SELECT EXISTS (SELECT 1 FROM artifacts WHERE tenant_id = $1 AND content_hash = $2)";

    /// `$2` blob id, `$3` the first `seq`, `$4` the most rows.
    pub(super) const CHUNKS: &str = "\
SELECT seq, data FROM artifact_chunks WHERE tenant_id = $1 AND blob_id = $2 AND seq >= $3
ORDER BY seq LIMIT $4";

    /// `$3` blob id.
    pub(super) const STILL_STORED: &str = "\
SELECT EXISTS (SELECT 1 FROM artifacts WHERE tenant_id = $1 AND content_hash = $2
    AND blob_id = $3)";

    /// Runs first in a release: waits for puts and releases in flight and holds off new ones.
    pub(super) const LOCK: &str =
        "SELECT refcount FROM artifacts WHERE tenant_id = $1 AND content_hash = $2 FOR UPDATE";

    /// The last reference: deletes the row, and its chunks by the cascade.
    pub(super) const FREE: &str =
        "DELETE FROM artifacts WHERE tenant_id = $1 AND content_hash = $2 AND refcount = 1";

    pub(super) const DECREMENT: &str = "\
UPDATE artifacts SET refcount = refcount - 1
WHERE tenant_id = $1 AND content_hash = $2 AND refcount > 1";

    /// `$2` hashes (`text[]`): those stored.
    pub(super) const STORED: &str =
        "SELECT content_hash FROM artifacts WHERE tenant_id = $1 AND content_hash = ANY($2)";

    /// `$3` blob id, `$4` size, `$5` chunk size, `$6` chunks, `$7` content type, `$8`
    /// metadata, `$9` refcount, `$10`/`$11` the creation time: an imported artifact.
    pub(super) const IMPORT_NEW: &str = "\
INSERT INTO artifacts (tenant_id, content_hash, blob_id, size, chunk_size, chunks,
                       content_type, metadata, refcount, created_at, created_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

    /// `$3` content type, `$4` metadata, `$5` refcount, `$6`/`$7` the creation time: the
    /// imported description of stored content, which keeps its chunks.
    pub(super) const IMPORT_STORED: &str = "\
UPDATE artifacts SET content_type = $3, metadata = $4, refcount = $5, created_at = $6,
                     created_ns = $7
WHERE tenant_id = $1 AND content_hash = $2";

    /// `$2` the hash to list after (`''` from the start), `$3` the most rows.
    pub(super) const LIST: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM artifacts WHERE tenant_id = $1 AND content_hash > $2 \
         ORDER BY content_hash LIMIT $3"
    );
}

/// An artifact row (columns of `sql::columns!`) as the record the reader works from.
fn record_from(row: &Row, op: &'static str) -> Result<ArtifactRecord> {
    let map = |err| error::from_pg(op, err);
    let Value::Object(metadata) = row.try_get::<_, Value>(6).map_err(map)? else {
        return Err(Error::corruption(
            "stored artifact metadata is not a JSON object",
        ));
    };
    let blob: Uuid = row.try_get(1).map_err(map)?;
    let record = ArtifactRecord {
        info: ArtifactInfo {
            hash: row.try_get(0).map_err(map)?,
            size: stored_u64(row.try_get(2).map_err(map)?, "size")?,
            content_type: row.try_get(5).map_err(map)?,
            metadata,
            refcount: stored_u64(row.try_get(7).map_err(map)?, "refcount")?,
            created_at: join(row.try_get(8).map_err(map)?, row.try_get(9).map_err(map)?)?,
        },
        blob: blob.simple().to_string(),
        chunk_size: stored_u64(row.try_get(3).map_err(map)?, "chunk_size")?,
        chunks: stored_u64(row.try_get(4).map_err(map)?, "chunks")?,
    };
    record.check_layout()?;
    Ok(record)
}

/// The reference a put returns, from a `RETURNING size, content_type, refcount` row.
fn reference_from(hash: &str, row: &Row, op: &'static str) -> Result<ArtifactRef> {
    let map = |err| error::from_pg(op, err);
    Ok(ArtifactRef {
        hash: hash.to_owned(),
        size: stored_u64(row.try_get(0).map_err(map)?, "size")?,
        content_type: row.try_get(1).map_err(map)?,
        refcount: stored_u64(row.try_get(2).map_err(map)?, "refcount")?,
    })
}

impl PostgresArtifactStore {
    /// An artifact store on `backend`'s pool and tenant, cutting new content into chunks of
    /// [`DEFAULT_CHUNK_SIZE`]. The tables come from the embedded migrations (`auto_migrate`,
    /// or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresArtifactStore {
        PostgresArtifactStore {
            backend: backend.clone(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// An artifact store whose new content is cut into chunks of `chunk_size` bytes; stores
    /// with different chunk sizes read each other's artifacts.
    ///
    /// # Errors
    /// `InvalidInput` when `chunk_size` is 0 or above [`MAX_VALUE_BYTES`].
    pub fn with_chunk_size(
        backend: &PostgresBackend,
        chunk_size: usize,
    ) -> Result<PostgresArtifactStore> {
        if chunk_size == 0 || chunk_size > MAX_VALUE_BYTES {
            return Err(Error::invalid_input(format!(
                "chunk size must be 1 to {MAX_VALUE_BYTES} bytes, got {chunk_size}"
            )));
        }
        Ok(PostgresArtifactStore {
            backend: backend.clone(),
            chunk_size,
        })
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Adds a reference to the stored content `hash`; `None` when it is not stored.
    async fn join(&self, hash: &str) -> Result<Option<ArtifactRef>> {
        const OP: &str = "artifact_put";
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::JOIN, &[&tenant, &hash], OP).await?;
        rows.first()
            .map(|row| reference_from(hash, row, OP))
            .transpose()
    }

    /// A verifying reader of the content of `record`.
    ///
    /// # Errors
    /// `Corruption` when the record's blob id is not a UUID.
    fn reader(&self, record: ArtifactRecord) -> Result<ArtifactReader> {
        let source = RowChunks::new(&self.backend, &record)?;
        Ok(ArtifactReader {
            info: record.info.clone(),
            chunks: chunk_stream(source, record),
        })
    }

    /// The record of artifact `hash` (canonical), if stored.
    async fn record(&self, hash: &str, op: &'static str) -> Result<Option<ArtifactRecord>> {
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::GET, &[&tenant, &hash], op).await?;
        rows.first().map(|row| record_from(row, op)).transpose()
    }
}

#[async_trait]
impl ArtifactStore for PostgresArtifactStore {
    async fn put(&self, content: Bytes, options: PutOptions) -> Result<ArtifactRef> {
        options.validate()?;
        // Content of more than a chunk is not sent if it is stored already; a single chunk
        // costs less to send than the extra round trip of asking first.
        if content.len() > self.chunk_size {
            if let Some(reference) = self.join(&content_hash(&content)).await? {
                return Ok(reference);
            }
        }
        let once = futures::stream::once(async { Ok(content) }).boxed();
        self.upload(once, &options).await
    }

    async fn put_stream(
        &self,
        content: ChunkStream<'_>,
        options: PutOptions,
    ) -> Result<ArtifactRef> {
        options.validate()?;
        self.upload(content, &options).await
    }

    async fn get(&self, hash: &str) -> Result<Option<Artifact>> {
        match self.open(hash).await? {
            Some(reader) => reader.read_all().await.map(Some),
            None => Ok(None),
        }
    }

    async fn open(&self, hash: &str) -> Result<Option<ArtifactReader>> {
        let hash = check_hash(hash)?;
        let Some(record) = self.record(&hash, "artifact_open").await? else {
            return Ok(None);
        };
        self.reader(record).map(Some)
    }

    async fn stat(&self, hash: &str) -> Result<Option<ArtifactInfo>> {
        let hash = check_hash(hash)?;
        let record = self.record(&hash, "artifact_stat").await?;
        Ok(record.map(|record| record.info))
    }

    async fn exists(&self, hash: &str) -> Result<bool> {
        const OP: &str = "artifact_exists";
        let hash = check_hash(hash)?;
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::EXISTS, &[&tenant, &hash], OP).await?;
        match rows.first() {
            Some(row) => row.try_get(0).map_err(|err| error::from_pg(OP, err)),
            None => Ok(false),
        }
    }

    async fn release(&self, hash: &str) -> Result<u64> {
        const OP: &str = "artifact_release";
        let hash = check_hash(hash)?;
        let tenant = self.tenant();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant, &hash];
        let conn = self.backend.conn(OP).await?;
        let lock = conn.statement(sql::LOCK, OP).await?;
        let free = conn.statement(sql::FREE, OP).await?;
        let decrement = conn.statement(sql::DECREMENT, OP).await?;
        let client = conn.client();
        let (locked, _, _) = conn
            .run(
                self.backend.tenant_id(),
                OP,
                futures::future::try_join3(
                    client.query(&lock, &params),
                    client.execute(&free, &params),
                    client.execute(&decrement, &params),
                ),
            )
            .await?;
        let Some(row) = locked.first() else {
            return Err(Error::new(ErrorKind::NotFound, "artifact does not exist")
                .with_context("hash", hash));
        };
        // The row stayed locked from the read to the commit: one reference fewer remains.
        let held = stored_u64(
            row.try_get(0).map_err(|err| error::from_pg(OP, err))?,
            "refcount",
        )?;
        Ok(held.saturating_sub(1))
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<ArtifactInfo>> {
        const OP: &str = "artifact_list";
        check_scan_limit(limit)?;
        let after = after.map(check_hash).transpose()?.unwrap_or_default();
        let tenant = self.tenant();
        // One row more than asked tells whether another page follows.
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let rows = query(&self.backend, sql::LIST, &[&tenant, &after, &fetch], OP).await?;
        let more = rows.len() > limit;
        let items = rows
            .iter()
            .take(limit)
            .map(|row| record_from(row, OP).map(|record| record.info))
            .collect::<Result<Vec<_>>>()?;
        let next_after = more
            .then(|| items.last().map(|info| info.hash.clone()))
            .flatten();
        Ok(Page { items, next_after })
    }
}
