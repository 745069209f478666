//! The bounded retry loop of read-modify-write operations.

use std::future::Future;

use cairn_core::{Error, ErrorKind, Result};

/// How often a read-modify-write operation is attempted before it gives up with `Conflict`.
///
/// Every round of a compare-and-swap race has a winner, so this bounds the number of writers
/// racing on one key that an operation is guaranteed to outlast.
pub(crate) const MAX_ATTEMPTS: usize = 256;

/// Runs `attempt` until it returns `Some`, at most [`MAX_ATTEMPTS`] times.
///
/// An attempt returns `Ok(None)` when it lost a race (its precondition no longer held) and
/// should start over from a fresh read.
///
/// # Errors
/// The first error an attempt returns, or a retryable `Conflict` naming `what` when every
/// attempt lost its race.
pub(crate) async fn retry<T, F, Fut>(what: &'static str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    for _ in 0..MAX_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(Error::conflict(format!(
        "{what} lost {MAX_ATTEMPTS} races in a row against concurrent writers"
    ))
    .with_retryable(true))
}

/// Turns a conditional write's `Conflict` into `Ok(None)` ("lost the race, retry").
///
/// # Errors
/// Every other error of `result`.
pub(crate) fn settled<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.kind() == ErrorKind::Conflict => Ok(None),
        Err(err) => Err(err),
    }
}
