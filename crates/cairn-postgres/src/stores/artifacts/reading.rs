//! The chunks of a stored artifact, read in batches for the generic store's verifying reader.

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Result, StorageBackend};
use cairn_stores::artifacts::chunking::FLUSH_BYTES;
use cairn_stores::artifacts::{ArtifactRecord, ChunkSource};
use uuid::Uuid;

use super::sql;
use crate::backend::PostgresBackend;
use crate::error;
use crate::stores::{query, stored_u64};

/// The `artifact_chunks` rows of one artifact's blob, [`FLUSH_BYTES`] worth per query.
pub(super) struct RowChunks {
    backend: PostgresBackend,
    hash: String,
    blob: Uuid,
    batch: i64,
}

impl RowChunks {
    /// The chunks of `record`, read on `backend`'s pool and tenant.
    ///
    /// # Errors
    /// `Corruption` when the record's blob id is not a UUID.
    pub(super) fn new(backend: &PostgresBackend, record: &ArtifactRecord) -> Result<RowChunks> {
        let blob = Uuid::try_parse(&record.blob).map_err(|err| {
            Error::corruption("stored artifact has a malformed blob id").with_source(err)
        })?;
        let batch = (FLUSH_BYTES as u64 / record.chunk_size.max(1)).max(1);
        Ok(RowChunks {
            backend: backend.clone(),
            hash: record.info.hash.clone(),
            blob,
            batch: i64::try_from(batch).unwrap_or(i64::MAX),
        })
    }
}

#[async_trait]
impl ChunkSource for RowChunks {
    async fn fetch(&self, from: u64) -> Result<Vec<Bytes>> {
        const OP: &str = "artifact_read";
        let tenant = self.backend.tenant_id().as_str();
        let first = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = query(
            &self.backend,
            sql::CHUNKS,
            &[&tenant, &self.blob, &first, &self.batch],
            OP,
        )
        .await?;
        let map = |err| error::from_pg(OP, err);
        let mut chunks = Vec::with_capacity(rows.len());
        for (expected, row) in (from..).zip(&rows) {
            // A gap ends the batch; the reader reports the missing chunk.
            if stored_u64(row.try_get(0).map_err(map)?, "seq")? != expected {
                break;
            }
            chunks.push(Bytes::from(row.try_get::<_, Vec<u8>>(1).map_err(map)?));
        }
        Ok(chunks)
    }

    async fn still_stored(&self) -> Result<bool> {
        const OP: &str = "artifact_read";
        let tenant = self.backend.tenant_id().as_str();
        let rows = query(
            &self.backend,
            sql::STILL_STORED,
            &[&tenant, &self.hash, &self.blob],
            OP,
        )
        .await?;
        match rows.first() {
            Some(row) => row.try_get(0).map_err(|err| error::from_pg(OP, err)),
            None => Ok(false),
        }
    }
}
