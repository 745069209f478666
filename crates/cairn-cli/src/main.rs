//! `cairn`: runs a realistic agent session through every component store on the configured
//! backends (`demo`). Configuration comes from the embedded default (sled under
//! `./cairn-data`), a `--config` file or `CAIRN_CONFIG`, and `CAIRN_STORAGE__...` variables.

mod demo;
mod steps;

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
        let config = cairn::load_config(cli.config.as_deref())?;
        match cli.command {
            Command::Demo(args) => demo::run(&config, &args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
