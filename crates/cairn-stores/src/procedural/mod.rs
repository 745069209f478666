//! Procedural memory: reusable procedures (patterns, skills) grouped by category, with
//! success/failure counters and rankings.
//!
//! A procedure's definition is written with [`ProceduralStore::upsert_procedure`]; its
//! outcome counters are kept by the store and only change through
//! [`ProceduralStore::record_outcome`], which is atomic: concurrent calls never lose a
//! count. Replacing a definition keeps its counters.
//!
//! ## Rankings
//! - By success rate: `successes / (successes + failures)`, highest first; ties go to the
//!   procedure with more uses, then to the smaller id. Procedures with fewer than
//!   `max(min_uses, 1)` uses are left out (an unused procedure has no rate).
//! - By frequency: uses (`successes + failures`), highest first; ties go to the smaller id.
//!   Unused procedures are left out.
//!
//! Rates are compared exactly (as fractions), never as rounded floats.

mod generic;
mod keys;

use std::fmt::Debug;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::codec::check_id;
use crate::paging::{Page, PageRequest};
use crate::portable::check_portable_time;

pub use generic::GenericProceduralStore;

/// The definition of a procedure, as the caller writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Procedure {
    /// The caller's id (1 to 256 bytes).
    pub id: String,
    /// A human-readable name (not empty).
    pub name: String,
    /// The category it is listed and ranked under (1 to 256 bytes).
    pub category: String,
    /// What it does and when to use it.
    pub description: String,
    /// The steps or content, in any JSON shape.
    pub content: Value,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
}

impl Procedure {
    /// Checks the definition as every implementation of [`ProceduralStore`] does before
    /// writing it.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or over-long id or category, or an empty name.
    pub fn validate(&self) -> Result<()> {
        check_id("procedure id", &self.id)?;
        check_id("procedure category", &self.category)?;
        if self.name.is_empty() {
            return Err(Error::invalid_input("procedure name must not be empty"));
        }
        Ok(())
    }
}

/// Outcome counters of a procedure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeStats {
    /// Recorded successes.
    pub successes: u64,
    /// Recorded failures.
    pub failures: u64,
    /// When the last outcome was recorded; `None` before the first one.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl OutcomeStats {
    /// Recorded outcomes: `successes + failures` (saturating).
    pub fn uses(&self) -> u64 {
        self.successes.saturating_add(self.failures)
    }

    /// `successes / uses`, or `None` before the first outcome. Rankings compare exact
    /// fractions instead of this rounded value.
    pub fn success_rate(&self) -> Option<f64> {
        match self.uses() {
            0 => None,
            uses => Some(self.successes as f64 / uses as f64),
        }
    }
}

/// A stored procedure: the caller's definition plus what the store keeps about it. It is also
/// the portable record of procedural memory ([`crate::portable`]), one per procedure; see
/// [`check_stored_procedure`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProcedure {
    /// The definition last written.
    pub procedure: Procedure,
    /// Outcome counters, kept across definition updates.
    pub stats: OutcomeStats,
    /// When the procedure was first written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its definition was last written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Checks a procedure read from a portable record before it is imported: its definition (as
/// [`Procedure::validate`]), counters of at most `i64::MAX` (what every backend stores) and
/// times (UTC, years 0 to 9999).
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_stored_procedure(record: &StoredProcedure) -> Result<()> {
    record.procedure.validate()?;
    for (what, count) in [
        ("successes", record.stats.successes),
        ("failures", record.stats.failures),
    ] {
        if i64::try_from(count).is_err() {
            return Err(Error::invalid_input(format!(
                "procedure {what} must be at most {}",
                i64::MAX
            ))
            .with_context("id", &record.procedure.id));
        }
    }
    check_portable_time("procedure creation", record.created_at)?;
    check_portable_time("procedure update", record.updated_at)?;
    if let Some(at) = record.stats.last_used_at {
        check_portable_time("procedure last use", at)?;
    }
    Ok(())
}

/// A store of procedures with outcome counters and rankings (see the
/// [module docs](self)).
///
/// Invalid input is `InvalidInput` and changes nothing; a stored record that does not
/// decode is `Corruption`.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait ProceduralStore: crate::portable::PortableStore {
    /// Creates the procedure or replaces its definition, keeping its counters and creation
    /// time; moving it to another category moves it in the category listing atomically.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or over-long id or category, or an empty name;
    /// `Corruption` when the stored record does not decode; `Conflict` (retryable) if the
    /// write kept losing races.
    async fn upsert_procedure(&self, procedure: Procedure) -> Result<StoredProcedure>;

    /// The procedure `id`, if stored.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid id; `Corruption` when the record does not decode.
    async fn get(&self, id: &str) -> Result<Option<StoredProcedure>>;

    /// Removes procedure `id` and its counters; `true` when it existed. A record that does
    /// not decode is removed too.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid id; `Conflict` (retryable) if it kept losing races.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Procedures of `category`, ordered by id (`%` and `/` order as their escapes `%25`
    /// and `%2F`).
    ///
    /// # Errors
    /// `InvalidInput` for an invalid category or page limit; `Corruption` as for `get`.
    async fn list_by_category(
        &self,
        category: &str,
        page: PageRequest,
    ) -> Result<Page<StoredProcedure>>;

    /// Atomically adds one success or one failure to procedure `id`, sets its
    /// `last_used_at`, and returns the new counters.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidInput` for an invalid id or a counter at
    /// `u64::MAX`; `Corruption` as for `get`; `Conflict` (retryable) if it kept losing
    /// races.
    async fn record_outcome(&self, id: &str, success: bool) -> Result<OutcomeStats>;

    /// Up to `limit` procedures (of `category`, or all) with at least `min_uses` uses, best
    /// success rate first (ties: more uses, then smaller id).
    ///
    /// # Errors
    /// `InvalidInput` for a limit outside 1 to [`MAX_PAGE_LIMIT`](crate::paging::MAX_PAGE_LIMIT)
    /// or an invalid category; `Corruption` as for `get`.
    async fn top_by_success_rate(
        &self,
        category: Option<&str>,
        limit: usize,
        min_uses: u64,
    ) -> Result<Vec<StoredProcedure>>;

    /// Up to `limit` used procedures (of `category`, or all), most used first (ties: smaller
    /// id).
    ///
    /// # Errors
    /// As for [`ProceduralStore::top_by_success_rate`].
    async fn top_by_frequency(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredProcedure>>;
}
