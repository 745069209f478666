//! The hook history's key layout (scope `hk`). Both streams are ordered by time, then id.
//!
//! ```text
//! hk/at/<time>/<id>             HookRecord
//! hk/hook/<name>/<time>/<id>    HookIndexEntry: record key, duration, failed
//! ```

use cairn_core::{Key, Result};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::codec::KeyPath;

const SCOPE: &str = "hk";

/// A time-ordered stream of hook keys; [`HookStream::entry`] names one record in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStream<'a> {
    /// The records themselves.
    All,
    /// Index of one hook's executions.
    Hook(&'a str),
}

impl HookStream<'_> {
    /// The key of the record `(at, id)` in this stream.
    ///
    /// # Errors
    /// `InvalidInput` when the hook name makes the key invalid.
    pub fn entry(&self, at: OffsetDateTime, id: Uuid) -> Result<Key> {
        self.path().time(at).id(&id.to_string()).key()
    }

    /// A bound that sorts after every entry before `at` and before every entry at or after
    /// `at`.
    ///
    /// # Errors
    /// `InvalidInput` when the hook name makes the key invalid.
    pub fn bound(&self, at: OffsetDateTime) -> Result<Key> {
        self.path().time(at).key()
    }

    /// Prefix of every entry of the stream.
    pub fn prefix(&self) -> String {
        self.path().prefix()
    }

    fn path(&self) -> KeyPath {
        match *self {
            HookStream::All => KeyPath::new(SCOPE).name("at"),
            HookStream::Hook(name) => KeyPath::new(SCOPE).name("hook").id(name),
        }
    }
}
