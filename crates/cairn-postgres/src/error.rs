//! The one place where driver and pool errors become [`cairn_core::Error`]s.
//!
//! The kind comes from the SQLSTATE when the server sent one, else from the client-side
//! failure (closed connection, I/O). The driver error is always kept as the source, and the
//! SQLSTATE is added as context, so nothing is flattened into a string.

use cairn_core::{Error, ErrorKind};
use deadpool_postgres::{HookError, PoolError, TimeoutType};

/// Maps a driver error raised while running `operation`.
pub(crate) fn from_pg(operation: &'static str, err: tokio_postgres::Error) -> Error {
    let class = classify(&err);
    let mut error = Error::new(class.kind, class.message)
        .with_retryable(class.retryable)
        .with_context("operation", operation);
    // The driver's own `Display` is only "db error" or similar: carry the server's message
    // (never its DETAIL, which can quote whole rows) or the underlying cause as context.
    if let Some(db) = err.as_db_error() {
        error = error
            .with_context("sqlstate", db.code().code())
            .with_context("server_message", db.message());
    } else if let Some(cause) = std::error::Error::source(&err) {
        error = error.with_context("cause", cause);
    }
    error.with_source(err)
}

/// Maps an error from checking a connection out of the pool.
pub(crate) fn from_pool(operation: &'static str, err: PoolError) -> Error {
    match err {
        PoolError::Backend(err) => from_pg(operation, err),
        // The post-create hook (crate::pool) returns a message only when the data role would
        // bypass row-level security; everything else it reports is a driver error.
        PoolError::PostCreateHook(HookError::Message(message)) => {
            Error::new(ErrorKind::PermissionDenied, message).with_context("operation", operation)
        }
        PoolError::PostCreateHook(HookError::Backend(err)) => {
            let error = from_pg(operation, err);
            let kind = error.kind();
            Error::new(kind, "setting up a new pooled connection failed")
                .with_retryable(error.is_retryable())
                .with_context("operation", operation)
                .with_source(error)
        }
        PoolError::Timeout(which) => {
            let message = match which {
                TimeoutType::Wait => "no pooled connection became free within acquire_timeout_ms",
                TimeoutType::Create => "opening a new connection took longer than allowed",
                TimeoutType::Recycle => "checking a pooled connection took longer than allowed",
            };
            Error::new(ErrorKind::Timeout, message)
                .with_retryable(true)
                .with_context("operation", operation)
                .with_source(PoolError::Timeout(which))
        }
        PoolError::Closed => Error::new(ErrorKind::Unavailable, "the connection pool is closed")
            .with_retryable(false)
            .with_context("operation", operation)
            .with_source(PoolError::Closed),
        other @ PoolError::NoRuntimeSpecified => Error::new(
            ErrorKind::Backend,
            "the connection pool has no async runtime",
        )
        .with_context("operation", operation)
        .with_source(other),
    }
}

/// A stored key that is not a valid [`cairn_core::Key`]: written behind Cairn's back.
pub(crate) fn bad_stored_key(source: Error) -> Error {
    Error::corruption("kv_store holds a key that is not a valid Cairn key").with_source(source)
}

struct Class {
    kind: ErrorKind,
    retryable: bool,
    message: &'static str,
}

fn class(kind: ErrorKind, message: &'static str) -> Class {
    Class {
        kind,
        retryable: kind.is_retryable_by_default(),
        message,
    }
}

fn classify(err: &tokio_postgres::Error) -> Class {
    if let Some(code) = err.code() {
        return classify_sqlstate(code.code());
    }
    if err.is_closed() {
        return class(
            ErrorKind::Unavailable,
            "the connection to PostgreSQL is closed",
        );
    }
    if has_io_source(err) {
        return class(ErrorKind::Unavailable, "I/O error talking to PostgreSQL");
    }
    class(ErrorKind::Backend, "PostgreSQL client error")
}

