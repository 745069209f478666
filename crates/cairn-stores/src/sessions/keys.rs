//! The key layout of [`GenericSessionStore`](super::GenericSessionStore).
//!
//! ```text
//! ses/s/<id>             session record (versioned JSON)
//! ses/x/<expiry>/<id>    expiry index entry (value: the index format version byte)
//! ```
//!
//! Record and index entry are always written in one batch, so the index holds exactly one
//! entry per stored session, at its current expiry. Public for tooling and integrity tests.

use cairn_core::{Key, Result};
use time::{Duration, OffsetDateTime};

use crate::codec::KeyPath;

const SCOPE: &str = "ses";

/// The value of every expiry index entry: its format version.
pub const INDEX_VALUE: &[u8] = &[1];

/// One key of the session store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKey<'a> {
    /// A session's record.
    Record {
        /// The session id.
        id: &'a str,
    },
    /// A session's entry in the expiry index.
    Expiry {
        /// The session's expiry.
        at: OffsetDateTime,
        /// The session id.
        id: &'a str,
    },
}

impl SessionKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the id makes the key too long.
    pub fn key(&self) -> Result<Key> {
        match *self {
            SessionKey::Record { id } => records().id(id).key(),
            SessionKey::Expiry { at, id } => expiries().time(at).id(id).key(),
        }
    }

    /// The prefix of every session record.
    pub fn records_prefix() -> String {
        records().prefix()
    }

    /// The prefix of the expiry index.
    pub fn expiry_prefix() -> String {
        expiries().prefix()
    }

    /// Every index key of a session expired at `now` (expiry not after `now`) sorts below this
    /// bound, and every other index key at or above it.
    pub fn expired_bound(now: OffsetDateTime) -> String {
        expiries().time(now + Duration::nanoseconds(1)).prefix()
    }
}

fn records() -> KeyPath {
    KeyPath::new(SCOPE).name("s")
}

fn expiries() -> KeyPath {
    KeyPath::new(SCOPE).name("x")
}
