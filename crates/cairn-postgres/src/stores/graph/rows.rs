//! Typed mapping of the graph store's rows (the column lists of `sql::entity_columns!` and
//! `sql::relationship_columns!`, starting at any column).

use cairn_core::{Error, Result};
use cairn_stores::graph::{Bitemporal, Entity, Relationship};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::super::stored_u64;
use super::super::timestamps::join;
use crate::error;

/// Reads columns of one row for operation `op`, each error mapped once.
pub(super) struct Cols<'r> {
    row: &'r Row,
    op: &'static str,
}

impl<'r> Cols<'r> {
    pub(super) fn new(row: &'r Row, op: &'static str) -> Cols<'r> {
        Cols { row, op }
    }

    /// Column `i` as `T`.
    pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, i: usize) -> Result<T> {
        self.row
            .try_get(i)
            .map_err(|err| error::from_pg(self.op, err))
    }

    /// The time in columns `i` (microseconds) and `i + 1` (nanoseconds).
    fn time(&self, i: usize) -> Result<OffsetDateTime> {
        join(self.get(i)?, self.get(i + 1)?)
    }

    /// [`Cols::time`] for an end that may be open (both columns NULL).
    fn open_time(&self, i: usize) -> Result<Option<OffsetDateTime>> {
        match (self.get(i)?, self.get(i + 1)?) {
            (Some(at), Some(ns)) => join(at, ns).map(Some),
            (None, None) => Ok(None),
            _ => Err(Error::corruption(
                "stored graph time has only one of its two columns",
            )),
        }
    }

    /// The eight time columns from `i` on.
    fn bitemporal(&self, i: usize) -> Result<Bitemporal> {
        Ok(Bitemporal {
            valid_from: self.time(i)?,
            valid_to: self.open_time(i + 2)?,
            recorded_at: self.time(i + 4)?,
            superseded_at: self.open_time(i + 6)?,
        })
    }

    fn properties(&self, i: usize) -> Result<Map<String, Value>> {
        match self.get::<Value>(i)? {
            Value::Object(map) => Ok(map),
            _ => Err(Error::corruption(
                "stored graph properties are not a JSON object",
            )),
        }
    }

    fn version(&self, i: usize) -> Result<u64> {
        stored_u64(self.get(i)?, "version")
    }
}

/// An entity from the columns of `entity_columns!` starting at `first`.
pub(super) fn entity_from(cols: &Cols<'_>, first: usize) -> Result<Entity> {
    Ok(Entity {
        id: cols.get(first)?,
        version: cols.version(first + 1)?,
        entity_type: cols.get(first + 2)?,
        name: cols.get(first + 3)?,
        properties: cols.properties(first + 4)?,
        time: cols.bitemporal(first + 5)?,
    })
}

/// A relationship from the columns of `relationship_columns!` starting at `first`.
pub(super) fn relationship_from(cols: &Cols<'_>, first: usize) -> Result<Relationship> {
    Ok(Relationship {
        id: cols.get(first)?,
        version: cols.version(first + 1)?,
        from: cols.get(first + 2)?,
        to: cols.get(first + 3)?,
        relation_type: cols.get(first + 4)?,
        properties: cols.properties(first + 5)?,
        time: cols.bitemporal(first + 6)?,
    })
}
