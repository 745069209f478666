//! `cargo xtask migrate up|status`: the PostgreSQL migrations embedded in `cairn-postgres`,
//! applied or listed from the command line (the same runner `auto_migrate` uses).

use cairn_postgres::{MigrationState, MigrationStatus};

const USAGE: &str = "\
cargo xtask migrate <command> [--database-url URL]

Commands:
  up        apply every pending migration (safe to run concurrently: an advisory lock
            serialises runs)
  status    list every migration: version, name, SHA-256 of the file, and when it was
            applied or `pending`
  help      print this message

The server is --database-url URL, else the DATABASE_URL environment variable.
Migrations run as that URL's user, which must be allowed to create tables and roles.
";

/// Runs `migrate` with `args`, the arguments after `migrate`.
pub(crate) fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => return Err(format!("migrate needs a command\n\n{USAGE}").into()),
    };
    if matches!(command, "help" | "-h" | "--help") {
        print!("{USAGE}");
        return Ok(());
    }
    if !matches!(command, "up" | "status") {
        return Err(format!("unknown migrate command `{command}`\n\n{USAGE}").into());
    }
    let url = database_url(rest)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if command == "up" {
        let report = runtime.block_on(cairn_postgres::migrate_up(&url))?;
        for migration in &report.applied_now {
            println!("applied {}", line(migration));
        }
        println!(
            "{} applied now, {} already applied",
            report.applied_now.len(),
            report.already_applied.len()
        );
    } else {
        for migration in runtime.block_on(cairn_postgres::migration_status(&url))? {
            println!("{}", line(&migration));
        }
    }
    Ok(())
}

/// `--database-url URL` or `--database-url=URL` from `args`, else `DATABASE_URL`.
fn database_url(args: &[String]) -> Result<String, Box<dyn std::error::Error>> {
    let mut url = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--database-url" {
            let value = args
                .next()
                .ok_or_else(|| format!("--database-url needs a value\n\n{USAGE}"))?;
            url = Some(value.clone());
        } else if let Some(value) = arg.strip_prefix("--database-url=") {
            url = Some(value.to_owned());
        } else {
            return Err(format!("unexpected argument `{arg}`\n\n{USAGE}").into());
        }
    }
    match url.or_else(|| std::env::var("DATABASE_URL").ok()) {
        Some(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(
            "no database given: pass --database-url URL or set DATABASE_URL \
                  (`cargo xtask pg start` starts a local server and prints its URL)"
                .into(),
        ),
    }
}

/// `0001  kv_store  <sha256>  2026-01-02T03:04:05Z` (or `pending`, or a warning).
fn line(migration: &MigrationStatus) -> String {
    // UTC to the second; the server returns `timestamptz` values in UTC.
    let applied = migration.applied_at().map(|at| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    });
    let state = match (&migration.state, applied) {
        (MigrationState::Modified { recorded, .. }, Some(at)) => {
            format!("{at}  MODIFIED: applied with checksum {recorded}; `up` refuses to run")
        }
        (MigrationState::Unknown { .. }, Some(at)) => format!("{at}  (not in this build)"),
        (_, Some(at)) => at,
        (_, None) => "pending".to_owned(),
    };
    format!(
        "{:04}  {:<24}  {}  {state}",
        migration.version, migration.name, migration.checksum
    )
}
