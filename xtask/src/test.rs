//! `cargo xtask test`: the whole workspace suite against a real PostgreSQL (DESIGN.md §6).
//!
//! Uses `DATABASE_URL` when set, otherwise the local server from [`crate::pg`] (started, and
//! stopped again afterwards, if it was not running). Migrations run first so that a broken one
//! fails fast. Tests run with `CAIRN_REQUIRE_POSTGRES=1`, so a PostgreSQL test fails rather than
//! skips when the server is unreachable. Every cargo feature is on, so the PostgreSQL paths of
//! feature-gated crates (the registry) are tested too.

use std::process::{Command, Stdio};

use crate::{Result, cmd, deps, migrate, pg};

/// Runs `cargo xtask test [args]`; `args` go to the test runner.
pub(crate) fn run(args: &[String]) -> Result<()> {
    deps::run(&[])?;
    let database = pg::Database::acquire()?;
    migrate_up(database.url())?;

    let mut tests = cmd::cargo();
    if nextest_available() {
        tests.args([
            "nextest",
            "run",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--no-fail-fast",
        ]);
        if is_ci() {
            tests.args(["--profile", "ci"]);
        }
    } else {
        eprintln!("cargo-nextest not found; running the tests with `cargo test`");
        tests.args([
            "test",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--no-fail-fast",
        ]);
    }
    let tests = cmd::run(with_database(tests.args(args), database.url()));
    // The later runs go on after a failure above, so one run reports every failure.
    let doctests = cmd::run(with_database(
        cmd::cargo().args(["test", "--workspace", "--all-features", "--doc"]),
        database.url(),
    ));
    // The registry's errors for backends whose cargo feature is off need a build without them.
    let feature_off = cmd::run(cmd::cargo().args([
        "test",
        "--package",
        "cairn-registry",
        "--no-default-features",
        "--test",
        "feature_off",
    ]));
    let failures: Vec<String> = [tests, doctests, feature_off]
        .into_iter()
        .filter_map(|result| result.err().map(|e| e.to_string()))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

/// Applies every pending migration to `url`.
pub(crate) fn migrate_up(url: &str) -> Result<()> {
    let args = ["up", "--database-url", url].map(String::from);
    eprintln!("$ cargo xtask migrate {}", args.join(" "));
    migrate::run(&args)
}

/// Points `command` at the test database and makes an unreachable server a test failure.
fn with_database<'a>(command: &'a mut Command, url: &str) -> &'a mut Command {
    command
        .env("DATABASE_URL", url)
        .env("CAIRN_REQUIRE_POSTGRES", "1")
}

/// Whether `cargo nextest` is installed.
fn nextest_available() -> bool {
    cmd::cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether this runs in CI (`CI` set to anything but empty, `0` or `false`).
fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}
