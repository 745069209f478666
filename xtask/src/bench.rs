//! `cargo xtask bench`: the `cairn-bench` harness (release build) against a real PostgreSQL.
//!
//! The database is found or started as for `cargo xtask test`, migrations run first, and a
//! server this run started is stopped afterwards.

use crate::{Result, cmd, pg, test};

/// Runs `cargo xtask bench [--] [args]`; `args` go to the `cairn-bench` binary (a leading
/// `--` separator is dropped, so `cargo xtask bench -- --suite vectors` works as it reads).
pub(crate) fn run(args: &[String]) -> Result<()> {
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let database = pg::Database::acquire()?;
    test::migrate_up(database.url())?;
    cmd::run(
        cmd::cargo()
            .args(["run", "--release", "--package", "cairn-bench", "--"])
            .args(args)
            .env("DATABASE_URL", database.url()),
    )
}
