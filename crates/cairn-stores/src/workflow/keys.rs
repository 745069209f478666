//! The workflow store's key layout (scope `wf`).
//!
//! ```text
//! wf/rec/<id>               Workflow
//! wf/status/<status>/<id>   empty: status index, moved in the same batch as the record
//! ```

use cairn_core::{Error, Key, Result};

use super::WorkflowStatus;
use crate::codec::{KeyPath, unescape_id};

const SCOPE: &str = "wf";

/// Every key the workflow store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowKey<'a> {
    /// A workflow record.
    Record {
        /// Workflow id.
        id: &'a str,
    },
    /// Status index entry.
    ByStatus {
        /// The workflow's current status.
        status: WorkflowStatus,
        /// Workflow id.
        id: &'a str,
    },
}

impl WorkflowKey<'_> {
    /// The storage key.
    ///
    /// # Errors
    /// `InvalidInput` when the id makes the key invalid.
    pub fn key(&self) -> Result<Key> {
        match *self {
            WorkflowKey::Record { id } => records().id(id),
            WorkflowKey::ByStatus { status, id } => by_status(status).id(id),
        }
        .key()
    }

    /// Prefix of every workflow record.
    pub fn records_prefix() -> String {
        records().prefix()
    }

    /// Prefix of the status index for `status`.
    pub fn status_prefix(status: WorkflowStatus) -> String {
        by_status(status).prefix()
    }

    /// The workflow id of a status index key.
    ///
    /// # Errors
    /// `Corruption` when the key is not a status index key.
    pub fn id_of(index_key: &Key) -> Result<String> {
        match index_key.as_str().rsplit_once('/') {
            Some((_, id)) => unescape_id(id),
            None => {
                Err(Error::corruption("malformed workflow index key")
                    .with_context("key", index_key))
            }
        }
    }
}

fn records() -> KeyPath {
    KeyPath::new(SCOPE).name("rec")
}

fn by_status(status: WorkflowStatus) -> KeyPath {
    KeyPath::new(SCOPE).name("status").name(status.as_str())
}
