//! [`PortableStore`] for [`PostgresArtifactStore`]: the generic store's records, one per
//! artifact with its whole content.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use cairn_core::{Bytes, Result, StorageBackend};
use cairn_stores::artifacts::chunking::{Chunker, FLUSH_BYTES};
use cairn_stores::artifacts::{ArtifactInfo, check_portable_artifact};
use cairn_stores::portable::{ExportPage, PortableStore, decode_portable, encode_portable};
use time::OffsetDateTime;
use tokio_postgres::Statement;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use super::{PostgresArtifactStore, record_from, sql};
use crate::stores::timestamps::split;
use crate::stores::{bigint, export_after_id, export_fetch, query};

/// Content missing here, cut into this store's chunks for an import.
struct NewContent<'a> {
    info: &'a ArtifactInfo,
    blob: Uuid,
    chunks: Vec<Bytes>,
}

/// The columns of an artifact row written by an import.
struct Columns<'a> {
    info: &'a ArtifactInfo,
    metadata: Json<&'a serde_json::Map<String, serde_json::Value>>,
    refcount: i64,
    at: OffsetDateTime,
    ns: i16,
}

impl<'a> Columns<'a> {
    fn new(info: &'a ArtifactInfo) -> Columns<'a> {
        let (at, ns) = split(info.created_at);
        Columns {
            info,
            metadata: Json(&info.metadata),
            refcount: bigint(info.refcount),
            at,
            ns,
        }
    }
}

/// Records as the generic store's, exported in hash order with the last hash as the cursor.
/// An import is one transaction: the description of content stored here is replaced
/// (reference count included) and its chunks kept; content missing here is inserted in
/// this store's chunk size (statements of about 8 MiB) with its row. A page needs memory for
/// its whole artifacts (see [`check_portable_artifact`]).
#[async_trait]
impl PortableStore for PostgresArtifactStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        const OP: &str = "artifact_export";
        let fetch = export_fetch(limit)?;
        let after = export_after_id(after)?.unwrap_or_default();
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::LIST, &[&tenant, &after, &fetch], OP).await?;
        let more = rows.len() > limit;
        let mut records = Vec::with_capacity(limit.min(rows.len()));
        let mut last = None;
        for row in rows.iter().take(limit) {
            let record = record_from(row, OP)?;
            last = Some(record.info.hash.clone());
            let artifact = self.reader(record)?.read_all().await?;
            records.push(encode_portable(&artifact.info, &artifact.content)?);
        }
        let next = last.filter(|_| more).map(String::into_bytes);
        Ok(ExportPage { records, next })
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        const OP: &str = "artifact_import";
        let mut artifacts = BTreeMap::new();
        for record in records {
            let (info, content): (ArtifactInfo, &[u8]) = decode_portable(record)?;
            check_portable_artifact(&info, content)?;
            let content = record.slice_ref(content);
            artifacts.insert(info.hash.clone(), (info, content));
        }
        if artifacts.is_empty() {
            return Ok(());
        }
        let tenant = self.tenant();
        let hashes: Vec<&str> = artifacts.keys().map(String::as_str).collect();
        let stored: BTreeSet<String> = query(&self.backend, sql::STORED, &[&tenant, &hashes], OP)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(|err| crate::error::from_pg(OP, err))?;
        let mut updated = Vec::new();
        let mut created = Vec::new();
        for (hash, (info, content)) in &artifacts {
            if stored.contains(hash) {
                updated.push(Columns::new(info));
                continue;
            }
            let mut chunker = Chunker::new(self.chunk_size);
            let mut chunks = chunker.push(content.clone());
            chunks.extend(chunker.finish().0);
            created.push((
                Columns::new(info),
                NewContent {
                    info,
                    blob: Uuid::now_v7(),
                    chunks,
                },
            ));
        }
        // The chunk statements: (blob, first seq, chunks) of about FLUSH_BYTES each.
        let mut groups: Vec<(&Uuid, i64, Vec<&[u8]>)> = Vec::new();
        for (_, new) in &created {
            let mut first = 0u64;
            let mut group: Vec<&[u8]> = Vec::new();
            let mut bytes = 0;
            for (seq, chunk) in new.chunks.iter().enumerate() {
                if bytes >= FLUSH_BYTES {
                    groups.push((&new.blob, bigint(first), std::mem::take(&mut group)));
                    (first, bytes) = (seq as u64, 0);
                }
                bytes += chunk.len();
                group.push(chunk);
            }
            if !group.is_empty() {
                groups.push((&new.blob, bigint(first), group));
            }
        }
        let shapes: Vec<(i64, i64, i64)> = created
            .iter()
            .map(|(_, new)| {
                (
                    bigint(new.info.size),
                    bigint(self.chunk_size as u64),
                    bigint(new.chunks.len() as u64),
                )
            })
            .collect();

        let conn = self.backend.conn(OP).await?;
        let insert_chunks = conn.statement(sql::INSERT_CHUNKS, OP).await?;
        let insert_row = conn.statement(sql::IMPORT_NEW, OP).await?;
        let update_row = conn.statement(sql::IMPORT_STORED, OP).await?;
        // The chunks before their rows (the foreign key is checked at commit anyway); all
        // sent at once, one round trip.
        let mut statements: Vec<(&Statement, Vec<&(dyn ToSql + Sync)>)> = Vec::new();
        for (blob, first, data) in &groups {
            statements.push((&insert_chunks, vec![&tenant, *blob, first, data]));
        }
        for ((row, new), (size, chunk_size, count)) in created.iter().zip(&shapes) {
            statements.push((
                &insert_row,
                vec![
                    &tenant,
                    &row.info.hash,
                    &new.blob,
                    size,
                    chunk_size,
                    count,
                    &row.info.content_type,
                    &row.metadata,
                    &row.refcount,
                    &row.at,
                    &row.ns,
                ],
            ));
        }
        for row in &updated {
            statements.push((
                &update_row,
                vec![
                    &tenant,
                    &row.info.hash,
                    &row.info.content_type,
                    &row.metadata,
                    &row.refcount,
                    &row.at,
                    &row.ns,
                ],
            ));
        }
        conn.run_all(self.backend.tenant_id(), OP, &statements)
            .await
    }
}
