//! The graph store over any [`StorageBackend`].
//!
//! Each entity and relationship is a pointer key holding the current version number plus one
//! key per version (layout in `keys.rs`). A write reads the pointer and the current version,
//! then writes in one atomic batch, guarded by a check that the pointer is unchanged: the
//! superseded old version, the new version, the moved pointer and the index keys (type index
//! for entities, adjacency keys at both ends for relationships). A writer that loses the race
//! gets `Conflict` from the batch and starts over from a fresh read, so concurrent updates
//! are serialised and none is lost.
//!
//! Exports scan the entity versions, then the relationship versions, in key order (the
//! cursor is the last key read). An import writes each version and its index keys in one
//! batch, raising each pointer to the largest version imported for its id; the batch checks
//! the pointers it read, so a concurrent writer makes it fail with `Conflict` rather than
//! lose a version.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, Key, Result, StorageBackend, StorageBackendExt, WriteBatch,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::keys::{GraphKey, GraphPrefix, Kind, Side, last_id};
use super::{
    AsOf, Bitemporal, Direction, Entity, EntityInput, GraphRecord, GraphStore, Relationship,
    RelationshipInput, TraversalHit, TraverseRequest, Validity, check_graph_record, check_interval,
    to_utc,
};
use crate::codec::check_id;
use crate::codec::{decode_record, encode_record};
use crate::paging::{Page, PageRequest};
use crate::portable::{ExportPage, PortableStore, decode_portable, encode_portable, scan_export};

/// Attempts of one write before it gives up with a retryable `Conflict`. Every lost attempt
/// means another writer of the same id won, so this bounds only pathological contention.
const MAX_ATTEMPTS: usize = 1000;

/// Entries per scan page.
const SCAN_PAGE: usize = 256;

/// Keys per `get_batch` call.
const READ_CHUNK: usize = 1000;

/// The [`GraphStore`] over a key-value backend; works on the backend handle's tenant.
#[derive(Debug, Clone)]
pub struct GenericGraphStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericGraphStore {
    /// A graph store keeping its data in `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericGraphStore { backend }
    }
}

/// The value of a pointer key.
#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    version: u64,
}

/// What entity and relationship versions have in common.
trait Versioned: Serialize + DeserializeOwned + Clone + Send + Sync {
    const KIND: Kind;
    fn id(&self) -> &str;
    fn version(&self) -> u64;
    fn set_version(&mut self, version: u64);
    fn time(&self) -> &Bitemporal;
    fn time_mut(&mut self) -> &mut Bitemporal;
    /// Index keys written with every version (they point at the id, so rewriting them is
    /// idempotent).
    fn index_keys(&self) -> Result<Vec<Key>>;
    /// The version as a portable record.
    fn into_record(self) -> GraphRecord;
}

impl Versioned for Entity {
    const KIND: Kind = Kind::Entity;
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn time(&self) -> &Bitemporal {
        &self.time
    }
    fn time_mut(&mut self) -> &mut Bitemporal {
        &mut self.time
    }
    fn index_keys(&self) -> Result<Vec<Key>> {
        let by_type = GraphKey::EntityByType {
            entity_type: &self.entity_type,
            id: &self.id,
        };
        Ok(vec![by_type.key()?])
    }
    fn into_record(self) -> GraphRecord {
        GraphRecord::Entity(self)
    }
}

impl Versioned for Relationship {
    const KIND: Kind = Kind::Relationship;
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn time(&self) -> &Bitemporal {
        &self.time
    }
    fn time_mut(&mut self) -> &mut Bitemporal {
        &mut self.time
    }
    fn index_keys(&self) -> Result<Vec<Key>> {
        let at = |entity, side| GraphKey::Adjacency {
            entity,
            side,
            relation_type: &self.relation_type,
            relationship: &self.id,
        };
        Ok(vec![
            at(&self.from, Side::Out).key()?,
            at(&self.to, Side::In).key()?,
        ])
    }
    fn into_record(self) -> GraphRecord {
        GraphRecord::Relationship(self)
    }
}

/// Which versions a read sees.
#[derive(Debug, Clone, Copy)]
enum View {
    /// The newest version, if it is valid at `now`.
    Current { now: OffsetDateTime },
    /// The version matching both axes.
    AsOf(AsOf),
}

impl View {
    fn new(as_of: Option<AsOf>) -> View {
        match as_of {
            Some(as_of) => View::AsOf(as_of),
            None => View::Current {
                now: OffsetDateTime::now_utc(),
            },
        }
    }
}

