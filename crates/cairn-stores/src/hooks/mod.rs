//! Hook history: one record per hook execution (input, output or error, duration, time),
//! queried by hook and time, summarised by [`HookHistoryStore::stats`] and trimmed by
//! [`HookHistoryStore::drop_before`].

pub mod keys;

mod generic;

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::stream::StreamCursor;
pub use generic::GenericHookHistoryStore;

/// Default page size of a [`HookQuery`].
pub const DEFAULT_HOOK_LIMIT: usize = 100;

/// One execution to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookExecution {
    /// The hook that ran.
    pub hook_name: String,
    /// What it was given.
    pub input: Value,
    /// What it returned, if it returned.
    pub output: Option<Value>,
    /// Why it failed, if it failed; an execution with an error counts as a failure.
    pub error: Option<String>,
    /// How long it ran.
    pub duration: Duration,
    /// When it ran; `None` means the time of recording. Stored in UTC.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

/// A recorded execution. It is also the portable record of the hook history
/// ([`crate::portable`]), one per execution; see [`check_hook_record`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    /// UUID v7 assigned by the store; breaks ties between executions of the same time.
    pub id: Uuid,
    /// The hook that ran.
    pub hook_name: String,
    /// What it was given.
    pub input: Value,
    /// What it returned.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it ran.
    pub duration: Duration,
    /// When it ran, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Checks an execution read from a portable record before it is imported: its hook name and
/// its time (UTC, years 0 to 9999). Its id is kept: an execution's identity is its time and
/// id, as in every store's order.
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_hook_record(record: &HookRecord) -> Result<()> {
    crate::codec::check_id("hook name", &record.hook_name)?;
    crate::portable::check_portable_time("hook execution", record.at)
}

/// Where a previous page ended: the time and id of its last record.
pub type HookCursor = StreamCursor;

impl From<&HookRecord> for StreamCursor {
    fn from(record: &HookRecord) -> StreamCursor {
        StreamCursor {
            at: record.at,
            id: record.id,
        }
    }
}

/// What to read from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HookQuery {
    /// Only executions of this hook.
    pub hook_name: Option<String>,
    /// Only executions at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only executions strictly before this time.
    pub to: Option<OffsetDateTime>,
    /// Most records returned: 1 to [`cairn_core::MAX_SCAN_LIMIT`].
    pub limit: usize,
    /// Only records after this one in (time, id) order.
    pub after: Option<HookCursor>,
}

impl Default for HookQuery {
    /// Every execution, [`DEFAULT_HOOK_LIMIT`] per page.
    fn default() -> Self {
        HookQuery {
            hook_name: None,
            from: None,
            to: None,
            limit: DEFAULT_HOOK_LIMIT,
            after: None,
        }
    }
}

/// Summary of a hook's executions in a time range. Percentiles use the nearest-rank
/// method: p50 and p95 are durations that actually occurred.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HookStats {
    /// Executions counted.
    pub count: u64,
    /// Those that carried an error.
    pub failures: u64,
    /// Mean duration in milliseconds; `None` when `count` is 0.
    pub mean_ms: Option<f64>,
    /// Median duration in milliseconds; `None` when `count` is 0.
    pub p50_ms: Option<f64>,
    /// 95th-percentile duration in milliseconds; `None` when `count` is 0.
    pub p95_ms: Option<f64>,
}

/// History of hook executions.
///
/// Hook names are strings of 1 to 256 bytes without NUL; any other is `InvalidInput`. A bad
/// argument is always rejected before anything is written.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait HookHistoryStore: crate::portable::PortableStore {
    /// Records one execution and returns it with its id and time.
    ///
    /// # Errors
    /// `InvalidInput` for a bad hook name or a time outside years 0..=9999.
    async fn record(&self, execution: HookExecution) -> Result<HookRecord>;

    /// Reads up to `query.limit` matching records ordered by time, then id.
    ///
    /// # Errors
    /// `InvalidInput` for a bad hook name or limit, or `from > to`; `Corruption` for
    /// damaged data.
    async fn query(&self, query: &HookQuery) -> Result<Vec<HookRecord>>;

    /// Counts, failures and duration statistics of `hook_name`'s executions with
    /// `from <= at < to` (open ends when `None`). Reads only the per-hook index, not inputs
    /// or outputs, and holds one duration per execution in the range in memory (exact
    /// percentiles).
    ///
    /// # Errors
    /// `InvalidInput` for a bad hook name or `from > to`; `Corruption` for damaged data.
    async fn stats(
        &self,
        hook_name: &str,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<HookStats>;

    /// Deletes every record strictly before `before`, with its index entry, and returns how
    /// many were deleted.
    ///
    /// # Errors
    /// `Corruption` when an old record cannot be decoded (it is then kept).
    async fn drop_before(&self, before: OffsetDateTime) -> Result<u64>;
}
