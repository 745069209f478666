//! [`MigratingVectorStore`].

use async_trait::async_trait;
use cairn_core::{Error, ErrorKind, Result};

use super::{Scope, Side, migrating_store};
use crate::vectors::{
    CollectionInfo, Metadata, Metric, SearchHit, SearchRequest, VectorRecord, VectorStore,
    encode_vector_record,
};

migrating_store!(
    /// A [`VectorStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). Every write locks its collection. A collection's creation is
    /// mirrored as the collection (its creation time as the deciding side set it); upserts
    /// as the vectors the deciding side then holds, read back, with their collection; deletes
    /// run on both sides (a vector delete in a collection the other side does not hold yet
    /// has nothing to remove there). `collection` and `get` fall back to the old side;
    /// `count` and `search` do not.
    MigratingVectorStore,
    VectorStore
);

impl MigratingVectorStore {
    /// Runs a vector write of `collection` on the deciding side, then mirrors the vectors
    /// `ids` as that side now holds them (an id it no longer holds is not mirrored).
    async fn upserted<'a, F, Fut>(
        &'a self,
        collection: &'a str,
        ids: &'a [&'a str],
        run: F,
    ) -> Result<()>
    where
        F: FnOnce(&'a dyn VectorStore) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        self.migration
            .write(Scope::Record(collection), |side: Side| async move {
                let store = self.on(side);
                run(store).await?;
                let info = stored_collection(store, collection).await?;
                let mut mirror = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(vector) = store.get(collection, id).await? {
                        mirror.push(encode_vector_record(&info, Some(&vector))?);
                    }
                }
                Ok(((), mirror))
            })
            .await
    }
}

/// The parameters of `name`, which a write on `store` just found.
///
/// # Errors
/// `NotFound` when the collection is gone (it cannot be while its lock is held).
async fn stored_collection(store: &dyn VectorStore, name: &str) -> Result<CollectionInfo> {
    store.collection(name).await?.ok_or_else(|| {
        Error::new(ErrorKind::NotFound, "vector collection does not exist")
            .with_context("collection", name)
    })
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl VectorStore for MigratingVectorStore {
    async fn create_collection(
        &self,
        name: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<CollectionInfo> {
        self.migration
            .write(Scope::Record(name), |side| async move {
                let info = self
                    .on(side)
                    .create_collection(name, dimension, metric)
                    .await?;
                let mirror = vec![encode_vector_record(&info, None)?];
                Ok((info, mirror))
            })
            .await
    }

    async fn collection(&self, name: &str) -> Result<Option<CollectionInfo>> {
        self.migration
            .read_one(|side| self.on(side).collection(name))
            .await
    }

    async fn delete_collection(&self, name: &str) -> Result<bool> {
        self.migration
            .write_both(Scope::Record(name), |side| {
                self.on(side).delete_collection(name)
            })
            .await
    }

    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        vector: Vec<f32>,
        metadata: Metadata,
    ) -> Result<()> {
        self.upserted(collection, &[id], |store| {
            store.upsert(collection, id, vector, metadata)
        })
        .await
    }

    async fn upsert_batch(&self, collection: &str, records: Vec<VectorRecord>) -> Result<()> {
        let ids: Vec<String> = records.iter().map(|record| record.id.clone()).collect();
        let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        self.upserted(collection, &ids, |store| {
            store.upsert_batch(collection, records)
        })
        .await
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<VectorRecord>> {
        self.migration
            .read_one(|side| self.on(side).get(collection, id))
            .await
    }

    async fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        self.migration
            .write_then(
                Scope::Record(collection),
                |side| self.on(side).delete(collection, id),
                |_, other, _| async move {
                    // `NotFound`: the other side does not hold the collection yet (before the
                    // backfill), so it holds no vector to remove either.
                    match self.on(other).delete(collection, id).await {
                        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
                        result => result.map(drop),
                    }
                },
            )
            .await
    }

    async fn count(&self, collection: &str) -> Result<u64> {
        self.on(self.migration.reader()).count(collection).await
    }

    async fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<SearchHit>> {
        self.on(self.migration.reader())
            .search(collection, request)
            .await
    }
}
