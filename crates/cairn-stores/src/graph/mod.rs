//! Semantic memory: a bi-temporal knowledge graph of entities and relationships.
//!
//! Every entity and relationship is a chain of immutable versions. Each version carries two
//! time axes ([`Bitemporal`]):
//! - **valid time** (`valid_from`, `valid_to`): when the fact was true in the world;
//! - **transaction time** (`recorded_at`, `superseded_at`): when the store knew it.
//!
//! A write never deletes or rewrites what a version says: it records a new version and sets
//! the previous one's `superseded_at` to the new one's `recorded_at`, so every past state of
//! knowledge stays readable with an [`AsOf`] query. Reads without an `AsOf` see the
//! *current view*: the newest version, if it is valid now.
//!
//! ## Writes
//! - [`GraphStore::upsert_entity`] creates version 1 of a new id; for a known id it records
//!   the next version. Its `entity_type`, `name` and validity come from the input; its
//!   properties are the current version's **merged** with the input's: a shallow, top-level
//!   merge where every input key replaces the stored value of that key (nested objects are
//!   replaced whole) and stored keys missing from the input are kept. A key cannot be
//!   removed; set it to `null` instead. `valid_from` defaults to the time of the write and
//!   `valid_to` to open-ended (also on an update: an update states what holds from
//!   `valid_from` on; to correct a version over its whole validity, pass its `valid_from`).
//! - [`GraphStore::close_entity`] records a version that only changes `valid_to`.
//! - Relationships work the same way; their `from`, `to` and `relation_type` are fixed when
//!   they are created.
//!
//! Concurrent writes to one id are serialised: each one re-reads the current version and
//! merges again when it lost a race, so no update is lost.
//!
//! ## Matching a version on both axes
//! A version matches `AsOf { valid_at, known_at }` when
//! `valid_from <= valid_at < valid_to` (open `valid_to`: no upper bound) **and**
//! `recorded_at <= known_at < superseded_at` (open `superseded_at`: no upper bound). At most
//! one version of an id is known at a given instant, so at most one matches.
//!
//! ## Portable records
//! Every implementation exports every version, current or closed, as a [`GraphRecord`]
//! (see [`crate::portable`]): entity versions first, then relationship versions, each in
//! (id, version) order. An import writes each version under its identity, the id and its
//! version number, replacing what was there, with its own transaction times. It does not
//! require a relationship's endpoints: reads treat a missing endpoint as an entity that is not
//! valid in the view, so pages may arrive in any order.

mod generic;
mod keys;

use std::fmt::Debug;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{OffsetDateTime, UtcOffset};

use crate::codec::check_id;
use crate::paging::{Page, PageRequest};
use crate::portable::check_portable_time;

pub use generic::GenericGraphStore;

/// Deepest traversal [`GraphStore::traverse`] accepts.
pub const MAX_TRAVERSE_DEPTH: usize = 64;

/// The two time axes of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitemporal {
    /// When the version's facts started to hold in the world.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_from: OffsetDateTime,
    /// When they stopped holding (exclusive); `None` while they still hold.
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_to: Option<OffsetDateTime>,
    /// When the store recorded this version.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// When a later version replaced it (exclusive); `None` for the current version.
    #[serde(with = "time::serde::rfc3339::option")]
    pub superseded_at: Option<OffsetDateTime>,
}

impl Bitemporal {
    /// Whether the version was valid at `valid_at`.
    pub fn valid_at(&self, valid_at: OffsetDateTime) -> bool {
        self.valid_from <= valid_at && self.valid_to.is_none_or(|to| valid_at < to)
    }

    /// Whether the store knew this version at `known_at`.
    pub fn known_at(&self, known_at: OffsetDateTime) -> bool {
        self.recorded_at <= known_at && self.superseded_at.is_none_or(|end| known_at < end)
    }

    /// Whether the version matches `as_of` on both axes.
    pub fn matches(&self, as_of: &AsOf) -> bool {
        self.valid_at(as_of.valid_at) && self.known_at(as_of.known_at)
    }
}

/// A point on both time axes for historical reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsOf {
    /// The instant of the world to look at (valid time).
    #[serde(with = "time::serde::rfc3339")]
    pub valid_at: OffsetDateTime,
    /// What the store knew at this instant (transaction time).
    #[serde(with = "time::serde::rfc3339")]
    pub known_at: OffsetDateTime,
}

impl AsOf {
    /// The world at `valid_at` as the store knows it now.
    pub fn valid_at(valid_at: OffsetDateTime) -> AsOf {
        AsOf {
            valid_at,
            known_at: OffsetDateTime::now_utc(),
        }
    }
}

