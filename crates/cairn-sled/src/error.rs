//! Maps sled's errors into Cairn's error type, in one place.

use cairn_core::{Error, ErrorKind};

/// Converts a sled error, keeping it as the source.
pub(crate) fn from_sled(err: sled::Error) -> Error {
    let (kind, message) = match &err {
        sled::Error::CollectionNotFound(_) => (ErrorKind::NotFound, "sled tree not found"),
        sled::Error::Unsupported(_) => (ErrorKind::Unsupported, "sled does not support this"),
        sled::Error::Corruption { .. } => (ErrorKind::Corruption, "sled found corrupt data"),
        sled::Error::Io(_) => (ErrorKind::Backend, "sled I/O failed"),
        sled::Error::ReportableBug(_) => (ErrorKind::Backend, "sled reported an internal bug"),
    };
    Error::new(kind, message).with_source(err)
}

/// Converts a failed blocking task (a panic inside sled) into a backend error.
pub(crate) fn from_join(err: tokio::task::JoinError) -> Error {
    Error::new(ErrorKind::Backend, "sled task failed").with_source(err)
}
