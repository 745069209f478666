//! The migration runner: the SQL files in the workspace's `migrations/` folder, embedded at
//! compile time and applied in order.
//!
//! Rules (the same as sqlx's):
//! - A migration is a file `NNNN_name.sql`; the number orders it. Once released a file is
//!   immutable: change the schema with a new, higher-numbered file.
//! - The table `cairn_schema_migrations` records each applied migration with the SHA-256 of
//!   its file. An applied migration whose recorded checksum differs from the embedded file
//!   stops the run with [`ErrorKind::Corruption`] (an integrity check failed: the file was
//!   edited after it was applied, or the record was tampered with), naming the file and both
//!   checksums. Nothing is applied in that case.
//! - A run holds a session advisory lock on a dedicated connection, so concurrent runs on one
//!   database (several processes starting at once) apply each migration exactly once; the
//!   others wait and then find nothing to do.
//! - Each pending migration runs in its own transaction together with its tracking row, so a
//!   failed migration leaves no trace and the run stops there. A migration file therefore
//!   must not contain `BEGIN`/`COMMIT` or statements that cannot run in a transaction
//!   (`CREATE INDEX CONCURRENTLY`).
//! - Migrations run as the URL's user, which must be allowed to create tables, policies and
//!   (unless it already exists) the `cairn_app` role.
//! - Versions recorded in the database but not embedded in this build (applied by a newer
//!   build) are left alone and reported by [`migration_status`].

use std::fmt;

use cairn_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_postgres::{Client, NoTls};

use crate::error;
use crate::sql::migrate as sql;

