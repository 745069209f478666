//! The event log's key layout (scope `ev`). Every stream is ordered by time, then id.
//!
//! ```text
//! ev/at/<time>/<id>                    EventRecord
//! ev/type/<type>/<time>/<id>           record key: exact-type index
//! ev/pre/<prefix>/<time>/<id>          record key: one entry per dotted prefix of the type
//!                                      (`a.b.c` is under `a` and `a.b`), for `prefix.*`
//! ev/corr/<correlation>/<time>/<id>    record key: correlation index
//! ```

use crate::codec::KeyPath;
use crate::stream::TimeStream;

const SCOPE: &str = "ev";

/// A time-ordered stream of event keys; [`TimeStream::entry`] names one event in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStream<'a> {
    /// The records themselves.
    All,
    /// Index of one exact type.
    Type(&'a str),
    /// Index of every type under a dotted prefix.
    Prefix(&'a str),
    /// Index of one correlation id.
    Correlation(&'a str),
}

impl TimeStream for EventStream<'_> {
    fn path(&self) -> KeyPath {
        let scope = KeyPath::new(SCOPE);
        match *self {
            EventStream::All => scope.name("at"),
            EventStream::Type(t) => scope.name("type").id(t),
            EventStream::Prefix(p) => scope.name("pre").id(p),
            EventStream::Correlation(c) => scope.name("corr").id(c),
        }
    }
}
