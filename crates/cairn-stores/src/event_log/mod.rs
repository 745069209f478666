//! The event log: an append-only record of typed events, queried by time range, type
//! (exact or `prefix.*` pattern) and correlation id, in time order.
//!
//! Event types are dotted names such as `tool.call.started`. The pattern `tool.*` matches
//! every type that starts with `tool.` (`tool.call`, `tool.call.started`), but neither `tool`
//! itself nor `tools.x`. Events may carry any time, years in the past or in the future;
//! [`EventLogStore::drop_before`] removes old ones.

pub mod keys;

mod generic;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::stream::StreamCursor;
pub use generic::GenericEventLogStore;

/// Longest event type accepted, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 256;

/// Default page size of an [`EventQuery`].
pub const DEFAULT_EVENT_LIMIT: usize = 100;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Dotted type name, e.g. `tool.call.started`.
    pub event_type: String,
    /// Free-form payload.
    pub payload: Value,
    /// Groups events of one operation (a request, a run).
    pub correlation_id: Option<String>,
    /// When the event happened; `None` means the time of the append. Stored in UTC.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

impl Event {
    /// An event of `event_type` with `payload`, uncorrelated, happening now.
    pub fn new(event_type: impl Into<String>, payload: Value) -> Event {
        Event {
            event_type: event_type.into(),
            payload,
            correlation_id: None,
            at: None,
        }
    }

    /// Sets the correlation id.
    pub fn correlated(mut self, correlation_id: impl Into<String>) -> Event {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Sets the time of the event.
    pub fn at(mut self, at: OffsetDateTime) -> Event {
        self.at = Some(at);
        self
    }
}

/// A stored event. It is also the portable record of the event log ([`crate::portable`]),
/// one per event; see [`check_event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// UUID v7 assigned by the store; breaks ties between events of the same time in
    /// append order.
    pub id: Uuid,
    /// Dotted type name.
    pub event_type: String,
    /// Free-form payload.
    pub payload: Value,
    /// Correlation id, if any.
    pub correlation_id: Option<String>,
    /// When the event happened, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Which event types a query matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypePattern {
    /// Exactly this type (`a.b`).
    Exact(String),
    /// Every type under this dotted prefix (`a.*`, stored as `a`).
    Prefix(String),
}

impl TypePattern {
    /// Parses `a.b` (exact) or `a.*` (prefix).
    ///
    /// # Errors
    /// `InvalidInput` when the text is not a valid event type, optionally followed by `.*`
    /// (for example `""`, `*`, `a.*.b`, `a*`, `a..b`).
    pub fn parse(text: &str) -> Result<TypePattern> {
        match text.strip_suffix(".*") {
            Some(prefix) => check_event_type(prefix).map(|()| TypePattern::Prefix(prefix.into())),
            None => check_event_type(text).map(|()| TypePattern::Exact(text.into())),
        }
    }

    /// Whether `event_type` matches.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            TypePattern::Exact(exact) => event_type == exact,
            TypePattern::Prefix(prefix) => event_type
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }

    /// Checks a pattern built directly rather than by [`TypePattern::parse`].
    ///
    /// # Errors
    /// `InvalidInput` when the type or prefix is not a valid event type.
    pub fn validate(&self) -> Result<()> {
        match self {
            TypePattern::Exact(t) | TypePattern::Prefix(t) => check_event_type(t),
        }
    }
}

impl FromStr for TypePattern {
    type Err = Error;
    fn from_str(text: &str) -> Result<TypePattern> {
        TypePattern::parse(text)
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypePattern::Exact(t) => f.write_str(t),
            TypePattern::Prefix(p) => write!(f, "{p}.*"),
        }
    }
}

/// Checks an event type: 1 to [`MAX_EVENT_TYPE_BYTES`] bytes of non-empty `.`-separated
/// segments without `*`, whitespace or control characters.
///
/// # Errors
/// `InvalidInput` naming the rule broken.
pub fn check_event_type(event_type: &str) -> Result<()> {
    if event_type.is_empty() || event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(Error::invalid_input(format!(
            "event type must be 1 to {MAX_EVENT_TYPE_BYTES} bytes, got {}",
            event_type.len()
        )));
    }
    if event_type.split('.').any(str::is_empty) {
        return Err(Error::invalid_input("event type has an empty segment")
            .with_context("event_type", event_type));
    }
    if event_type
        .chars()
        .any(|c| c == '*' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid_input(
            "event type must not contain `*`, whitespace or control characters",
        )
        .with_context("event_type", event_type));
    }
    Ok(())
}

