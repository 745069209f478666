//! The vector store's portable form, shared by every implementation: [`PortableVector`]
//! records, the export walk ([`export_vectors`] over a [`VectorExportSource`]) and the checks
//! of an import ([`decode_vector_import`], [`check_import_into`]).
//!
//! A record is a collection or one vector of it, and always carries the whole collection, so
//! every record imports on its own and an empty collection is copied too. The vector's
//! components travel in the blob as `f32` little-endian (four bytes each, bit-exact and
//! compact), the rest in the JSON metadata. An export visits collections in name order and,
//! after each collection's record, its vectors in id order; the cursor is the collection name
//! and the last vector id exported from it.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, Result};
use serde::{Deserialize, Serialize};

use super::{CollectionInfo, Metadata, VectorRecord, check_dimension, check_vector};
use crate::codec::check_id;
use crate::portable::{
    ExportPage, check_export_limit, check_portable_time, decode_cursor, decode_portable,
    encode_cursor, encode_portable, page_of,
};

/// The metadata of a vector store's portable record; the blob holds the vector's components
/// as `f32` little-endian, and is empty for a collection's own record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortableVector {
    /// The collection (name, dimension, metric, creation time).
    pub collection: CollectionInfo,
    /// The vector; `None` for the record of the collection itself.
    pub vector: Option<PortableVectorMeta>,
}

/// A vector's fields other than its components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortableVectorMeta {
    /// The vector's id.
    pub id: String,
    /// Its metadata.
    pub metadata: Metadata,
}

/// Encodes the portable record of `collection` (without `vector`) or of one of its vectors.
///
/// # Errors
/// As [`encode_portable`].
pub fn encode_vector_record(
    collection: &CollectionInfo,
    vector: Option<&VectorRecord>,
) -> Result<Bytes> {
    let meta = PortableVector {
        collection: collection.clone(),
        vector: vector.map(|record| PortableVectorMeta {
            id: record.id.clone(),
            metadata: record.metadata.clone(),
        }),
    };
    let blob: Vec<u8> = vector
        .map(|record| record.vector.iter().flat_map(|x| x.to_le_bytes()).collect())
        .unwrap_or_default();
    encode_portable(&meta, &blob)
}

/// What an export reads from a vector store implementation.
#[async_trait]
pub trait VectorExportSource: Send + Sync {
    /// A collection as the implementation reads it.
    type Collection: Send + Sync;

    /// The collection's parameters.
    fn info(collection: &Self::Collection) -> &CollectionInfo;

    /// Collection `name`; `None` when it does not exist.
    async fn collection_named(&self, name: &str) -> Result<Option<Self::Collection>>;

    /// The first collection whose name follows `after` in the implementation's name order
    /// (`None`: the first collection).
    async fn collection_after(&self, after: Option<&str>) -> Result<Option<Self::Collection>>;

    /// Up to `limit` vectors of `collection` whose id follows `after` (`None`: from the
    /// first), in the implementation's id order; fewer only when no more follow.
    async fn vectors_after(
        &self,
        collection: &Self::Collection,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VectorRecord>>;
}

/// Where an export stands: the collection being exported and the last vector id exported
/// from it (`None`: only the collection's own record).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Position {
    collection: String,
    after: Option<String>,
}

/// One export page of a vector store: up to `limit` records after the cursor `after`.
///
/// A collection deleted between two pages is skipped from where the export stood.
///
/// # Errors
/// As [`PortableStore::export_page`](crate::portable::PortableStore::export_page), and the
/// source's errors.
pub async fn export_vectors<S: VectorExportSource>(
    source: &S,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<ExportPage> {
    check_export_limit(limit)?;
    let position: Option<Position> = after.map(decode_cursor).transpose()?;
    // Gather one record more than the page holds: it tells whether another page follows.
    let wanted = limit + 1;
    let (mut current, mut after_id, mut record_due) = match position {
        None => (source.collection_after(None).await?, None, true),
        Some(position) => match source.collection_named(&position.collection).await? {
            Some(collection) => (Some(collection), position.after, false),
            None => (
                source.collection_after(Some(&position.collection)).await?,
                None,
                true,
            ),
        },
    };
    let mut items: Vec<(Position, Bytes)> = Vec::new();
    while let Some(collection) = current {
        let info = S::info(&collection);
        if record_due {
            let position = Position {
                collection: info.name.clone(),
                after: None,
            };
            items.push((position, encode_vector_record(info, None)?));
        }
        if items.len() >= wanted {
            break;
        }
        let vectors = source
            .vectors_after(&collection, after_id.as_deref(), wanted - items.len())
            .await?;
        for vector in &vectors {
            let position = Position {
                collection: info.name.clone(),
                after: Some(vector.id.clone()),
            };
            items.push((position, encode_vector_record(info, Some(vector))?));
        }
        if items.len() >= wanted {
            break;
        }
        current = source.collection_after(Some(&info.name)).await?;
        after_id = None;
        record_due = true;
    }
    page_of(
        items,
        limit,
        |(_, record)| Ok(record.clone()),
        |(position, _)| encode_cursor(position),
    )
}

/// The records of one import for one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionImport {
    /// The collection as the records carry it.
    pub info: CollectionInfo,
    /// Its vectors, checked against it, one per id (the last record of an id wins), in id
    /// order.
    pub vectors: Vec<VectorRecord>,
}