/// One version of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// The caller's id of the entity (1 to 256 bytes).
    pub id: String,
    /// Version number: 1 for the first write, then +1 per write.
    pub version: u64,
    /// The entity's kind, such as `person` (1 to 256 bytes).
    pub entity_type: String,
    /// A human-readable name.
    pub name: String,
    /// Free-form properties.
    pub properties: Map<String, Value>,
    /// Valid and transaction time of this version.
    pub time: Bitemporal,
}

/// What [`GraphStore::upsert_entity`] writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityInput {
    /// The entity's id (1 to 256 bytes).
    pub id: String,
    /// The entity's kind (1 to 256 bytes).
    pub entity_type: String,
    /// A human-readable name.
    pub name: String,
    /// Properties, merged into the current version's (see the module docs).
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Start of validity; `None` means the time of the write.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// End of validity (exclusive); `None` means open-ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_to: Option<OffsetDateTime>,
}

impl EntityInput {
    /// An input valid from now on, with no properties.
    pub fn new(
        id: impl Into<String>,
        entity_type: impl Into<String>,
        name: impl Into<String>,
    ) -> EntityInput {
        EntityInput {
            id: id.into(),
            entity_type: entity_type.into(),
            name: name.into(),
            properties: Map::new(),
            valid_from: None,
            valid_to: None,
        }
    }

    /// Checks the id, the type and the validity interval as far as the input gives it.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or over-long id or type, a time that cannot be expressed
    /// in UTC, or `valid_to <= valid_from`.
    pub fn validate(&self) -> Result<Validity> {
        check_id("entity id", &self.id)?;
        check_id("entity type", &self.entity_type)?;
        Validity::new(self.valid_from, self.valid_to)
    }
}

/// The validity interval of a write, checked by [`EntityInput::validate`] or
/// [`RelationshipInput::validate`], in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity; `None` means the time of the write, which the writer checks
    /// against `valid_to` with [`check_interval`].
    pub valid_from: Option<OffsetDateTime>,
    /// End of validity (exclusive); `None` means open-ended.
    pub valid_to: Option<OffsetDateTime>,
}

impl Validity {
    fn new(valid_from: Option<OffsetDateTime>, valid_to: Option<OffsetDateTime>) -> Result<Self> {
        let valid_from = valid_from.map(|t| to_utc("valid_from", t)).transpose()?;
        let valid_to = valid_to.map(|t| to_utc("valid_to", t)).transpose()?;
        if let Some(from) = valid_from {
            check_interval(from, valid_to)?;
        }
        Ok(Validity {
            valid_from,
            valid_to,
        })
    }
}

/// `t` in UTC, the offset every implementation stores.
///
/// # Errors
/// `InvalidInput` naming `field` when the time cannot be expressed in UTC.
pub fn to_utc(field: &'static str, t: OffsetDateTime) -> Result<OffsetDateTime> {
    t.checked_to_offset(UtcOffset::UTC)
        .ok_or_else(|| Error::invalid_input(format!("{field} is out of range")))
}

/// Checks `valid_from < valid_to` (an open `valid_to` always passes).
///
/// # Errors
/// `InvalidInput` when `valid_to <= valid_from`.
pub fn check_interval(valid_from: OffsetDateTime, valid_to: Option<OffsetDateTime>) -> Result<()> {
    match valid_to {
        Some(to) if to <= valid_from => {
            Err(Error::invalid_input("valid_to must be after valid_from")
                .with_context("valid_from", valid_from)
                .with_context("valid_to", to))
        }
        _ => Ok(()),
    }
}

/// One version of a directed relationship `from -> to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    /// The caller's id of the relationship (1 to 256 bytes).
    pub id: String,
    /// Version number: 1 for the first write, then +1 per write.
    pub version: u64,
    /// Id of the source entity.
    pub from: String,
    /// Id of the target entity.
    pub to: String,
    /// The relationship's kind, such as `works_at` (1 to 256 bytes).
    pub relation_type: String,
    /// Free-form properties.
    pub properties: Map<String, Value>,
    /// Valid and transaction time of this version.
    pub time: Bitemporal,
}

/// What [`GraphStore::upsert_relationship`] writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipInput {
    /// The relationship's id (1 to 256 bytes).
    pub id: String,
    /// Id of the source entity; it must exist.
    pub from: String,
    /// Id of the target entity; it must exist.
    pub to: String,
    /// The relationship's kind (1 to 256 bytes).
    pub relation_type: String,
    /// Properties, merged into the current version's like an entity's.
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Start of validity; `None` means the time of the write.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// End of validity (exclusive); `None` means open-ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_to: Option<OffsetDateTime>,
}

