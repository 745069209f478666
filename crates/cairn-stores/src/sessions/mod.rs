//! Sessions with a time to live: a JSON snapshot of the session's data and the artifacts
//! linked to it.
//!
//! A session whose `expires_at` is not after the current time is expired: it is invisible to
//! every read and update at once, on every backend, whether or not
//! [`SessionStore::purge_expired`] has removed it yet.

mod generic;
pub mod keys;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::paging::Page;

pub use generic::GenericSessionStore;

/// A session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id: given at creation, or a generated UUIDv7.
    pub id: String,
    /// When the session was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the session expires; it is invisible from this instant on.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The time to live given at creation; [`SessionStore::touch`] renews by it.
    pub ttl: Duration,
    /// The session's data snapshot.
    pub data: Value,
    /// Hashes of the artifacts linked to the session, in linking order, without repeats.
    pub artifacts: Vec<String>,
}

/// Checks a time to live: positive.
///
/// # Errors
/// `InvalidInput` for a zero or negative `ttl`.
pub fn check_ttl(ttl: Duration) -> Result<()> {
    if !ttl.is_positive() {
        return Err(Error::invalid_input(format!(
            "a session's time to live must be positive, got {ttl}"
        )));
    }
    Ok(())
}

/// The expiry of a session renewed at `now` for `ttl`.
///
/// # Errors
/// `InvalidInput` when `ttl` is not positive or the expiry would lie after the year 9999.
pub fn expiry(now: OffsetDateTime, ttl: Duration) -> Result<OffsetDateTime> {
    check_ttl(ttl)?;
    now.checked_add(ttl)
        .filter(|at| at.year() <= 9999)
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "a session's time to live of {ttl} reaches past the year 9999"
            ))
        })
}

/// Checks a session read from a portable record before it is imported: its id, time to
/// live, expiry (after creation, before the year 10000) and linked artifact hashes.
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_session(session: &Session) -> Result<()> {
    crate::codec::check_id("session id", &session.id)?;
    check_ttl(session.ttl)?;
    if session.expires_at < session.created_at || session.expires_at.year() > 9999 {
        return Err(Error::invalid_input(
            "a session expires after its creation and before the year 10000",
        )
        .with_context("id", &session.id));
    }
    for hash in &session.artifacts {
        if crate::artifacts::check_hash(hash)? != *hash {
            return Err(Error::invalid_input("linked artifact hashes are lowercase")
                .with_context("id", &session.id));
        }
    }
    Ok(())
}

/// Stores sessions with a time to live.
///
/// Session ids are 1 to 256 bytes without NUL; everything is scoped to the tenant of the
/// backend handle the store was built on.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait SessionStore: crate::portable::PortableStore {
    /// Creates a session that expires `ttl` from now, with id `id` or a generated UUIDv7.
    ///
    /// # Behavior
    /// - An expired session of the same id is replaced.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id or a `ttl` that [`expiry`] rejects; `Conflict` when an
    /// unexpired session has the id.
    async fn create(&self, id: Option<&str>, ttl: Duration, data: Value) -> Result<Session>;

    /// Reads an unexpired session; `None` when it is absent or expired.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Corruption` when the stored record does not decode.
    async fn get(&self, id: &str) -> Result<Option<Session>>;

    /// Lists unexpired sessions in id order, at most `limit` per page, after id `after`.
    ///
    /// # Behavior
    /// - Every page but the last holds `limit` sessions; expired sessions are skipped. When
    ///   only expired sessions follow a full page, the page after it is empty.
    ///
    /// # Errors
    /// `InvalidInput` when `limit` is outside 1 to 10 000 or `after` is a bad id.
    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>>;

    /// Sets the expiry to `ttl` from now (earlier or later than before).
    ///
    /// # Errors
    /// `NotFound` when the session is absent or expired; `InvalidInput` as for `create`.
    async fn extend(&self, id: &str, ttl: Duration) -> Result<Session>;

    /// Sets the expiry to the creation `ttl` from now.
    ///
    /// # Errors
    /// `NotFound` when the session is absent or expired; `InvalidInput` for a bad id.
    async fn touch(&self, id: &str) -> Result<Session>;

    /// Replaces the session's data snapshot; the expiry is unchanged.
    ///
    /// # Errors
    /// `NotFound` when the session is absent or expired; `InvalidInput` for a bad id.
    async fn update_data(&self, id: &str, data: Value) -> Result<Session>;

    /// Links an artifact (by its 64-hex-digit hash) to the session; linking twice is a no-op.
    /// Linking does not take a reference in the artifact store.
    ///
    /// # Errors
    /// `NotFound` when the session is absent or expired; `InvalidInput` for a bad id or hash.
    async fn link_artifact(&self, id: &str, hash: &str) -> Result<Session>;

    /// Unlinks an artifact; returns whether it was linked.
    ///
    /// # Errors
    /// `NotFound` when the session is absent or expired; `InvalidInput` for a bad id or hash.
    async fn unlink_artifact(&self, id: &str, hash: &str) -> Result<bool>;

    /// Deletes a session; returns whether an unexpired session was deleted. An expired one is
    /// removed too, and reported as `false`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Removes every session expired by now; returns how many it removed.
    ///
    /// # Behavior
    /// - Unexpired sessions are untouched, including ones extended while the purge runs.
    /// - Each expired session is counted once, also when purges run concurrently.
    ///
    /// # Errors
    /// Backend errors; `Corruption` when a stored record does not decode.
    async fn purge_expired(&self) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ErrorKind;
    use time::macros::datetime;

    #[test]
    fn expiry_needs_a_positive_ttl_within_range() {
        let now = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(
            expiry(now, Duration::milliseconds(1500)).unwrap(),
            datetime!(2026-01-01 0:00:01.5 UTC)
        );
        for ttl in [Duration::ZERO, Duration::seconds(-1), Duration::MAX] {
            assert_eq!(
                expiry(now, ttl).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
        assert!(expiry(now, Duration::days(365 * 8000)).is_err());
    }

    #[test]
    fn records_round_trip_with_nanosecond_times() {
        let at = datetime!(2026-01-01 0:00:00.123456789 UTC);
        let session = Session {
            id: "s".to_owned(),
            created_at: at,
            expires_at: at + Duration::milliseconds(300),
            ttl: Duration::milliseconds(300),
            data: serde_json::json!({"k": [1, 2]}),
            artifacts: vec!["ab".repeat(32)],
        };
        let bytes = crate::codec::encode_record(&session).unwrap();
        let back: Session = crate::codec::decode_record(&bytes).unwrap();
        assert_eq!(back, session);
    }
}