/// Decodes and checks the records of one import, grouped by collection in name order.
///
/// # Errors
/// `Corruption` for a record that does not decode (a blob that is not whole `f32`s, a
/// collection record with a blob); `InvalidInput` for a bad collection name, dimension or
/// creation time (not UTC, outside years 0 to 9999), records of one collection that disagree
/// on it, a bad vector id, or a vector that [`check_vector`] refuses (wrong length, NaN or
/// infinite components, a zero vector under cosine).
pub fn decode_vector_import(records: &[Bytes]) -> Result<Vec<CollectionImport>> {
    let mut collections: BTreeMap<String, (CollectionInfo, BTreeMap<String, VectorRecord>)> =
        BTreeMap::new();
    for record in records {
        let (meta, blob): (PortableVector, &[u8]) = decode_portable(record)?;
        let info = meta.collection;
        let (_, vectors) = match collections.entry(info.name.clone()) {
            Entry::Occupied(entry) => {
                if entry.get().0 != info {
                    return Err(Error::invalid_input(
                        "records of one collection disagree on its parameters",
                    )
                    .with_context("collection", &info.name));
                }
                entry.into_mut()
            }
            Entry::Vacant(entry) => {
                check_id("collection name", &info.name)?;
                check_dimension(info.dimension)?;
                check_portable_time("collection creation", info.created_at)?;
                entry.insert((info.clone(), BTreeMap::new()))
            }
        };
        let Some(vector) = meta.vector else {
            if !blob.is_empty() {
                return Err(Error::corruption("a collection's record carries a blob")
                    .with_context("collection", &info.name));
            }
            continue;
        };
        check_id("vector id", &vector.id)?;
        if blob.len() % 4 != 0 {
            return Err(
                Error::corruption("a vector's components are not whole f32 values")
                    .with_context("collection", &info.name)
                    .with_context("id", &vector.id),
            );
        }
        let components: Vec<f32> = blob
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        check_vector(&components, info.dimension, info.metric).map_err(|e| {
            e.with_context("collection", &info.name)
                .with_context("id", &vector.id)
        })?;
        vectors.insert(
            vector.id.clone(),
            VectorRecord {
                id: vector.id,
                vector: components,
                metadata: vector.metadata,
            },
        );
    }
    Ok(collections
        .into_values()
        .map(|(info, vectors)| CollectionImport {
            info,
            vectors: vectors.into_values().collect(),
        })
        .collect())
}

/// Checks that records of `imported` may be written into the existing collection `existing`
/// (which keeps its own creation time).
///
/// # Errors
/// `InvalidInput` when the dimension or the metric differ.
pub fn check_import_into(existing: &CollectionInfo, imported: &CollectionInfo) -> Result<()> {
    if existing.dimension != imported.dimension || existing.metric != imported.metric {
        return Err(Error::invalid_input(format!(
            "the collection exists with dimension {} and metric {:?}; the records have \
             dimension {} and metric {:?}",
            existing.dimension, existing.metric, imported.dimension, imported.metric
        ))
        .with_context("collection", &existing.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_core::ErrorKind;
    use cairn_memory::MemoryBackend;
    use time::macros::datetime;

    use super::*;
    use crate::portable::PortableStore;
    use crate::vectors::{GenericVectorStore, Metric, VectorStore};

    fn info(name: &str, dimension: usize) -> CollectionInfo {
        CollectionInfo {
            name: name.into(),
            dimension,
            metric: Metric::L2,
            created_at: datetime!(2026-01-02 3:04:05.123456 UTC),
        }
    }

    fn vector(id: &str, components: Vec<f32>) -> VectorRecord {
        VectorRecord {
            id: id.into(),
            vector: components,
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn imports_group_by_collection_and_keep_the_last_record_of_an_id() {
        let a = info("a", 2);
        let records = [
            encode_vector_record(&a, Some(&vector("x", vec![1.0, 2.0]))).unwrap(),
            encode_vector_record(&info("b", 1), None).unwrap(),
            encode_vector_record(&a, Some(&vector("x", vec![3.0, 4.0]))).unwrap(),
        ];
        let plan = decode_vector_import(&records).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].vectors, [vector("x", vec![3.0, 4.0])]);
        assert!(plan[1].vectors.is_empty());

        let other = CollectionInfo {
            metric: Metric::Dot,
            ..a.clone()
        };
        let disagree = [
            records[0].clone(),
            encode_vector_record(&other, None).unwrap(),
        ];
        let err = decode_vector_import(&disagree).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let with_blob = encode_portable(
            &PortableVector {
                collection: a,
                vector: None,
            },
            &[0; 4],
        )
        .unwrap();
        let err = decode_vector_import(&[with_blob]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption);
    }

    #[tokio::test]
    async fn an_export_skips_a_collection_deleted_between_pages() {
        let store = GenericVectorStore::new(Arc::new(MemoryBackend::new()));
        for name in ["a", "b"] {
            store.create_collection(name, 1, Metric::L2).await.unwrap();
            store
                .upsert_batch(name, vec![vector("1", vec![1.0]), vector("2", vec![2.0])])
                .await
                .unwrap();
        }
        let first = store.export_page(None, 2).await.unwrap();
        assert_eq!(first.records.len(), 2);
        store.delete_collection("a").await.unwrap();
        let rest = store.export_page(first.next.as_deref(), 10).await.unwrap();
        assert_eq!(rest.next, None);
        let names: Vec<String> = rest
            .records
            .iter()
            .map(|record| {
                let (meta, _): (PortableVector, &[u8]) = decode_portable(record).unwrap();
                meta.collection.name
            })
            .collect();
        assert_eq!(names, ["b", "b", "b"]);
        let err = store
            .export_page(Some(b"not a cursor"), 2)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
