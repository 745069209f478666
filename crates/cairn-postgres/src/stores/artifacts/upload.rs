//! Writing content: one transaction that streams chunks in and then inserts or joins the
//! artifact row.

use std::mem;

use cairn_core::{Bytes, Error, Result, StorageBackend, TenantId};
use cairn_stores::artifacts::chunking::{Chunker, FLUSH_BYTES};
use cairn_stores::artifacts::{ArtifactRef, ChunkStream, PutOptions};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio_postgres::Statement;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use super::{PostgresArtifactStore, reference_from, sql};
use crate::conn::Conn;
use crate::error;
use crate::stores::bigint;
use crate::stores::timestamps::split;

const OP: &str = "artifact_put";

/// A blob being written inside the put's transaction, which its first statement opens.
struct Blob<'a> {
    conn: &'a Conn,
    insert: Statement,
    tenant_id: &'a TenantId,
    tenant: &'a str,
    /// Whether the transaction is open.
    begun: bool,
    id: Uuid,
    chunker: Chunker,
    /// Full chunks not yet sent.
    pending: Vec<Bytes>,
    pending_bytes: usize,
    /// Chunks sent so far: the `seq` of the first pending one.
    sent: u64,
}

impl Blob<'_> {
    /// Cuts `bytes` into chunks and sends them whenever [`FLUSH_BYTES`] are pending, so one
    /// statement carries about that much whatever the size of `bytes`.
    async fn push(&mut self, bytes: Bytes) -> Result<()> {
        for chunk in self.chunker.push(bytes) {
            self.pending_bytes += chunk.len();
            self.pending.push(chunk);
            if self.pending_bytes >= FLUSH_BYTES {
                let chunks = mem::take(&mut self.pending);
                self.pending_bytes = 0;
                let conn = self.conn;
                if self.begun {
                    self.send(&chunks)
                        .await
                        .map_err(|err| error::from_pg(OP, err))?;
                } else {
                    self.begun = true;
                    let tenant_id = self.tenant_id;
                    conn.begin_with(tenant_id, OP, self.send(&chunks)).await?;
                }
            }
        }
        Ok(())
    }

    /// Inserts `chunks` as the next ones of the blob: one statement.
    async fn send(&mut self, chunks: &[Bytes]) -> std::result::Result<u64, tokio_postgres::Error> {
        let first = bigint(self.sent);
        self.sent += chunks.len() as u64;
        let data: Vec<&[u8]> = chunks.iter().map(|c| c.as_ref()).collect();
        self.conn
            .client()
            .execute(&self.insert, &[&self.tenant, &self.id, &first, &data])
            .await
    }
}

impl PostgresArtifactStore {
    /// Stores `content` and takes a reference to it, in one transaction: chunks are inserted
    /// as they arrive (the first statement opens the transaction), then the last ones, the
    /// artifact row (or one more reference to the stored content) and the removal of the
    /// chunks if the content was already stored go in one pipelined round trip with the
    /// commit. Content of up to [`FLUSH_BYTES`] is stored in that one round trip.
    pub(super) async fn upload(
        &self,
        mut content: ChunkStream<'_>,
        options: &PutOptions,
    ) -> Result<ArtifactRef> {
        let conn = self.backend.conn(OP).await?;
        let insert = conn.statement(sql::INSERT_CHUNKS, OP).await?;
        let upsert = conn.statement(sql::UPSERT, OP).await?;
        let discard = conn.statement(sql::DISCARD, OP).await?;
        let mut blob = Blob {
            conn: &conn,
            insert,
            tenant_id: self.backend.tenant_id(),
            tenant: self.tenant(),
            begun: false,
            id: Uuid::now_v7(),
            chunker: Chunker::new(self.chunk_size),
            pending: Vec::new(),
            pending_bytes: 0,
            sent: 0,
        };
        while let Some(piece) = content.next().await {
            let pushed = match piece {
                Ok(bytes) => blob.push(bytes).await,
                Err(err) => Err(err),
            };
            if let Err(err) = pushed {
                return Err(if blob.begun {
                    abandon(&conn, err).await
                } else {
                    err
                });
            }
        }
        let chunker = mem::replace(&mut blob.chunker, Chunker::new(1));
        let (last, summary) = chunker.finish();
        let mut chunks = mem::take(&mut blob.pending);
        chunks.extend(last);
        let (at, ns) = split(OffsetDateTime::now_utc());
        let tenant = blob.tenant;
        let id = blob.id;
        let size = bigint(summary.size);
        let chunk_size = bigint(self.chunk_size as u64);
        let count = bigint(summary.chunks);
        let metadata = Json(&options.metadata);
        let row: [&(dyn ToSql + Sync); 10] = [
            &tenant,
            &summary.hash,
            &id,
            &size,
            &chunk_size,
            &count,
            &options.content_type,
            &metadata,
            &at,
            &ns,
        ];
        let client = conn.client();
        let begun = blob.begun;
        let tenant_id = blob.tenant_id;
        let blob_params: [&(dyn ToSql + Sync); 2] = [&tenant, &id];
        let last = futures::future::try_join3(
            blob.send(&chunks),
            client.query_one(&upsert, &row),
            client.execute(&discard, &blob_params),
        );
        let (_, stored, _) = if begun {
            conn.commit_with(OP, last).await?
        } else {
            conn.run(tenant_id, OP, last).await?
        };
        reference_from(&summary.hash, &stored, OP)
    }
}

/// Rolls the put's transaction back after `err`, noting on `err` if that failed too (the
/// connection is then discarded, which rolls back as well).
async fn abandon(conn: &Conn, err: Error) -> Error {
    match conn.rollback(OP).await {
        Ok(()) => err,
        Err(rollback) => err.with_context("rollback failed", rollback),
    }
}
