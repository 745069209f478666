//! The hook history's key layout (scope `hk`). Both streams are ordered by time, then id.
//!
//! ```text
//! hk/at/<time>/<id>             HookRecord
//! hk/hook/<name>/<time>/<id>    HookIndexEntry: record key, duration, failed
//! ```

use crate::codec::KeyPath;
use crate::stream::TimeStream;

const SCOPE: &str = "hk";

/// A time-ordered stream of hook keys; [`TimeStream::entry`] names one record in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStream<'a> {
    /// The records themselves.
    All,
    /// Index of one hook's executions.
    Hook(&'a str),
}

impl TimeStream for HookStream<'_> {
    fn path(&self) -> KeyPath {
        match *self {
            HookStream::All => KeyPath::new(SCOPE).name("at"),
            HookStream::Hook(name) => KeyPath::new(SCOPE).name("hook").id(name),
        }
    }
}