impl RelationshipInput {
    /// An input valid from now on, with no properties.
    pub fn new(
        id: impl Into<String>,
        from: impl Into<String>,
        relation_type: impl Into<String>,
        to: impl Into<String>,
    ) -> RelationshipInput {
        RelationshipInput {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            relation_type: relation_type.into(),
            properties: Map::new(),
            valid_from: None,
            valid_to: None,
        }
    }

    /// Checks the ids, the type and the validity interval as far as the input gives it.
    ///
    /// # Errors
    /// As for [`EntityInput::validate`], for the relationship's id, `from`, `to` and type.
    pub fn validate(&self) -> Result<Validity> {
        check_id("relationship id", &self.id)?;
        check_id("relationship from", &self.from)?;
        check_id("relationship to", &self.to)?;
        check_id("relation type", &self.relation_type)?;
        Validity::new(self.valid_from, self.valid_to)
    }
}

/// The portable record of the graph store: one version of an entity or of a relationship,
/// tagged by `kind` (`entity` or `relationship`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GraphRecord {
    /// A version of an entity.
    Entity(Entity),
    /// A version of a relationship.
    Relationship(Relationship),
}

/// Checks an imported [`GraphRecord`] for what every implementation stores: ids and types of
/// 1 to 256 bytes without NUL, a version of 1 to `i64::MAX` (the native `bigint`), times in UTC
/// and in years 0 to 9999, `valid_from < valid_to` and `recorded_at <= superseded_at`.
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_graph_record(record: &GraphRecord) -> Result<()> {
    let (id, version, time) = match record {
        GraphRecord::Entity(entity) => {
            check_id("entity id", &entity.id)?;
            check_id("entity type", &entity.entity_type)?;
            (&entity.id, entity.version, &entity.time)
        }
        GraphRecord::Relationship(rel) => {
            check_id("relationship id", &rel.id)?;
            check_id("relationship from", &rel.from)?;
            check_id("relationship to", &rel.to)?;
            check_id("relation type", &rel.relation_type)?;
            (&rel.id, rel.version, &rel.time)
        }
    };
    if version == 0 || i64::try_from(version).is_err() {
        return Err(Error::invalid_input(format!(
            "graph version must be 1 to {}, got {version}",
            i64::MAX
        ))
        .with_context("id", id));
    }
    check_portable_time("valid_from", time.valid_from)?;
    check_portable_time("recorded_at", time.recorded_at)?;
    for (what, end) in [
        ("valid_to", time.valid_to),
        ("superseded_at", time.superseded_at),
    ] {
        if let Some(end) = end {
            check_portable_time(what, end)?;
        }
    }
    check_interval(time.valid_from, time.valid_to).map_err(|e| e.with_context("id", id))?;
    match time.superseded_at {
        Some(end) if end < time.recorded_at => Err(Error::invalid_input(
            "superseded_at must not be before recorded_at",
        )
        .with_context("id", id)
        .with_context("recorded_at", time.recorded_at)
        .with_context("superseded_at", end)),
        _ => Ok(()),
    }
}

/// Which relationships of an entity to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Relationships that start at the entity (`entity -> other`).
    Outgoing,
    /// Relationships that end at the entity (`other -> entity`).
    Incoming,
    /// Both.
    Both,
}

/// Parameters of [`GraphStore::traverse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraverseRequest {
    /// How many relationships away to go: 1 to [`MAX_TRAVERSE_DEPTH`].
    pub max_depth: usize,
    /// Follow only relationships of these types; `None` follows every type.
    pub relation_types: Option<Vec<String>>,
    /// Which way to follow relationships.
    pub direction: Direction,
    /// Traverse the graph as of this point; `None` traverses the current view.
    pub as_of: Option<AsOf>,
}

impl TraverseRequest {
    /// Follows outgoing relationships of every type up to `max_depth`, in the current view.
    pub fn outgoing(max_depth: usize) -> TraverseRequest {
        TraverseRequest {
            max_depth,
            relation_types: None,
            direction: Direction::Outgoing,
            as_of: None,
        }
    }

    /// Checks the depth and the relation types.
    ///
    /// # Errors
    /// `InvalidInput` for a depth outside 1 to [`MAX_TRAVERSE_DEPTH`] or a bad type.
    pub fn validate(&self) -> Result<()> {
        if self.max_depth == 0 || self.max_depth > MAX_TRAVERSE_DEPTH {
            return Err(Error::invalid_input(format!(
                "max_depth must be 1 to {MAX_TRAVERSE_DEPTH}, got {}",
                self.max_depth
            )));
        }
        for t in self.relation_types.iter().flatten() {
            check_id("relation type", t)?;
        }
        Ok(())
    }
}