/// Lists each migration file once, by name; the version and name come from the file name.
macro_rules! embedded {
    ($($file:literal),+ $(,)?) => {
        [$(
            ($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/", $file))),
        )+]
    };
}

/// Every migration this build knows, in version order.
const EMBEDDED: [(&str, &str); 8] = embedded![
    "0001_kv_store.sql",
    "0002_vectors_events.sql",
    "0003_sessions_hooks.sql",
    "0004_episodic_agent_state.sql",
    "0005_graph.sql",
    "0006_procedural_workflow_artifacts.sql",
    "0007_vector_dimensions_event_retention.sql",
    "0008_concurrent_event_retention.sql",
];

/// The SHA-256 of a migration file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Checksum(Vec<u8>);

impl Checksum {
    fn of(sql: &str) -> Checksum {
        Checksum(Sha256::digest(sql.as_bytes()).to_vec())
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Checksum {
    /// Lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// Where a migration stands in one database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationState {
    /// Embedded in this build and not applied yet.
    Pending,
    /// Applied at `at` with the embedded file's checksum.
    Applied {
        /// When the migration's transaction committed.
        at: OffsetDateTime,
    },
    /// Applied at `at`, but the recorded checksum differs from the embedded file; `migrate_up`
    /// refuses to run until this is resolved.
    Modified {
        /// When the migration was applied.
        at: OffsetDateTime,
        /// The checksum recorded when it was applied.
        recorded: Checksum,
    },
    /// Recorded in the database but not embedded in this build (a newer build applied it).
    Unknown {
        /// When the migration was applied.
        at: OffsetDateTime,
    },
}

/// One migration and its state in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The `NNNN` of the file name.
    pub version: i64,
    /// The file name without number and extension (`kv_store` for `0001_kv_store.sql`).
    pub name: String,
    /// The embedded file's checksum; for [`MigrationState::Unknown`] the recorded one.
    pub checksum: Checksum,
    /// Applied or not, and when.
    pub state: MigrationState,
}

impl MigrationStatus {
    /// When the migration was applied; `None` while it is pending.
    pub fn applied_at(&self) -> Option<OffsetDateTime> {
        match &self.state {
            MigrationState::Pending => None,
            MigrationState::Applied { at }
            | MigrationState::Modified { at, .. }
            | MigrationState::Unknown { at } => Some(*at),
        }
    }
}

/// What [`migrate_up`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations this run applied, in order.
    pub applied_now: Vec<MigrationStatus>,
    /// Embedded migrations that were applied before this run.
    pub already_applied: Vec<MigrationStatus>,
}

/// Applies every pending migration to the database at `url`.
///
/// # Errors
/// - [`ErrorKind::Config`] for a malformed URL or a database that does not exist.
/// - [`ErrorKind::Corruption`] when an applied migration's recorded checksum differs from
///   the embedded file (the message names the file and both checksums); nothing is applied.
/// - The mapped driver error of a failing migration; it is rolled back and the run stops.
pub async fn migrate_up(url: &str) -> Result<MigrationReport> {
    apply(&parse_url(url)?).await
}

/// The state of every embedded migration in the database at `url`, plus any recorded
/// migration this build does not know, in version order. Changes nothing.
///
/// # Errors
/// [`ErrorKind::Config`] for a malformed URL or a database that does not exist; the mapped
/// driver error when the server cannot be reached or read.
pub async fn migration_status(url: &str) -> Result<Vec<MigrationStatus>> {
    let migrations = embedded()?;
    let client = connect(&parse_url(url)?).await?;
    let tracked: bool = client
        .query_one(sql::TRACKING_EXISTS, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|err| error::from_pg("migration_status", err))?;
    let recorded = if tracked {
        recorded(&client).await?
    } else {
        Vec::new()
    };
    Ok(status(&migrations, &recorded))
}

/// Applies pending migrations with an already validated driver configuration.
pub(crate) async fn apply(config: &tokio_postgres::Config) -> Result<MigrationReport> {
    const OP: &str = "migrate_up";
    let migrations = embedded()?;
    let mut client = connect(config).await?;
    let map = |err| error::from_pg(OP, err);
    // Session lock: released by the explicit unlock below, or by the server when this
    // connection ends on an error path.
    client
        .execute(sql::LOCK, &[&sql::LOCK_KEY])
        .await
        .map_err(map)?;
    client
        .batch_execute(sql::CREATE_TRACKING)
        .await
        .map_err(map)?;
    let recorded = recorded(&client).await?;
    let states = status(&migrations, &recorded);
    if let Some(modified) = states
        .iter()
        .find(|s| matches!(s.state, MigrationState::Modified { .. }))
    {
        return Err(modified_error(modified));
    }
    for unknown in states
        .iter()
        .filter(|s| matches!(s.state, MigrationState::Unknown { .. }))
    {
        tracing::warn!(
            version = unknown.version,
            name = %unknown.name,
            "database has a migration this build does not know; leaving it alone"
        );
    }

    let mut report = MigrationReport::default();
    for (migration, state) in migrations.iter().zip(&states) {
        if state.state != MigrationState::Pending {
            report.already_applied.push(state.clone());
            continue;
        }
        let transaction = client.transaction().await.map_err(map)?;
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(|err| error::from_pg(OP, err).with_context("migration", migration.file))?;
        let row = transaction
            .query_one(
                sql::RECORD,
                &[
                    &migration.version,
                    &migration.name,
                    &migration.checksum.as_bytes(),
                ],
            )
            .await
            .map_err(map)?;
        let at: OffsetDateTime = row.try_get(0).map_err(map)?;
        transaction.commit().await.map_err(map)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        report.applied_now.push(MigrationStatus {
            state: MigrationState::Applied { at },
            ..state.clone()
        });
    }
    client
        .execute(sql::UNLOCK, &[&sql::LOCK_KEY])
        .await
        .map_err(map)?;
    Ok(report)
}

/// One embedded migration file.
struct Migration {
    file: &'static str,
    version: i64,
    name: &'static str,
    sql: &'static str,
    checksum: Checksum,
}

/// The embedded migrations, parsed from their file names.
fn embedded() -> Result<Vec<Migration>> {
    let mut migrations = Vec::with_capacity(EMBEDDED.len());
    for (file, sql) in EMBEDDED {
        let (version, name) = parse_file_name(file)?;
        migrations.push(Migration {
            file,
            version,
            name,
            sql,
            checksum: Checksum::of(sql),
        });
    }
    Ok(migrations)
}

/// Splits `NNNN_name.sql` into its version and name.
fn parse_file_name(file: &'static str) -> Result<(i64, &'static str)> {
    let bad = || {
        Error::new(
            ErrorKind::Config,
            "migration file names must look like NNNN_name.sql",
        )
        .with_context("file", file)
    };
    let stem = file.strip_suffix(".sql").ok_or_else(bad)?;
    let (number, name) = stem.split_once('_').ok_or_else(bad)?;
    if number.len() != 4 || !number.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return Err(bad());
    }
    let version = number.parse().map_err(|_| bad())?;
    Ok((version, name))
}

struct Recorded {
    version: i64,
    name: String,
    checksum: Checksum,
    applied_at: OffsetDateTime,
}

async fn recorded(client: &Client) -> Result<Vec<Recorded>> {
    let map = |err| error::from_pg("read cairn_schema_migrations", err);
    let rows = client.query(sql::APPLIED, &[]).await.map_err(map)?;
    rows.iter()
        .map(|row| {
            Ok(Recorded {
                version: row.try_get(0).map_err(map)?,
                name: row.try_get(1).map_err(map)?,
                checksum: Checksum(row.try_get(2).map_err(map)?),
                applied_at: row.try_get(3).map_err(map)?,
            })
        })
        .collect()
}

