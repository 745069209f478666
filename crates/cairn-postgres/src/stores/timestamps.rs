//! Cairn's nanosecond times in PostgreSQL's microsecond `timestamptz`: each stored time is a
//! `timestamptz` column holding the time rounded down to the microsecond plus a `smallint`
//! column (`at_ns`) holding the remaining nanoseconds, so times round-trip exactly and order
//! by the pair.

use cairn_core::{Error, Result};
use time::{Duration, OffsetDateTime, UtcOffset};
use tokio_postgres::Row;

use crate::error;

/// `at` in UTC split into the time rounded down to the microsecond (what `timestamptz` holds)
/// and the remaining nanoseconds.
pub(crate) fn split(at: OffsetDateTime) -> (OffsetDateTime, i16) {
    let at = at.to_offset(UtcOffset::UTC);
    let ns = at.nanosecond() % 1_000;
    // `ns` < 1000 fits i16; subtracting it keeps the time within the valid range.
    (at - Duration::nanoseconds(i64::from(ns)), ns as i16)
}

/// The inverse of [`split`].
///
/// # Errors
/// `Corruption` when the stored nanoseconds are outside 0..=999.
pub(crate) fn join(at: OffsetDateTime, ns: i16) -> Result<OffsetDateTime> {
    if !(0..1_000).contains(&ns) {
        return Err(
            Error::corruption("stored time has an out-of-range at_ns").with_context("at_ns", ns)
        );
    }
    Ok(at.to_offset(UtcOffset::UTC) + Duration::nanoseconds(i64::from(ns)))
}

/// The optional time in columns `at` (`timestamptz`) and `at + 1` (its nanoseconds) of
/// `row`, both NULL when unset.
///
/// # Errors
/// `Corruption` when only one of the two is NULL or the nanoseconds are out of range.
pub(crate) fn optional_at(
    row: &Row,
    at: usize,
    op: &'static str,
) -> Result<Option<OffsetDateTime>> {
    let map = |err| error::from_pg(op, err);
    let time: Option<OffsetDateTime> = row.try_get(at).map_err(map)?;
    let ns: Option<i16> = row.try_get(at + 1).map_err(map)?;
    match (time, ns) {
        (Some(time), Some(ns)) => join(time, ns).map(Some),
        (None, None) => Ok(None),
        _ => Err(Error::corruption("stored time lacks its nanoseconds")),
    }
}

/// Checks that `at` (the time of a `what`) lies in years 0 to 9999, the range every backend
/// stores.
///
/// # Errors
/// `InvalidInput` otherwise.
pub(crate) fn check_year(what: &str, at: OffsetDateTime) -> Result<()> {
    if (0..=9999).contains(&at.year()) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "{what} time {at} lies outside years 0 to 9999"
        )))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn split_and_join_keep_nanoseconds_before_and_after_1970() {
        for at in [
            datetime!(2999-12-31 23:59:59.999999999 UTC),
            datetime!(1969-12-31 23:59:59.5 UTC),
            datetime!(1900-01-01 0:00:00.000000001 UTC),
        ] {
            let (micros, ns) = split(at);
            assert_eq!(micros.nanosecond() % 1_000, 0);
            assert_eq!(join(micros, ns).unwrap(), at);
        }
    }

    #[test]
    fn years_outside_0_to_9999_are_refused() {
        assert!(check_year("turn", datetime!(0000-01-01 0:00 UTC)).is_ok());
        assert!(check_year("turn", datetime!(-0001-12-31 0:00 UTC)).is_err());
    }
}
