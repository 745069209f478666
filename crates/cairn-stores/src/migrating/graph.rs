//! [`MigratingGraphStore`].

use async_trait::async_trait;
use cairn_core::{Bytes, Result};
use time::OffsetDateTime;

use super::{Scope, Side, migrating_store, portable_records};
use crate::graph::{
    AsOf, Direction, Entity, EntityInput, GraphRecord, GraphStore, Relationship, RelationshipInput,
    TraversalHit, TraverseRequest,
};
use crate::paging::{Page, PageRequest};

migrating_store!(
    /// A [`GraphStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). Every write locks its entity or relationship id and is mirrored
    /// as every version of that id the deciding side then holds (its history), so the new
    /// version and the one it closed carry the deciding side's versions and transaction
    /// times on both sides. `get_entity`, `get_entity_as_of`, `get_relationship` and
    /// `get_relationship_as_of` fall back to the old side; histories, listings,
    /// `relationships_of` and `traverse` do not.
    MigratingGraphStore,
    GraphStore
);

impl MigratingGraphStore {
    /// The portable records of every version of entity `id` on `side`.
    async fn entity_versions(&self, side: Side, id: &str) -> Result<Vec<Bytes>> {
        let history = self.on(side).entity_history(id).await?;
        let records: Vec<GraphRecord> = history.into_iter().map(GraphRecord::Entity).collect();
        portable_records(&records)
    }

    /// The portable records of every version of relationship `id` on `side`.
    async fn relationship_versions(&self, side: Side, id: &str) -> Result<Vec<Bytes>> {
        let history = self.on(side).relationship_history(id).await?;
        let records: Vec<GraphRecord> =
            history.into_iter().map(GraphRecord::Relationship).collect();
        portable_records(&records)
    }

    /// Runs a write of entity `id` on the deciding side, mirroring the entity's versions.
    async fn entity_write<'a, F, Fut>(&'a self, id: &'a str, run: F) -> Result<Entity>
    where
        F: FnOnce(&'a dyn GraphStore) -> Fut,
        Fut: Future<Output = Result<Entity>>,
    {
        self.migration
            .write(Scope::Record(id), |side: Side| async move {
                let entity = run(self.on(side)).await?;
                let mirror = self.entity_versions(side, id).await?;
                Ok((entity, mirror))
            })
            .await
    }

    /// Runs a write of relationship `id` on the deciding side, mirroring the relationship's
    /// versions.
    async fn relationship_write<'a, F, Fut>(&'a self, id: &'a str, run: F) -> Result<Relationship>
    where
        F: FnOnce(&'a dyn GraphStore) -> Fut,
        Fut: Future<Output = Result<Relationship>>,
    {
        self.migration
            .write(Scope::Record(id), |side: Side| async move {
                let relationship = run(self.on(side)).await?;
                let mirror = self.relationship_versions(side, id).await?;
                Ok((relationship, mirror))
            })
            .await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl GraphStore for MigratingGraphStore {
    async fn upsert_entity(&self, input: EntityInput) -> Result<Entity> {
        let id = input.id.clone();
        self.entity_write(&id, |store| store.upsert_entity(input))
            .await
    }

    async fn close_entity(&self, id: &str, valid_to: OffsetDateTime) -> Result<Entity> {
        self.entity_write(id, |store| store.close_entity(id, valid_to))
            .await
    }

    async fn get_entity(&self, id: &str) -> Result<Option<Entity>> {
        self.migration
            .read_one(|side| self.on(side).get_entity(id))
            .await
    }

    async fn get_entity_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Entity>> {
        self.migration
            .read_one(|side| self.on(side).get_entity_as_of(id, as_of))
            .await
    }

    async fn entity_history(&self, id: &str) -> Result<Vec<Entity>> {
        self.on(self.migration.reader()).entity_history(id).await
    }

    async fn list_entities(
        &self,
        entity_type: Option<&str>,
        as_of: Option<AsOf>,
        page: PageRequest,
    ) -> Result<Page<Entity>> {
        self.on(self.migration.reader())
            .list_entities(entity_type, as_of, page)
            .await
    }

    async fn upsert_relationship(&self, input: RelationshipInput) -> Result<Relationship> {
        let id = input.id.clone();
        self.relationship_write(&id, |store| store.upsert_relationship(input))
            .await
    }

    async fn close_relationship(&self, id: &str, valid_to: OffsetDateTime) -> Result<Relationship> {
        self.relationship_write(id, |store| store.close_relationship(id, valid_to))
            .await
    }

    async fn get_relationship(&self, id: &str) -> Result<Option<Relationship>> {
        self.migration
            .read_one(|side| self.on(side).get_relationship(id))
            .await
    }

    async fn get_relationship_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Relationship>> {
        self.migration
            .read_one(|side| self.on(side).get_relationship_as_of(id, as_of))
            .await
    }

    async fn relationship_history(&self, id: &str) -> Result<Vec<Relationship>> {
        self.on(self.migration.reader())
            .relationship_history(id)
            .await
    }

    async fn relationships_of(
        &self,
        id: &str,
        direction: Direction,
        relation_type: Option<&str>,
        as_of: Option<AsOf>,
    ) -> Result<Vec<Relationship>> {
        self.on(self.migration.reader())
            .relationships_of(id, direction, relation_type, as_of)
            .await
    }

    async fn traverse(&self, start: &str, request: TraverseRequest) -> Result<Vec<TraversalHit>> {
        self.on(self.migration.reader())
            .traverse(start, request)
            .await
    }
}