/// Merges the embedded list with the recorded rows: one entry per embedded migration in
/// order, then the recorded versions this build does not embed.
fn status(migrations: &[Migration], recorded: &[Recorded]) -> Vec<MigrationStatus> {
    let mut out: Vec<MigrationStatus> = migrations
        .iter()
        .map(|migration| {
            let state = match recorded.iter().find(|r| r.version == migration.version) {
                None => MigrationState::Pending,
                Some(r) if r.checksum == migration.checksum => {
                    MigrationState::Applied { at: r.applied_at }
                }
                Some(r) => MigrationState::Modified {
                    at: r.applied_at,
                    recorded: r.checksum.clone(),
                },
            };
            MigrationStatus {
                version: migration.version,
                name: migration.name.to_owned(),
                checksum: migration.checksum.clone(),
                state,
            }
        })
        .collect();
    out.extend(
        recorded
            .iter()
            .filter(|r| !migrations.iter().any(|m| m.version == r.version))
            .map(|r| MigrationStatus {
                version: r.version,
                name: r.name.clone(),
                checksum: r.checksum.clone(),
                state: MigrationState::Unknown { at: r.applied_at },
            }),
    );
    out.sort_by_key(|s| s.version);
    out
}

fn modified_error(modified: &MigrationStatus) -> Error {
    let recorded = match &modified.state {
        MigrationState::Modified { recorded, .. } => recorded.to_string(),
        _ => String::new(),
    };
    let file = format!("{:04}_{}.sql", modified.version, modified.name);
    Error::corruption(format!(
        "migration {file} was applied with checksum {recorded}, but the embedded file has \
         checksum {}; applied migrations are immutable: restore the file and put the change \
         in a new migration",
        modified.checksum
    ))
    .with_context("migration", file)
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    url.parse().map_err(|err| {
        Error::new(ErrorKind::Config, "postgres url is malformed")
            .with_context("url", crate::config::redact_url(url))
            .with_source(err)
    })
}

/// A dedicated connection (not from the pool) whose driver task runs on the current runtime.
pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|err| error::from_pg("connect for migrations", err))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "migration connection ended with an error");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_matches_the_migrations_directory() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = EMBEDDED.iter().map(|(file, _)| *file).collect();
        assert_eq!(
            embedded, on_disk,
            "list every file in migrations/ once, in order"
        );
        for (file, sql) in EMBEDDED {
            assert_eq!(
                std::fs::read_to_string(format!("{dir}/{file}")).unwrap(),
                sql
            );
        }
    }

    #[test]
    fn versions_parse_and_strictly_increase() {
        let migrations = embedded().unwrap();
        assert_eq!(migrations[0].version, 1);
        assert_eq!(migrations[0].name, "kv_store");
        for pair in migrations.windows(2) {
            assert!(pair[0].version < pair[1].version, "{}", pair[1].file);
        }
    }

    #[test]
    fn bad_file_names_are_rejected() {
        for bad in [
            "1_x.sql",
            "0001.sql",
            "0001_.sql",
            "0001_x.txt",
            "00a1_x.sql",
        ] {
            assert_eq!(parse_file_name(bad).unwrap_err().kind(), ErrorKind::Config);
        }
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            Checksum::of("").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn status_flags_modified_and_unknown() {
        let migrations = embedded().unwrap();
        let at = OffsetDateTime::UNIX_EPOCH;
        let recorded = vec![
            Recorded {
                version: 1,
                name: "kv_store".into(),
                checksum: Checksum(vec![0; 32]),
                applied_at: at,
            },
            Recorded {
                version: 9999,
                name: "future".into(),
                checksum: Checksum(vec![1; 32]),
                applied_at: at,
            },
        ];
        let states = status(&migrations, &recorded);
        assert!(matches!(states[0].state, MigrationState::Modified { .. }));
        assert!(
            states[1..states.len() - 1]
                .iter()
                .all(|s| s.state == MigrationState::Pending)
        );
        assert_eq!(states.last().unwrap().state, MigrationState::Unknown { at });
        let err = modified_error(&states[0]);
        assert_eq!(err.kind(), ErrorKind::Corruption);
        let text = err.to_string();
        assert!(text.contains("0001_kv_store.sql"), "{text}");
        assert!(text.contains(&"00".repeat(32)), "{text}");
        assert!(text.contains(&migrations[0].checksum.to_string()), "{text}");
    }
}
