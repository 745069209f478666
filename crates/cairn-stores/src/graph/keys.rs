//! Key layout of the graph store (scope `kg`).
//!
//! ```text
//! kg/e/{id}                               entity id's current-version pointer
//! kg/ev/{id}/{version}                    entity id's versions, by version counter
//! kg/et/{type}/{id}                       type index: every type entity id ever had
//! kg/r/{id}                               relationship id's current-version pointer
//! kg/rv/{id}/{version}                    relationship id's versions
//! kg/adj/{entity}/{o|i}/{type}/{rel}      adjacency: rel leaves (o) or enters (i) entity
//! ```
//!
//! Ids and types are escaped path segments, so every per-id prefix is exact.

use cairn_core::{Key, Result};

use crate::codec::{KeyPath, unescape_id};

const SCOPE: &str = "kg";

/// Entities or relationships: both are chains of versions behind a pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Entity,
    Relationship,
}

impl Kind {
    fn pointers(self) -> KeyPath {
        KeyPath::new(SCOPE).name(match self {
            Kind::Entity => "e",
            Kind::Relationship => "r",
        })
    }

    fn all_versions(self) -> KeyPath {
        KeyPath::new(SCOPE).name(match self {
            Kind::Entity => "ev",
            Kind::Relationship => "rv",
        })
    }

    fn versions(self, id: &str) -> KeyPath {
        self.all_versions().id(id)
    }
}

/// Which end of a relationship an adjacency key is filed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Filed under `from`: the relationship leaves the entity.
    Out,
    /// Filed under `to`: the relationship enters the entity.
    In,
}

impl Side {
    fn segment(self) -> &'static str {
        match self {
            Side::Out => "o",
            Side::In => "i",
        }
    }
}

/// Every key the graph store writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum GraphKey<'a> {
    /// The current-version pointer of an entity or relationship.
    Pointer { kind: Kind, id: &'a str },
    /// One version of an entity or relationship.
    Version {
        kind: Kind,
        id: &'a str,
        version: u64,
    },
    /// A type-index entry of an entity.
    EntityByType { entity_type: &'a str, id: &'a str },
    /// An adjacency entry of a relationship at one of its ends.
    Adjacency {
        entity: &'a str,
        side: Side,
        relation_type: &'a str,
        relationship: &'a str,
    },
}

impl GraphKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the ids make the key too long.
    pub(super) fn key(self) -> Result<Key> {
        match self {
            GraphKey::Pointer { kind, id } => kind.pointers().id(id),
            GraphKey::Version { kind, id, version } => kind.versions(id).u64(version),
            GraphKey::EntityByType { entity_type, id } => by_type(entity_type).id(id),
            GraphKey::Adjacency {
                entity,
                side,
                relation_type,
                relationship,
            } => adjacency(entity)
                .name(side.segment())
                .id(relation_type)
                .id(relationship),
        }
        .key()
    }
}

fn by_type(entity_type: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("et").id(entity_type)
}

fn adjacency(entity: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("adj").id(entity)
}

/// Prefixes of the ranges the graph store scans.
#[derive(Debug, Clone, Copy)]
pub(super) enum GraphPrefix<'a> {
    /// Every pointer of `kind`: one entry per entity or relationship.
    Pointers(Kind),
    /// Every version of every id of `kind`, in (id, version) order.
    AllVersions(Kind),
    /// Every version of one id.
    Versions(Kind, &'a str),
    /// Type-index entries of one entity type.
    ByType(&'a str),
    /// Adjacency entries of one entity: all, one side, or one side and type.
    Adjacency {
        entity: &'a str,
        side: Option<Side>,
        relation_type: Option<&'a str>,
    },
}

impl GraphPrefix<'_> {
    /// The prefix text for `scan`. A relation type without a side is not a prefix of the
    /// layout; callers scan each side instead.
    pub(super) fn text(self) -> String {
        match self {
            GraphPrefix::Pointers(kind) => kind.pointers(),
            GraphPrefix::AllVersions(kind) => kind.all_versions(),
            GraphPrefix::Versions(kind, id) => kind.versions(id),
            GraphPrefix::ByType(entity_type) => by_type(entity_type),
            GraphPrefix::Adjacency {
                entity,
                side,
                relation_type,
            } => {
                let path = adjacency(entity);
                match (side, relation_type) {
                    (Some(side), Some(t)) => path.name(side.segment()).id(t),
                    (Some(side), None) => path.name(side.segment()),
                    (None, _) => path,
                }
            }
        }
        .prefix()
    }
}

/// The id in the last segment of a pointer or index key.
///
/// # Errors
/// `Corruption` when the segment's escapes are malformed.
pub(super) fn last_id(key: &Key) -> Result<String> {
    unescape_id(key.as_str().rsplit('/').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exact_per_id() {
        let v = GraphKey::Version {
            kind: Kind::Entity,
            id: "a/b",
            version: 2,
        };
        assert_eq!(v.key().unwrap().as_str(), "kg/ev/a%2Fb/0000000000000002");
        assert_eq!(
            GraphPrefix::Versions(Kind::Entity, "a").text(),
            "kg/ev/a/".to_owned()
        );
        assert!(
            v.key()
                .unwrap()
                .starts_with(&GraphPrefix::AllVersions(Kind::Entity).text())
        );
        assert_eq!(
            GraphPrefix::AllVersions(Kind::Relationship).text(),
            "kg/rv/".to_owned()
        );
        let adj = GraphKey::Adjacency {
            entity: "x",
            side: Side::In,
            relation_type: "knows",
            relationship: "r%1",
        };
        let key = adj.key().unwrap();
        assert_eq!(key.as_str(), "kg/adj/x/i/knows/r%251");
        assert_eq!(last_id(&key).unwrap(), "r%1");
        let prefix = GraphPrefix::Adjacency {
            entity: "x",
            side: Some(Side::In),
            relation_type: Some("knows"),
        };
        assert!(key.starts_with(&prefix.text()));
        let pointer = GraphKey::Pointer {
            kind: Kind::Entity,
            id: "e",
        };
        assert!(!pointer.key().unwrap().starts_with("kg/ev/"));
    }
}
