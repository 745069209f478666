//! `cairn`: runs a realistic agent session through every component store on the configured
//! backends (`demo`), and administers the data: `export`/`import` (dump files), `copy`
//! (between two configurations, resumable and verified), `stats`, `verify` and `purge`.
//! Configuration comes from the embedded default (sled under `./cairn-data`), a `--config`
//! file or `CAIRN_CONFIG`, and `CAIRN_STORAGE__...` variables.
//!
//! Exit codes: 0 success, 1 an error, 2 a verification that found differences or corrupt
//! records.

mod demo;
mod inspect;
mod progress;
mod purge;
mod selection;
mod steps;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Cairn: the storage layer for LLM-agent runtimes.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// Configuration file (TOML); defaults to $CAIRN_CONFIG, else the built-in embedded
    /// default (sled under ./cairn-data). CAIRN_STORAGE__... variables override both.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent session through all ten component stores and time each step.
    Demo(demo::DemoArgs),
    /// Write tenants' components to a dump file.
    Export(transfer::ExportArgs),
    /// Verify a dump file, then import it (again: importing twice changes nothing).
    Import(transfer::ImportArgs),
    /// Copy every component from one configuration's backends to another's, resumable,
    /// then compare counts and digests of both sides.
    Copy(transfer::CopyArgs),
    /// Records and bytes per component and tenant, and each component's backend.
    Stats(inspect::InspectArgs),
    /// Re-check artifact hashes and agent-state checksums.
    Verify(inspect::InspectArgs),
    /// Remove expired sessions, old events and old hook executions.
    Purge(purge::PurgeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if let Command::Copy(args) = &cli.command {
            return transfer::copy(args).await;
        }
        let config = cairn::load_config(cli.config.as_deref())?;
        match &cli.command {
            Command::Demo(args) => demo::run(&config, args).await.map(|()| ExitCode::SUCCESS),
            Command::Export(args) => transfer::export(&config, args).await,
            Command::Import(args) => transfer::import(&config, args).await,
            Command::Stats(args) => inspect::stats(&config, args).await,
            Command::Verify(args) => inspect::verify(&config, args).await,
            Command::Purge(args) => purge::purge(&config, args).await,
            Command::Copy(args) => transfer::copy(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
