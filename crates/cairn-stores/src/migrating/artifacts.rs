//! [`MigratingArtifactStore`].

use async_trait::async_trait;
use cairn_core::{Bytes, ErrorKind, Result};

use super::{Scope, Side, migrating_store};
use crate::artifacts::chunking::content_hash;
use crate::artifacts::{
    Artifact, ArtifactInfo, ArtifactReader, ArtifactRef, ArtifactStore, ChunkStream, PutOptions,
    check_hash,
};
use crate::paging::Page;
use crate::portable::encode_portable;

migrating_store!(
    /// An [`ArtifactStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). A put, and a release leaving references, are mirrored as the
    /// artifact the deciding side then holds, read back with its content (its reference
    /// count and creation time included), so the other side's count becomes the deciding
    /// side's exactly; a release that removes the artifact on the deciding side releases
    /// every reference the other side holds (none when it does not hold it yet, before the
    /// backfill). `put` and `release` lock the artifact's hash; `put_stream`, whose hash is known
    /// only once stored, holds the gate exclusively. `get`, `open`, `stat` and `exists` fall
    /// back to the old side; `list` does not.
    MigratingArtifactStore,
    ArtifactStore
);

impl MigratingArtifactStore {
    /// The portable record of artifact `hash` as `side` holds it (none when it holds none).
    async fn record_of(&self, side: Side, hash: &str) -> Result<Vec<Bytes>> {
        let artifact = self.on(side).get(hash).await?;
        artifact
            .map(|artifact| encode_portable(&artifact.info, &artifact.content))
            .into_iter()
            .collect()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ArtifactStore for MigratingArtifactStore {
    async fn put(&self, content: Bytes, options: PutOptions) -> Result<ArtifactRef> {
        let hash = content_hash(&content);
        self.migration
            .write(Scope::Record(&hash), |side| async move {
                let stored = self.on(side).put(content, options).await?;
                let mirror = self.record_of(side, &stored.hash).await?;
                Ok((stored, mirror))
            })
            .await
    }

    async fn put_stream(
        &self,
        content: ChunkStream<'_>,
        options: PutOptions,
    ) -> Result<ArtifactRef> {
        self.migration
            .write(Scope::All, |side| async move {
                let stored = self.on(side).put_stream(content, options).await?;
                let mirror = self.record_of(side, &stored.hash).await?;
                Ok((stored, mirror))
            })
            .await
    }

    async fn get(&self, hash: &str) -> Result<Option<Artifact>> {
        self.migration
            .read_one(|side| self.on(side).get(hash))
            .await
    }

    async fn open(&self, hash: &str) -> Result<Option<ArtifactReader>> {
        self.migration
            .read_one(|side| self.on(side).open(hash))
            .await
    }

    async fn stat(&self, hash: &str) -> Result<Option<ArtifactInfo>> {
        self.migration
            .read_one(|side| self.on(side).stat(hash))
            .await
    }

    async fn exists(&self, hash: &str) -> Result<bool> {
        let exists = self
            .migration
            .read_one(|side| async move { Ok(self.on(side).exists(hash).await?.then_some(())) })
            .await?;
        Ok(exists.is_some())
    }

    async fn release(&self, hash: &str) -> Result<u64> {
        let hash = check_hash(hash)?;
        let hash = hash.as_str();
        self.migration
            .write_then(
                Scope::Record(hash),
                |side| self.on(side).release(hash),
                |deciding, other, remaining| async move {
                    if remaining > 0 {
                        let records = self.record_of(deciding, hash).await?;
                        return self.on(other).import(&records).await;
                    }
                    // Removed on the deciding side: give up every reference the other holds
                    // (none when it does not hold the artifact yet, before the backfill).
                    loop {
                        match self.on(other).release(hash).await {
                            Ok(0) => return Ok(()),
                            Ok(_) => {}
                            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
                            Err(err) => return Err(err),
                        }
                    }
                },
            )
            .await
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<ArtifactInfo>> {
        self.on(self.migration.reader()).list(after, limit).await
    }
}