/// Checks an event read from a portable record before it is imported: its type, its
/// correlation id and its time (UTC, years 0 to 9999). Its id is kept: an event's identity
/// is its time and id, as in every store's order.
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_event(record: &EventRecord) -> Result<()> {
    check_event_type(&record.event_type)?;
    if let Some(correlation) = &record.correlation_id {
        crate::codec::check_id("correlation id", correlation)?;
    }
    crate::portable::check_portable_time("event", record.at)
}

/// Where a previous page ended: the time and id of its last event.
pub type EventCursor = StreamCursor;

impl From<&EventRecord> for StreamCursor {
    fn from(record: &EventRecord) -> StreamCursor {
        StreamCursor {
            at: record.at,
            id: record.id,
        }
    }
}

/// What to read from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// Only events at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only events strictly before this time.
    pub to: Option<OffsetDateTime>,
    /// Only events whose type matches.
    pub event_type: Option<TypePattern>,
    /// Only events with this correlation id.
    pub correlation_id: Option<String>,
    /// Most events returned: 1 to [`cairn_core::MAX_SCAN_LIMIT`].
    pub limit: usize,
    /// Only events after this one in (time, id) order: pass the cursor of the last event of
    /// the previous page.
    pub after: Option<EventCursor>,
}

impl Default for EventQuery {
    /// Every event, [`DEFAULT_EVENT_LIMIT`] per page.
    fn default() -> Self {
        EventQuery {
            from: None,
            to: None,
            event_type: None,
            correlation_id: None,
            limit: DEFAULT_EVENT_LIMIT,
            after: None,
        }
    }
}

/// An append-only, time-ordered event log.
///
/// Correlation ids are strings of 1 to 256 bytes without NUL. A bad argument is always
/// rejected before anything is written.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait EventLogStore: crate::portable::PortableStore {
    /// Appends one event and returns it with its id and time.
    ///
    /// # Errors
    /// `InvalidInput` for a bad type or correlation id, or a time outside years 0..=9999.
    async fn append(&self, event: Event) -> Result<EventRecord>;

    /// Appends several events atomically (all or none), in order: events of equal time keep
    /// their order in `events`.
    ///
    /// # Errors
    /// As [`EventLogStore::append`] for any event (then none is written); `InvalidInput`
    /// when the batch exceeds the backend's batch limits.
    async fn append_batch(&self, events: Vec<Event>) -> Result<Vec<EventRecord>>;

    /// Reads up to `query.limit` matching events ordered by time, then id.
    ///
    /// # Errors
    /// `InvalidInput` for a bad limit, pattern or correlation id, or `from > to`;
    /// `Corruption` for damaged data.
    async fn query(&self, query: &EventQuery) -> Result<Vec<EventRecord>>;

    /// Deletes every event strictly before `before`, with its index entries, and returns how
    /// many were deleted.
    ///
    /// # Errors
    /// `Corruption` when an old event cannot be decoded (it is then kept).
    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use cairn_core::ErrorKind;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Type patterns are parsed from caller text: any text is a pattern or `InvalidInput`,
        /// and an accepted pattern matches what it names.
        #[test]
        fn type_patterns_parse_or_reject_any_text(text in "[a.*]{0,8}|\\PC{0,24}") {
            match TypePattern::parse(&text) {
                Ok(TypePattern::Exact(t)) => {
                    prop_assert_eq!(&t, &text);
                    prop_assert!(TypePattern::Exact(t.clone()).matches(&text));
                }
                Ok(TypePattern::Prefix(p)) => {
                    prop_assert_eq!(format!("{p}.*"), text);
                    let child = format!("{p}.x");
                    prop_assert!(TypePattern::Prefix(p.clone()).matches(&child));
                    prop_assert!(!TypePattern::Prefix(p.clone()).matches(&p));
                }
                Err(err) => prop_assert_eq!(err.kind(), ErrorKind::InvalidInput),
            }
        }
    }
}