fn classify_sqlstate(code: &str) -> Class {
    match code {
        "40001" => Class {
            kind: ErrorKind::Conflict,
            retryable: true,
            message: "serialization failure: a concurrent transaction got there first",
        },
        "40P01" => Class {
            kind: ErrorKind::Conflict,
            retryable: true,
            message: "deadlock with a concurrent transaction; this one was rolled back",
        },
        "23505" => class(
            ErrorKind::Conflict,
            "unique violation: the key was written concurrently",
        ),
        // Only the native stores' tables have foreign keys: vectors reference their collection.
        "23503" => class(
            ErrorKind::NotFound,
            "the referenced record does not exist (deleted concurrently)",
        ),
        // A CHECK constraint of a native store's table: a value outside what Cairn stores
        // (for example a session renewed past the year 9999).
        "23514" => class(
            ErrorKind::InvalidInput,
            "the value is outside the range the table accepts",
        ),
        // Text or JSON holding a NUL character, which `text` and `jsonb` cannot store.
        "22021" | "22P05" => class(
            ErrorKind::InvalidInput,
            "text or JSON holds a character PostgreSQL cannot store (NUL)",
        ),
        // A counter of a native store's table past `bigint` (a procedure's outcome counter).
        "22003" => class(
            ErrorKind::InvalidInput,
            "a value is outside the range its column holds",
        ),
        "42501" => class(
            ErrorKind::PermissionDenied,
            "PostgreSQL refused the operation (missing privilege or row-level security policy)",
        ),
        "57014" => class(
            ErrorKind::Timeout,
            "the statement was cancelled (statement_timeout_ms exceeded)",
        ),
        "57P01" | "57P02" | "57P03" | "53300" => class(
            ErrorKind::Unavailable,
            "PostgreSQL is shutting down, restarting or not accepting connections",
        ),
        "3D000" => class(
            ErrorKind::Config,
            "the database named in the URL does not exist",
        ),
        "42P01" => class(
            ErrorKind::Backend,
            "a table is missing: run the migrations (auto_migrate or `cargo xtask migrate up`)",
        ),
        c if c.starts_with("08") => class(
            ErrorKind::Unavailable,
            "the connection to PostgreSQL failed",
        ),
        c if c.starts_with("28") => class(
            ErrorKind::PermissionDenied,
            "PostgreSQL rejected the credentials",
        ),
        _ => class(ErrorKind::Backend, "PostgreSQL reported an error"),
    }
}

fn has_io_source(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        let cases = [
            ("40001", ErrorKind::Conflict, true),
            ("40P01", ErrorKind::Conflict, true),
            ("23505", ErrorKind::Conflict, false),
            ("23503", ErrorKind::NotFound, false),
            ("23514", ErrorKind::InvalidInput, false),
            ("22003", ErrorKind::InvalidInput, false),
            ("22021", ErrorKind::InvalidInput, false),
            ("22P05", ErrorKind::InvalidInput, false),
            ("42501", ErrorKind::PermissionDenied, false),
            ("57014", ErrorKind::Timeout, true),
            ("57P01", ErrorKind::Unavailable, true),
            ("57P02", ErrorKind::Unavailable, true),
            ("57P03", ErrorKind::Unavailable, true),
            ("08006", ErrorKind::Unavailable, true),
            ("28P01", ErrorKind::PermissionDenied, false),
            ("22P02", ErrorKind::Backend, false),
        ];
        for (code, kind, retryable) in cases {
            let class = classify_sqlstate(code);
            assert_eq!(class.kind, kind, "{code}");
            assert_eq!(class.retryable, retryable, "{code}");
        }
    }

    #[test]
    fn pool_wait_timeout_is_a_retryable_timeout_with_source() {
        let err = from_pool("get", PoolError::Timeout(TimeoutType::Wait));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.is_retryable());
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn hook_message_is_permission_denied() {
        let err = from_pool(
            "connect",
            PoolError::PostCreateHook(HookError::message("role bypasses RLS")),
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert_eq!(err.message(), "role bypasses RLS");
    }
}
