//! Atomic write batches with optional preconditions.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::Key;

/// Most operations (puts, deletes and checks together) one batch may hold.
pub const MAX_BATCH_OPS: usize = 100_000;

/// Largest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// One write inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Store `value` under `key`, replacing any previous value.
    Put {
        /// The key to write.
        key: Key,
        /// The new value.
        value: Bytes,
    },
    /// Remove `key` if present.
    Delete {
        /// The key to remove.
        key: Key,
    },
}

impl BatchOp {
    /// The key this operation writes.
    pub fn key(&self) -> &Key {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}

/// A condition on the current value of a key, checked atomically with a batch's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The key whose current value is checked.
    pub key: Key,
    /// The value the key must hold; `None` means the key must be absent.
    pub expected: Option<Bytes>,
}

/// Puts and deletes applied atomically, after all checks hold.
///
/// Operations apply in insertion order, so a later operation on the same key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    checks: Vec<Check>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put.
    pub fn put(mut self, key: Key, value: impl Into<Bytes>) -> Self {
        self.ops.push(BatchOp::Put {
            key,
            value: value.into(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: Key) -> Self {
        self.ops.push(BatchOp::Delete { key });
        self
    }

    /// Requires `key` to hold `expected` (`None`: to be absent) when the batch applies.
    pub fn check(mut self, key: Key, expected: Option<Bytes>) -> Self {
        self.checks.push(Check { key, expected });
        self
    }

    /// The writes in application order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// The preconditions.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Splits the batch into its writes and checks.
    pub fn into_parts(self) -> (Vec<BatchOp>, Vec<Check>) {
        (self.ops, self.checks)
    }

    /// Whether the batch has neither writes nor checks.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.checks.is_empty()
    }

    /// Checks the batch against the limits every backend shares.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the batch holds more
    /// than [`MAX_BATCH_OPS`] entries or a value above [`MAX_VALUE_BYTES`].
    pub fn validate(&self) -> Result<()> {
        check_batch_len(self.ops.len() + self.checks.len())?;
        for op in &self.ops {
            if let BatchOp::Put { value, .. } = op {
                check_value(value)?;
            }
        }
        Ok(())
    }
}

/// Checks a value against [`MAX_VALUE_BYTES`].
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a larger value.
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid_input(format!(
            "value is {} bytes, the limit is {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a batch size against [`MAX_BATCH_OPS`].
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a larger batch.
pub fn check_batch_len(len: usize) -> Result<()> {
    if len > MAX_BATCH_OPS {
        return Err(Error::invalid_input(format!(
            "batch holds {len} operations, the limit is {MAX_BATCH_OPS}"
        )));
    }
    Ok(())
}