/// A path found by the traversal.
#[derive(Debug, Clone)]
struct Step {
    id: String,
    path: Vec<String>,
    relationships: Vec<String>,
}

impl Step {
    fn then(&self, id: &str, relationship: &str) -> Step {
        let mut next = self.clone();
        next.id = id.to_owned();
        next.path.push(id.to_owned());
        next.relationships.push(relationship.to_owned());
        next
    }
}

/// The time of a write: now, but never before the current version was recorded, so
/// transaction time never runs backwards within one id even if the clock does.
fn write_time<T: Versioned>(current: Option<&T>) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    match current {
        Some(c) if c.time().recorded_at > now => c.time().recorded_at,
        _ => now,
    }
}

/// `stored` with every key of `update` replacing the stored value (shallow merge).
fn merge(stored: Option<&Map<String, Value>>, update: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = stored.cloned().unwrap_or_default();
    merged.extend(update.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

fn not_found(what: &'static str, id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("{what} not found")).with_context("id", id)
}

fn decode_pointer(bytes: &[u8]) -> Result<u64> {
    decode_record::<Pointer>(bytes).map(|p| p.version)
}

impl GenericGraphStore {
    /// Records the version `build` makes from the current one (`None` for a new id), with
    /// the version counter and transaction time set here; retries on `Conflict`.
    async fn write<T, F>(&self, id: &str, build: F) -> Result<T>
    where
        T: Versioned,
        F: Fn(Option<&T>, OffsetDateTime) -> Result<T> + Send + Sync,
    {
        let pointer_key = GraphKey::Pointer { kind: T::KIND, id }.key()?;
        for _ in 0..MAX_ATTEMPTS {
            let pointer = self.backend.get(&pointer_key).await?;
            let current = match &pointer {
                Some(bytes) => Some(self.version_of::<T>(id, decode_pointer(bytes)?).await?),
                None => None,
            };
            let now = write_time(current.as_ref());
            let mut next = build(current.as_ref(), now)?;
            next.set_version(current.as_ref().map_or(1, |c| c.version() + 1));
            next.time_mut().recorded_at = now;
            next.time_mut().superseded_at = None;
            let batch = version_batch(id, &pointer_key, pointer, current, &next)?;
            match self.backend.write_batch(batch).await {
                Ok(()) => return Ok(next),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(
            Error::conflict("too many concurrent writers of one graph record; try again")
                .with_context("id", id)
                .with_retryable(true),
        )
    }

    /// Version `version` of `id`; its absence is a dangling pointer.
    async fn version_of<T: Versioned>(&self, id: &str, version: u64) -> Result<T> {
        let key = GraphKey::Version {
            kind: T::KIND,
            id,
            version,
        }
        .key()?;
        let bytes = self
            .backend
            .get(&key)
            .await?
            .ok_or_else(|| dangling(&key))?;
        decode_record(&bytes)
    }

    /// For each id, the version `view` sees, in the order of `ids`.
    async fn resolve_many<T: Versioned>(
        &self,
        ids: &[String],
        view: View,
    ) -> Result<Vec<Option<T>>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(READ_CHUNK) {
            let currents = self.currents::<T>(chunk).await?;
            for (id, current) in chunk.iter().zip(currents) {
                out.push(self.pick(id, current, view).await?);
            }
        }
        Ok(out)
    }

    async fn resolve<T: Versioned>(&self, id: &str, view: View) -> Result<Option<T>> {
        let current = self.currents::<T>(&[id.to_owned()]).await?.pop().flatten();
        self.pick(id, current, view).await
    }

    /// The newest version of each id (two `get_batch` calls).
    async fn currents<T: Versioned>(&self, ids: &[String]) -> Result<Vec<Option<T>>> {
        let pointer_keys = ids
            .iter()
            .map(|id| GraphKey::Pointer { kind: T::KIND, id }.key())
            .collect::<Result<Vec<_>>>()?;
        let pointers = self.backend.get_batch(&pointer_keys).await?;
        let mut wanted = Vec::new();
        for (i, (id, pointer)) in ids.iter().zip(pointers).enumerate() {
            if let Some(bytes) = pointer {
                let version = decode_pointer(&bytes)?;
                let key = GraphKey::Version {
                    kind: T::KIND,
                    id,
                    version,
                };
                wanted.push((i, key.key()?));
            }
        }
        let keys: Vec<Key> = wanted.iter().map(|(_, k)| k.clone()).collect();
        let values = self.backend.get_batch(&keys).await?;
        let mut out: Vec<Option<T>> = vec![None; ids.len()];
        for ((i, key), value) in wanted.into_iter().zip(values) {
            let bytes = value.ok_or_else(|| dangling(&key))?;
            out[i] = Some(decode_record(&bytes)?);
        }
        Ok(out)
    }

    /// The version of `id` that `view` sees, given its newest version.
    async fn pick<T: Versioned>(
        &self,
        id: &str,
        current: Option<T>,
        view: View,
    ) -> Result<Option<T>> {
        let Some(current) = current else {
            return Ok(None);
        };
        match view {
            View::Current { now } => Ok(current.time().valid_at(now).then_some(current)),
            View::AsOf(as_of) if current.time().known_at(as_of.known_at) => {
                Ok(current.time().valid_at(as_of.valid_at).then_some(current))
            }
            View::AsOf(as_of) => Ok(self
                .known_version::<T>(id, as_of.known_at)
                .await?
                .filter(|v| v.time().valid_at(as_of.valid_at))),
        }
    }

    /// The version of `id` the store knew at `known_at`, scanning versions in order.
    async fn known_version<T: Versioned>(
        &self,
        id: &str,
        known_at: OffsetDateTime,
    ) -> Result<Option<T>> {
        let prefix = GraphPrefix::Versions(T::KIND, id).text();
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .backend
                .scan(&prefix, after.as_ref(), SCAN_PAGE)
                .await?;
            for (_, bytes) in &page.entries {
                let version: T = decode_record(bytes)?;
                if version.time().known_at(known_at) {
                    return Ok(Some(version));
                }
                if version.time().recorded_at > known_at {
                    return Ok(None);
                }
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// Every version of `id`, oldest first.
    async fn history<T: Versioned>(&self, id: &str) -> Result<Vec<T>> {
        let prefix = GraphPrefix::Versions(T::KIND, id).text();
        self.backend
            .scan_all(&prefix, SCAN_PAGE)
            .await?
            .iter()
            .map(|(_, bytes)| decode_record(bytes))
            .collect()
    }

    /// Ids of the relationships filed at `entity` for `direction` and `types`, deduplicated.
    async fn adjacent_ids(
        &self,
        entity: &str,
        direction: Direction,
        types: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let sides: &[Side] = match direction {
            Direction::Outgoing => &[Side::Out],
            Direction::Incoming => &[Side::In],
            Direction::Both => &[Side::Out, Side::In],
        };
        let mut prefixes = Vec::new();
        for &side in sides {
            let prefix = |relation_type| GraphPrefix::Adjacency {
                entity,
                side: Some(side),
                relation_type,
            };
            match types {
                None => prefixes.push(prefix(None).text()),
                Some(types) => prefixes.extend(types.iter().map(|t| prefix(Some(t)).text())),
            }
        }
        let mut ids = BTreeSet::new();
        for prefix in prefixes {
            for (key, _) in self.backend.scan_all(&prefix, SCAN_PAGE).await? {
                ids.insert(last_id(&key)?);
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Checks that `from` and `to` exist as entities (in any version).
    async fn require_entities(&self, from: &str, to: &str) -> Result<()> {
        let keys = [from, to]
            .map(|id| {
                GraphKey::Pointer {
                    kind: Kind::Entity,
                    id,
                }
                .key()
            })
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let found = self.backend.get_batch(&keys).await?;
        for (id, value) in [from, to].into_iter().zip(found) {
            if value.is_none() {
                return Err(not_found("relationship endpoint entity", id));
            }
        }
        Ok(())
    }

    /// One breadth-first level: the entities one step from `frontier` that `seen` does not
    /// hold yet, each with the first path that reached it, ordered by id. Relationships of
    /// the whole level are resolved together.
    async fn expand(
        &self,
        frontier: &[Step],
        seen: &HashSet<String>,
        request: &TraverseRequest,
        view: View,
    ) -> Result<BTreeMap<String, Step>> {
        let mut per_step = Vec::with_capacity(frontier.len());
        let mut level = BTreeSet::new();
        for step in frontier {
            let ids = self
                .adjacent_ids(
                    &step.id,
                    request.direction,
                    request.relation_types.as_deref(),
                )
                .await?;
            level.extend(ids.iter().cloned());
            per_step.push(ids);
        }
        let level: Vec<String> = level.into_iter().collect();
        let resolved = self.resolve_many::<Relationship>(&level, view).await?;
        let valid: HashMap<String, Relationship> = level
            .into_iter()
            .zip(resolved)
            .filter_map(|(id, rel)| rel.map(|rel| (id, rel)))
            .collect();
        let mut found = BTreeMap::new();
        for (step, ids) in frontier.iter().zip(per_step) {
            for rel in ids.iter().filter_map(|id| valid.get(id)) {
                let next = match request.direction {
                    Direction::Outgoing => &rel.to,
                    Direction::Incoming => &rel.from,
                    Direction::Both if rel.from == step.id => &rel.to,
                    Direction::Both => &rel.from,
                };
                if !seen.contains(next) && !found.contains_key(next) {
                    found.insert(next.clone(), step.then(next, &rel.id));
                }
            }
        }
        Ok(found)
    }
}

/// The batch that records `next` after `current` (read from `pointer`).
fn version_batch<T: Versioned>(
    id: &str,
    pointer_key: &Key,
    pointer: Option<Bytes>,
    current: Option<T>,
    next: &T,
) -> Result<WriteBatch> {
    let version_key = |version| {
        GraphKey::Version {
            kind: T::KIND,
            id,
            version,
        }
        .key()
    };
    let mut batch = WriteBatch::new().check(pointer_key.clone(), pointer);
    if let Some(mut old) = current {
        old.time_mut().superseded_at = Some(next.time().recorded_at);
        batch = batch.put(version_key(old.version())?, encode_record(&old)?);
    }
    batch = batch
        .put(version_key(next.version())?, encode_record(next)?)
        .put(
            pointer_key.clone(),
            encode_record(&Pointer {
                version: next.version(),
            })?,
        );
    for key in next.index_keys()? {
        batch = batch.put(key, Bytes::new());
    }
    Ok(batch)
}

/// The scan prefix of an entity listing and the key to continue after.
fn list_range(entity_type: Option<&str>, after: Option<&str>) -> Result<(String, Option<Key>)> {
    Ok(match entity_type {
        Some(entity_type) => (
            GraphPrefix::ByType(entity_type).text(),
            after
                .map(|id| GraphKey::EntityByType { entity_type, id }.key())
                .transpose()?,
        ),
        None => (
            GraphPrefix::Pointers(Kind::Entity).text(),
            after
                .map(|id| {
                    GraphKey::Pointer {
                        kind: Kind::Entity,
                        id,
                    }
                    .key()
                })
                .transpose()?,
        ),
    })
}

/// The portable records of stored versions of `T`.
///
/// # Errors
/// `Corruption` for a version that does not decode.
fn portable_records<T: Versioned>(entries: &[(Key, Bytes)]) -> Result<Vec<Bytes>> {
    entries
        .iter()
        .map(|(key, bytes)| {
            let version: T = decode_record(bytes).map_err(|e| e.with_context("key", key))?;
            encode_portable(&version.into_record(), &[])
        })
        .collect()
}

/// Adds the writes of an imported `version` (the version and its index keys) to `batch`, and
/// raises `newest`, the largest version imported per pointer key.
fn import_version<T: Versioned>(
    version: &T,
    batch: WriteBatch,
    newest: &mut BTreeMap<Key, u64>,
) -> Result<WriteBatch> {
    let id = version.id();
    let key = GraphKey::Version {
        kind: T::KIND,
        id,
        version: version.version(),
    }
    .key()?;
    let mut batch = batch.put(key, encode_record(version)?);
    for key in version.index_keys()? {
        batch = batch.put(key, Bytes::new());
    }
    let pointer = newest
        .entry(GraphKey::Pointer { kind: T::KIND, id }.key()?)
        .or_default();
    *pointer = (*pointer).max(version.version());
    Ok(batch)
}

fn dangling(key: &Key) -> Error {
    Error::corruption("graph pointer names a version that is not stored").with_context("key", key)
}

#[async_trait]
impl GraphStore for GenericGraphStore {
    async fn upsert_entity(&self, input: EntityInput) -> Result<Entity> {
        let Validity {
            valid_from,
            valid_to,
        } = input.validate()?;
        self.write(&input.id, |current: Option<&Entity>, now| {
            let valid_from = valid_from.unwrap_or(now);
            check_interval(valid_from, valid_to)?;
            Ok(Entity {
                id: input.id.clone(),
                version: 0,
                entity_type: input.entity_type.clone(),
                name: input.name.clone(),
                properties: merge(current.map(|c| &c.properties), &input.properties),
                time: Bitemporal {
                    valid_from,
                    valid_to,
                    recorded_at: now,
                    superseded_at: None,
                },
            })
        })
        .await
    }

    async fn close_entity(&self, id: &str, valid_to: OffsetDateTime) -> Result<Entity> {
        check_id("entity id", id)?;
        let valid_to = to_utc("valid_to", valid_to)?;
        self.write(id, |current: Option<&Entity>, _| {
            let mut next = current.ok_or_else(|| not_found("entity", id))?.clone();
            check_interval(next.time.valid_from, Some(valid_to))?;
            next.time.valid_to = Some(valid_to);
            Ok(next)
        })
        .await
    }

    async fn get_entity(&self, id: &str) -> Result<Option<Entity>> {
        check_id("entity id", id)?;
        self.resolve(id, View::new(None)).await
    }

    async fn get_entity_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Entity>> {
        check_id("entity id", id)?;
        self.resolve(id, View::AsOf(as_of)).await
    }

    async fn entity_history(&self, id: &str) -> Result<Vec<Entity>> {
        check_id("entity id", id)?;
        self.history(id).await
    }

    async fn list_entities(
        &self,
        entity_type: Option<&str>,
        as_of: Option<AsOf>,
        page: PageRequest,
    ) -> Result<Page<Entity>> {
        page.validate()?;
        if let Some(t) = entity_type {
            check_id("entity type", t)?;
        }
        let view = View::new(as_of);
        let (prefix, mut after) = list_range(entity_type, page.after.as_deref())?;
        let scan_size = (page.limit + 1).min(SCAN_PAGE);
        let mut items: Vec<Entity> = Vec::new();
        loop {
            let scanned = self
                .backend
                .scan(&prefix, after.as_ref(), scan_size)
                .await?;
            let ids = scanned
                .entries
                .iter()
                .map(|(key, _)| last_id(key))
                .collect::<Result<Vec<_>>>()?;
            let entities = self.resolve_many::<Entity>(&ids, view).await?;
            let matching = entities
                .into_iter()
                .flatten()
                .filter(|e| entity_type.is_none_or(|t| e.entity_type == t));
            for entity in matching {
                if items.len() == page.limit {
                    let next_after = items.last().map(|e| e.id.clone());
                    return Ok(Page { items, next_after });
                }
                items.push(entity);
            }
            match scanned.next_after {
                Some(next) => after = Some(next),
                None => {
                    return Ok(Page {
                        items,
                        next_after: None,
                    });
                }
            }
        }
    }

    async fn upsert_relationship(&self, input: RelationshipInput) -> Result<Relationship> {
        let Validity {
            valid_from,
            valid_to,
        } = input.validate()?;
        self.require_entities(&input.from, &input.to).await?;
        self.write(&input.id, |current: Option<&Relationship>, now| {
            if let Some(c) = current {
                if (&c.from, &c.to, &c.relation_type)
                    != (&input.from, &input.to, &input.relation_type)
                {
                    return Err(Error::invalid_input(
                        "a relationship's from, to and relation_type cannot change",
                    )
                    .with_context("id", &input.id));
                }
            }
            let valid_from = valid_from.unwrap_or(now);
            check_interval(valid_from, valid_to)?;
            Ok(Relationship {
                id: input.id.clone(),
                version: 0,
                from: input.from.clone(),
                to: input.to.clone(),
                relation_type: input.relation_type.clone(),
                properties: merge(current.map(|c| &c.properties), &input.properties),
                time: Bitemporal {
                    valid_from,
                    valid_to,
                    recorded_at: now,
                    superseded_at: None,
                },
            })
        })
        .await
    }

    async fn close_relationship(&self, id: &str, valid_to: OffsetDateTime) -> Result<Relationship> {
        check_id("relationship id", id)?;
        let valid_to = to_utc("valid_to", valid_to)?;
        self.write(id, |current: Option<&Relationship>, _| {
            let mut next = current
                .ok_or_else(|| not_found("relationship", id))?
                .clone();
            check_interval(next.time.valid_from, Some(valid_to))?;
            next.time.valid_to = Some(valid_to);
            Ok(next)
        })
        .await
    }

    async fn get_relationship(&self, id: &str) -> Result<Option<Relationship>> {
        check_id("relationship id", id)?;
        self.resolve(id, View::new(None)).await
    }

    async fn get_relationship_as_of(&self, id: &str, as_of: AsOf) -> Result<Option<Relationship>> {
        check_id("relationship id", id)?;
        self.resolve(id, View::AsOf(as_of)).await
    }

    async fn relationship_history(&self, id: &str) -> Result<Vec<Relationship>> {
        check_id("relationship id", id)?;
        self.history(id).await
    }

    async fn relationships_of(
        &self,
        id: &str,
        direction: Direction,
        relation_type: Option<&str>,
        as_of: Option<AsOf>,
    ) -> Result<Vec<Relationship>> {
        check_id("entity id", id)?;
        let types = relation_type
            .map(|t| check_id("relation type", t).map(|()| vec![t.to_owned()]))
            .transpose()?;
        let ids = self.adjacent_ids(id, direction, types.as_deref()).await?;
        let mut found: Vec<Relationship> = self
            .resolve_many(&ids, View::new(as_of))
            .await?
            .into_iter()
            .flatten()
            .collect();
        found.sort_by(|a, b| (&a.relation_type, &a.id).cmp(&(&b.relation_type, &b.id)));
        Ok(found)
    }

    async fn traverse(&self, start: &str, request: TraverseRequest) -> Result<Vec<TraversalHit>> {
        check_id("start entity id", start)?;
        request.validate()?;
        let view = View::new(request.as_of);
        if self.resolve::<Entity>(start, view).await?.is_none() {
            return Ok(Vec::new());
        }
        let mut seen = HashSet::from([start.to_owned()]);
        let mut frontier = vec![Step {
            id: start.to_owned(),
            path: vec![start.to_owned()],
            relationships: Vec::new(),
        }];
        let mut hits = Vec::new();
        for depth in 1..=request.max_depth {
            if frontier.is_empty() {
                break;
            }
            let found = self.expand(&frontier, &seen, &request, view).await?;
            let ids: Vec<String> = found.keys().cloned().collect();
            seen.extend(ids.iter().cloned());
            let entities = self.resolve_many::<Entity>(&ids, view).await?;
            frontier.clear();
            for (step, entity) in found.into_values().zip(entities) {
                if let Some(entity) = entity {
                    hits.push(TraversalHit {
                        entity,
                        depth,
                        path: step.path.clone(),
                        relationships: step.relationships.clone(),
                    });
                    frontier.push(step);
                }
            }
        }
        Ok(hits)
    }
}

/// The portable record of a version is a [`GraphRecord`]; see the module docs for the order.
#[async_trait]
impl PortableStore for GenericGraphStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let backend = &*self.backend;
        let entities = GraphPrefix::AllVersions(Kind::Entity).text();
        let relationships = GraphPrefix::AllVersions(Kind::Relationship).text();
        if after.is_some_and(|cursor| cursor.starts_with(relationships.as_bytes())) {
            let (entries, next) = scan_export(backend, &relationships, after, limit).await?;
            let records = portable_records::<Relationship>(&entries)?;
            return Ok(ExportPage { records, next });
        }
        let (entries, mut next) = scan_export(backend, &entities, after, limit).await?;
        let mut records = portable_records::<Entity>(&entries)?;
        if next.is_none() {
            match limit - records.len() {
                // A full page: the next one finds no entity version after its last one and
                // goes on with the relationships.
                0 => {
                    next = entries
                        .last()
                        .map(|(key, _)| key.as_str().as_bytes().to_vec())
                }
                room => {
                    let (entries, rest) = scan_export(backend, &relationships, None, room).await?;
                    records.extend(portable_records::<Relationship>(&entries)?);
                    next = rest;
                }
            }
        }
        Ok(ExportPage { records, next })
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut versions = Vec::with_capacity(records.len());
        for record in records {
            let (version, _): (GraphRecord, _) = decode_portable(record)?;
            check_graph_record(&version)?;
            versions.push(version);
        }
        if versions.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        let mut newest = BTreeMap::new();
        for version in &versions {
            batch = match version {
                GraphRecord::Entity(entity) => import_version(entity, batch, &mut newest)?,
                GraphRecord::Relationship(rel) => import_version(rel, batch, &mut newest)?,
            };
        }
        let keys: Vec<Key> = newest.keys().cloned().collect();
        let pointers = self.backend.get_batch(&keys).await?;
        for ((key, version), pointer) in newest.into_iter().zip(pointers) {
            let stored = pointer
                .as_deref()
                .map(decode_pointer)
                .transpose()
                .map_err(|e| e.with_context("key", &key))?;
            batch = batch.check(key.clone(), pointer);
            if stored.is_none_or(|stored| stored < version) {
                batch = batch.put(key, encode_record(&Pointer { version })?);
            }
        }
        self.backend.write_batch(batch).await
    }
}
