//! Cursor pagination shared by the listing methods of the stores.

use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Largest page a listing method returns.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Which page of a listing to read: up to `limit` items whose id sorts after `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Continue after this id (the previous page's [`Page::next_after`]); `None` starts at
    /// the first item.
    pub after: Option<String>,
    /// Most items to return: 1 to [`MAX_PAGE_LIMIT`].
    pub limit: usize,
}

impl PageRequest {
    /// The first page of up to `limit` items.
    pub fn first(limit: usize) -> PageRequest {
        PageRequest { after: None, limit }
    }

    /// The page after `page`, with the same limit; `None` when `page` was the last one.
    pub fn next(&self, page_next_after: Option<&str>) -> Option<PageRequest> {
        page_next_after.map(|after| PageRequest {
            after: Some(after.to_owned()),
            limit: self.limit,
        })
    }

    /// Checks the limit.
    ///
    /// # Errors
    /// `InvalidInput` when `limit` is 0 or above [`MAX_PAGE_LIMIT`].
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_PAGE_LIMIT {
            return Err(Error::invalid_input(format!(
                "page limit must be 1 to {MAX_PAGE_LIMIT}, got {}",
                self.limit
            )));
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The id to pass as [`PageRequest::after`] for the next page; `Some` exactly when more
    /// items follow.
    pub next_after: Option<String>,
}
