//! Pages of a listing, shared by the stores that list records in key order.

use serde::{Deserialize, Serialize};

/// One page of a listing.
///
/// Pass `next_after` back as the `after` argument of the same listing call to continue without
/// gaps or repeats; it is `None` when the listing is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The records of this page, in listing order.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` when no more records follow.
    pub next_after: Option<String>,
}
