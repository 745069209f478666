//! Paginated, ordered scans.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::Key;

/// Largest page a single scan call returns.
pub const MAX_SCAN_LIMIT: usize = 10_000;

/// One page of a prefix scan, in ascending key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Key/value pairs of this page.
    pub entries: Vec<(Key, Bytes)>,
    /// The key to pass as `after` for the next page; `None` when no more entries exist.
    pub next_after: Option<Key>,
}

impl ScanPage {
    /// Builds a page from up to `limit + 1` ordered entries: the extra entry, if present, only
    /// signals that another page exists and is dropped.
    pub fn from_overfetched(mut entries: Vec<(Key, Bytes)>, limit: usize) -> ScanPage {
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next_after = if more {
            entries.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        ScanPage {
            entries,
            next_after,
        }
    }
}

/// Checks a scan page size: 1 to [`MAX_SCAN_LIMIT`].
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) outside that range.
pub fn check_scan_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_SCAN_LIMIT {
        return Err(Error::invalid_input(format!(
            "scan limit must be 1 to {MAX_SCAN_LIMIT}, got {limit}"
        )));
    }
    Ok(())
}
