//! Time-ordered key streams, shared by the event log and the hook history: entries keyed
//! `<path>/<time>/<uuid>`, read by time then id, paged with a [`StreamCursor`].

use cairn_core::{Key, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::codec::KeyPath;
use crate::kvops::RangeScan;

/// A time-ordered key stream. A store's key enum names its streams and implements
/// [`Self::path`]; the entry and bound keys follow from it.
pub trait TimeStream {
    /// The path every entry of the stream lies below.
    fn path(&self) -> KeyPath;

    /// The key of the entry `(at, id)`.
    ///
    /// # Errors
    /// `InvalidInput` when an id in the path makes the key invalid.
    fn entry(&self, at: OffsetDateTime, id: Uuid) -> Result<Key> {
        self.path().time(at).id(&id.to_string()).key()
    }

    /// A bound that sorts after every entry before `at` and before every entry at or after
    /// `at`.
    ///
    /// # Errors
    /// `InvalidInput` when an id in the path makes the key invalid.
    fn bound(&self, at: OffsetDateTime) -> Result<Key> {
        self.path().time(at).key()
    }

    /// The prefix of every entry of the stream.
    fn prefix(&self) -> String {
        self.path().prefix()
    }
}

/// Where the previous page of a stream ended: the time and id of its last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCursor {
    /// Time of the last entry seen.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Id of the last entry seen.
    pub id: Uuid,
}

/// The part of `stream` at or after `from`, strictly after `after`, and before `to`.
///
/// # Errors
/// `InvalidInput` when an id in the stream's path makes a key invalid.
pub(crate) fn stream_range(
    stream: &impl TimeStream,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    after: Option<StreamCursor>,
) -> Result<RangeScan> {
    let from = from.map(|t| stream.bound(t)).transpose()?;
    let cursor = after.map(|c| stream.entry(c.at, c.id)).transpose()?;
    let to = to.map(|t| stream.bound(t)).transpose()?;
    Ok(RangeScan::new(stream.prefix())
        .after(from.max(cursor))
        .before(to))
}
