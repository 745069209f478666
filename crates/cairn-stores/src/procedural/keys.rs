//! Key layout of the procedural store (scope `proc`).
//!
//! ```text
//! proc/p/{id}               the procedure record (definition and counters)
//! proc/c/{category}/{id}    category index entry (empty value)
//! ```

use cairn_core::{Key, Result};

use crate::codec::{KeyPath, unescape_id};

const SCOPE: &str = "proc";

/// Every key the procedural store writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum ProceduralKey<'a> {
    /// The record of procedure `id`.
    Record { id: &'a str },
    /// The entry of procedure `id` in its category's listing.
    ByCategory { category: &'a str, id: &'a str },
}

impl ProceduralKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the ids make the key too long.
    pub(super) fn key(self) -> Result<Key> {
        match self {
            ProceduralKey::Record { id } => records().id(id),
            ProceduralKey::ByCategory { category, id } => by_category(category).id(id),
        }
        .key()
    }
}

fn records() -> KeyPath {
    KeyPath::new(SCOPE).name("p")
}

fn by_category(category: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("c").id(category)
}

/// Prefixes of the ranges the procedural store scans.
#[derive(Debug, Clone, Copy)]
pub(super) enum ProceduralPrefix<'a> {
    /// Every record.
    Records,
    /// The index entries of one category.
    Category(&'a str),
}

impl ProceduralPrefix<'_> {
    /// The prefix text for `scan`.
    pub(super) fn text(self) -> String {
        match self {
            ProceduralPrefix::Records => records(),
            ProceduralPrefix::Category(category) => by_category(category),
        }
        .prefix()
    }
}

/// The procedure id in the last segment of a record or index key.
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
    fn layout() {
        let record = ProceduralKey::Record { id: "a/b" }.key().unwrap();
        assert_eq!(record.as_str(), "proc/p/a%2Fb");
        assert_eq!(last_id(&record).unwrap(), "a/b");
        let entry = ProceduralKey::ByCategory {
            category: "c",
            id: "x",
        }
        .key()
        .unwrap();
        assert!(entry.starts_with(&ProceduralPrefix::Category("c").text()));
        assert!(!entry.starts_with(&ProceduralPrefix::Category("").text()));
        assert!(!entry.starts_with(&ProceduralPrefix::Records.text()));
    }
}
