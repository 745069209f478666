//! The episodic store's key layout (scope `ep`).
//!
//! ```text
//! ep/head/<session>                  SessionHead: last seq (the counter appends CAS on)
//! ep/turn/<session>/<seq>            TurnRecord
//! ep/time/<session>/<time>/<seq>     empty: time index
//! ep/role/<session>/<role>/<seq>     empty: role index
//! ```

use cairn_core::{Key, Result};
use time::OffsetDateTime;

use super::Role;
use crate::codec::KeyPath;

const SCOPE: &str = "ep";

/// Every key the episodic store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodicKey<'a> {
    /// A session's counter: its last `seq`.
    Head {
        /// Session id.
        session: &'a str,
    },
    /// One turn.
    Turn {
        /// Session id.
        session: &'a str,
        /// The turn's `seq`.
        seq: u64,
    },
    /// Time index entry of a turn.
    ByTime {
        /// Session id.
        session: &'a str,
        /// The turn's time.
        at: OffsetDateTime,
        /// The turn's `seq`.
        seq: u64,
    },
    /// Role index entry of a turn.
    ByRole {
        /// Session id.
        session: &'a str,
        /// The turn's role.
        role: Role,
        /// The turn's `seq`.
        seq: u64,
    },
}

impl EpisodicKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the session id makes the key invalid.
    pub fn key(&self) -> Result<Key> {
        self.path().key()
    }

    fn path(&self) -> KeyPath {
        match *self {
            EpisodicKey::Head { session } => KeyPath::new(SCOPE).name("head").id(session),
            EpisodicKey::Turn { session, seq } => turns(session).u64(seq),
            EpisodicKey::ByTime { session, at, seq } => times(session).time(at).u64(seq),
            EpisodicKey::ByRole { session, role, seq } => roles(session, role).u64(seq),
        }
    }

    /// Prefix of every session head.
    pub fn heads_prefix() -> String {
        KeyPath::new(SCOPE).name("head").prefix()
    }

    /// Prefix of every turn of every session.
    pub fn all_turns_prefix() -> String {
        KeyPath::new(SCOPE).name("turn").prefix()
    }

    /// Prefix of a session's turns.
    pub fn turns_prefix(session: &str) -> String {
        turns(session).prefix()
    }

    /// Prefix of a session's time index.
    pub fn times_prefix(session: &str) -> String {
        times(session).prefix()
    }

    /// Prefix of a session's role index for `role`.
    pub fn role_prefix(session: &str, role: Role) -> String {
        roles(session, role).prefix()
    }

    /// A bound inside the time index: sorts after every entry before `at` and before every
    /// entry at or after `at`.
    ///
    /// # Errors
    /// `InvalidInput` when the session id makes the key invalid.
    pub fn time_bound(session: &str, at: OffsetDateTime) -> Result<Key> {
        times(session).time(at).key()
    }
}

fn turns(session: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("turn").id(session)
}

fn times(session: &str) -> KeyPath {
    KeyPath::new(SCOPE).name("time").id(session)
}

fn roles(session: &str, role: Role) -> KeyPath {
    KeyPath::new(SCOPE)
        .name("role")
        .id(session)
        .name(role.as_str())
}
