//! Cairn's task runner, reached through the `cargo xtask` alias in `.cargo/config.toml`.
//!
//! A plain binary with one module per subcommand and no argument-parsing framework, in the
//! style of rust-analyzer's `xtask`. Progress and the commands it runs go to stderr; the one
//! machine-readable result of a subcommand (a `DATABASE_URL`) goes to stdout.

mod bench;
mod cmd;
mod deps;
mod migrate;
mod pg;
mod test;

use std::process::ExitCode;

/// The error type of every task: a message for the user, printed by [`main`].
pub(crate) type Error = Box<dyn std::error::Error>;

/// `Result` with [`Error`] as the default error type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

const HELP: &str = "\
cargo xtask <command> [args]

Commands:
  pg start            start the local PostgreSQL 18 test server (installs it on first use)
                      and print its DATABASE_URL; prints $DATABASE_URL instead when set
  pg stop             stop the local test server
  pg status           say whether the local test server runs, and its URL
  pg url              print the local test server's URL; fails when it is not running
  migrate [args]      apply or inspect the PostgreSQL migrations (see `migrate help`)
  test [args]         start PostgreSQL if needed, migrate, run every workspace test and
                      the doctests; args go to the test runner (nextest or cargo test)
  bench [--] [args]   start PostgreSQL if needed, migrate, run `cairn-bench` in release
                      mode; args go to the bench binary
  deps                check the crate dependency direction (core names no driver, ...)
  help                print this message

Environment:
  DATABASE_URL        use this server instead of the local one; nothing is installed
                      or started
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches `args` (without the program name) to a subcommand.
fn run(args: &[String]) -> Result<()> {
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    match command {
        "pg" => pg::run(rest),
        "migrate" => migrate::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "deps" => deps::run(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{HELP}").into()),
    }
}