/// An entity reached by [`GraphStore::traverse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraversalHit {
    /// The entity, in the version the traversal saw.
    pub entity: Entity,
    /// Number of relationships between the start and the entity (at least 1).
    pub depth: usize,
    /// Entity ids from the start to this entity, both included (`depth + 1` ids).
    pub path: Vec<String>,
    /// Ids of the relationships followed along `path` (`depth` ids).
    pub relationships: Vec<String>,
}

/// A bi-temporal knowledge graph (see the [module docs](self) for the time model).
///
/// Reads of ids that never existed return `None` or nothing, not an error; writes that need
/// an existing entity or relationship return `NotFound`. Invalid input is `InvalidInput` and
/// writes nothing.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait GraphStore: crate::portable::PortableStore {
    /// Creates an entity, or records a new version of an existing one with merged
    /// properties; returns the new version.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or over-long id or type, or `valid_to <= valid_from`;
    /// `Conflict` (retryable) if the write kept losing races with other writers.
    async fn upsert_entity(&self, input: EntityInput) -> Result<Entity>;

    /// Records a version of entity `id` that is valid until `valid_to` (exclusive); returns
    /// it. Closing a closed entity moves its end.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidInput` when `valid_to` is not after the current
    /// version's `valid_from`; `Conflict` as for [`GraphStore::upsert_entity`].
    async fn close_entity(&self, id: &str, valid_to: OffsetDateTime) -> Result<Entity>;

    /// The current version of entity `id` if it is valid now.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid id; `Corruption` when stored data does not decode.
    async fn get_entity(&self, id: &str) -> Result<Option<Entity>>;

    /// The version of entity `id` matching `as_of` on both axes, if any.
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity`].
    async fn get_entity_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Entity>>;

    /// Every version of entity `id` in the order they were recorded (empty for an unknown
    /// id).
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity`].
    async fn entity_history(&self, id: &str) -> Result<Vec<Entity>>;

    /// Entities valid in the current view (`as_of = None`) or at `as_of`, optionally only of
    /// `entity_type`, ordered by id (`%` and `/` order as their escapes `%25` and `%2F`).
    ///
    /// # Errors
    /// `InvalidInput` for a bad page limit or type; `Corruption` as for `get_entity`.
    async fn list_entities(
        &self,
        entity_type: Option<&str>,
        as_of: Option<AsOf>,
        page: PageRequest,
    ) -> Result<Page<Entity>>;

    /// Creates a relationship between two existing entities, or records a new version of an
    /// existing one with merged properties; returns the new version.
    ///
    /// # Errors
    /// `NotFound` when `from` or `to` never existed as an entity; `InvalidInput` for empty
    /// or over-long ids or type, `valid_to <= valid_from`, or an update that changes `from`,
    /// `to` or `relation_type`; `Conflict` as for [`GraphStore::upsert_entity`].
    async fn upsert_relationship(&self, input: RelationshipInput) -> Result<Relationship>;

    /// Records a version of relationship `id` that is valid until `valid_to` (exclusive).
    ///
    /// # Errors
    /// As for [`GraphStore::close_entity`].
    async fn close_relationship(&self, id: &str, valid_to: OffsetDateTime) -> Result<Relationship>;

    /// The current version of relationship `id` if it is valid now.
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity`].
    async fn get_relationship(&self, id: &str) -> Result<Option<Relationship>>;

    /// The version of relationship `id` matching `as_of`, if any.
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity`].
    async fn get_relationship_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Relationship>>;

    /// Every version of relationship `id` in the order they were recorded.
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity`].
    async fn relationship_history(&self, id: &str) -> Result<Vec<Relationship>>;

    /// Relationships of entity `id` in `direction`, optionally only of `relation_type`, that
    /// are valid in the current view or at `as_of`; ordered by type, then id. A relationship
    /// from the entity to itself is listed once.
    ///
    /// # Errors
    /// As for [`GraphStore::get_entity`].
    async fn relationships_of(
        &self,
        id: &str,
        direction: Direction,
        relation_type: Option<&str>,
        as_of: Option<AsOf>,
    ) -> Result<Vec<Relationship>>;

    /// Entities reachable from `start` breadth first, each once at its smallest depth,
    /// ordered by depth, then id. The start itself is not listed, even when a cycle leads
    /// back to it. A step follows a relationship valid in the chosen view to an entity
    /// valid in that view; a start that is unknown or not valid in the view reaches nothing.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id, type or depth; `Corruption` as for `get_entity`.
    async fn traverse(&self, start: &str, request: TraverseRequest) -> Result<Vec<TraversalHit>>;
}
