//! Checks on caller-supplied ids and names shared by the stores.

use cairn_core::{Error, Result};

/// Longest caller-supplied id (or id-like name such as a type or category), in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks that `value`, the caller's `field`, is 1 to [`MAX_ID_BYTES`] bytes.
///
/// # Errors
/// `InvalidInput` naming `field` when the value is empty or too long.
pub(crate) fn caller_id(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_input(format!("{field} must not be empty")));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Error::invalid_input(format!(
            "{field} is {} bytes, the limit is {MAX_ID_BYTES}",
            value.len()
        )));
    }
    Ok(())
}
