//! Episodic memory: the turns of a conversation, per session, in the order they were
//! appended.
//!
//! Every turn gets a per-session sequence number `seq` (1, 2, 3, ...) assigned atomically, so
//! concurrent appends to one session never share or skip a number. Sessions are read in
//! `seq` order, by time range or by role; deleting a session removes all its turns, after
//! which a new append starts again at `seq` 1.

pub mod keys;

mod generic;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use generic::GenericEpisodicStore;

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The human (or calling program).
    User,
    /// The model.
    Assistant,
    /// System instructions.
    System,
    /// A tool's result.
    Tool,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 4] = [Role::User, Role::Assistant, Role::System, Role::Tool];

    /// The lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }
}

/// A turn to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Who spoke.
    pub role: Role,
    /// What was said (may be empty).
    pub content: String,
    /// Free-form metadata stored with the turn.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// When the turn happened; `None` means the time of the append. Stored in UTC.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

impl Turn {
    /// A turn by `role` with `content`, no metadata, happening now.
    pub fn new(role: Role, content: impl Into<String>) -> Turn {
        Turn {
            role,
            content: content.into(),
            metadata: Map::new(),
            at: None,
        }
    }

    /// Sets the time of the turn.
    pub fn at(mut self, at: OffsetDateTime) -> Turn {
        self.at = Some(at);
        self
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: Value) -> Turn {
        self.metadata.insert(key.into(), value);
        self
    }
}

/// A stored turn. It is also the portable record of episodic memory
/// ([`crate::portable`]), one per turn; see [`check_turn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// The session the turn belongs to.
    pub session_id: String,
    /// Position in the session: 1 for the first turn, increasing by one per append.
    pub seq: u64,
    /// Who spoke.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// When the turn happened, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Checks a turn read from a portable record before it is imported: its session id, its
/// `seq` (1 to `i64::MAX`, what every backend stores) and its time (UTC, years 0 to 9999).
///
/// The portable record of episodic memory is the [`TurnRecord`] itself, one per turn; a
/// session's counter is not a record of its own: an import raises it to the largest `seq`
/// imported for the session (a session's last `seq` always equals its turn count, as
/// appends are gap-free and only whole sessions are deleted).
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_turn(turn: &TurnRecord) -> Result<()> {
    crate::codec::check_id("session id", &turn.session_id)?;
    if turn.seq == 0 || i64::try_from(turn.seq).is_err() {
        return Err(Error::invalid_input("a turn's seq must be 1 to 2^63 - 1")
            .with_context("session", &turn.session_id)
            .with_context("seq", turn.seq));
    }
    crate::portable::check_portable_time("turn", turn.at)
}

/// A page request over a session's turns in `seq` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnPage {
    /// Only turns with a larger `seq` are returned; `None` starts at the first turn.
    pub after_seq: Option<u64>,
    /// Most turns returned: 1 to [`cairn_core::MAX_SCAN_LIMIT`].
    pub limit: usize,
}

impl TurnPage {
    /// The first `limit` turns.
    pub fn first(limit: usize) -> TurnPage {
        TurnPage {
            after_seq: None,
            limit,
        }
    }

    /// Up to `limit` turns after `seq`.
    pub fn after(seq: u64, limit: usize) -> TurnPage {
        TurnPage {
            after_seq: Some(seq),
            limit,
        }
    }
}

/// A session that holds at least one turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodicSession {
    /// The session id.
    pub session_id: String,
    /// How many turns it holds (equal to its last `seq`).
    pub turns: u64,
}

/// Conversation turns per session.
///
/// Session ids are caller-chosen strings of 1 to 256 bytes without NUL; any other id is
/// `InvalidInput`. A bad argument is always rejected before anything is written.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait EpisodicStore: crate::portable::PortableStore {
    /// Appends `turn` to `session_id` and returns it with its `seq` and time.
    ///
    /// The `seq` is one more than the session's last one (1 for a new session); concurrent
    /// appends to one session get distinct, gap-free numbers.
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id or a turn that cannot be stored (time outside
    /// years 0..=9999, too large); `Conflict` (retryable) only under extreme contention.
    async fn append(&self, session_id: &str, turn: Turn) -> Result<TurnRecord>;

    /// Reads up to `page.limit` turns of a session with `seq > page.after_seq`, in `seq`
    /// order. An unknown session reads as empty.
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id or limit; `Corruption` for damaged data.
    async fn read(&self, session_id: &str, page: TurnPage) -> Result<Vec<TurnRecord>>;

    /// Reads up to `limit` turns with `from <= at < to`, ordered by time, then `seq`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id or limit, or `from > to`; `Corruption` for
    /// damaged data.
    async fn read_range(
        &self,
        session_id: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<TurnRecord>>;

    /// Reads up to `page.limit` turns spoken by `role` with `seq > page.after_seq`, in `seq`
    /// order.
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id or limit; `Corruption` for damaged data.
    async fn by_role(
        &self,
        session_id: &str,
        role: Role,
        page: TurnPage,
    ) -> Result<Vec<TurnRecord>>;

    /// How many turns the session holds (0 for an unknown session).
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id; `Corruption` for damaged data.
    async fn count(&self, session_id: &str) -> Result<u64>;

    /// Deletes every turn of the session and returns how many there were (0 for an unknown
    /// session). A later append starts again at `seq` 1.
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id; `Corruption` for damaged data.
    async fn delete_session(&self, session_id: &str) -> Result<u64>;

    /// Lists up to `limit` sessions that hold turns, in the byte order of their escaped ids
    /// (`%` and `/` escaped as `%25` and `%2F`), starting after session id `after`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad `after` id or limit; `Corruption` for damaged data.
    async fn list_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EpisodicSession>>;
}
