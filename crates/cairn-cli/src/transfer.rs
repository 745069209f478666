//! `cairn export`, `cairn import` and `cairn copy`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cairn::admin::{self, CopyOptions, CopyReport, SectionCount};
use cairn::stores::dump::Compression;
use cairn::{Error, ErrorKind, Result, Storage, StorageConfig};
use clap::Args;

use crate::progress::{Reporter, rate};
use crate::selection::SelectArgs;

/// Options of `cairn export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The dump file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Compress the dump with zstd.
    #[arg(long)]
    zstd: bool,

    /// Records read per page.
    #[arg(long, default_value_t = admin::DEFAULT_PAGE)]
    page: usize,

    #[command(flatten)]
    select: SelectArgs,
}

/// Options of `cairn import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The dump file to read.
    file: PathBuf,

    /// Records written per import call.
    #[arg(long, default_value_t = admin::DEFAULT_PAGE)]
    page: usize,

    #[command(flatten)]
    select: SelectArgs,
}

/// Options of `cairn copy`.
#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// Configuration file of the source.
    #[arg(long, value_name = "CONFIG")]
    from: PathBuf,

    /// Configuration file of the target.
    #[arg(long, value_name = "CONFIG")]
    to: PathBuf,

    /// Checkpoint file: the copy saves its position there after every page and resumes
    /// from it when run again; removed once the copy verifies.
    #[arg(long, value_name = "FILE", default_value = "cairn-copy.checkpoint")]
    checkpoint: PathBuf,

    /// Records per page.
    #[arg(long, default_value_t = admin::DEFAULT_PAGE)]
    page: usize,

    #[command(flatten)]
    select: SelectArgs,
}

fn file_error(what: &str, path: &Path, err: std::io::Error) -> Error {
    Error::new(ErrorKind::Backend, format!("{what} failed"))
        .with_context("path", path.display())
        .with_source(err)
}

/// Prints the record counts of every section.
fn print_counts(counts: &[SectionCount]) {
    println!(
        "{:<24} {:<20} {:>12} {:>14}",
        "tenant", "component", "records", "bytes"
    );
    for count in counts {
        println!(
            "{:<24} {:<20} {:>12} {:>14}",
            count.tenant.as_str(),
            count.component.name(),
            count.records,
            count.bytes
        );
    }
}

/// Prints a summary line of `records` and `bytes` moved in `started`'s elapsed time.
fn print_rate(verb: &str, records: u64, bytes: u64, elapsed: std::time::Duration) {
    println!(
        "{verb} {records} records ({:.2} MB) in {:.2} s: {:.0} records/s, {:.2} MB/s",
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        rate(records as f64, elapsed),
        rate(bytes as f64 / 1e6, elapsed)
    );
}

/// `cairn export`: writes the selection to a dump file (removed again if the export fails).
pub(crate) async fn export(config: &StorageConfig, args: &ExportArgs) -> Result<ExitCode> {
    let storage = Storage::open(config).await?;
    let selection = args.select.selection()?;
    let file =
        File::create(&args.out).map_err(|e| file_error("creating the dump", &args.out, e))?;
    let compression = if args.zstd {
        Compression::Zstd
    } else {
        Compression::None
    };
    let started = Instant::now();
    let exported = admin::export(
        &storage,
        &selection,
        BufWriter::new(file),
        compression,
        args.page,
        &Reporter::new(),
    )
    .await;
    let finished = exported.and_then(|(out, counts)| {
        let file = out
            .into_inner()
            .map_err(|e| file_error("writing the dump", &args.out, e.into_error()))?;
        file.sync_all()
            .map_err(|e| file_error("syncing the dump", &args.out, e))?;
        Ok(counts)
    });
    let counts = match finished {
        Ok(counts) => counts,
        Err(err) => {
            // An incomplete dump is rejected by every reader; do not leave it around.
            let _ = std::fs::remove_file(&args.out);
            return Err(err);
        }
    };
    print_counts(&counts);
    let records = counts.iter().map(|c| c.records).sum();
    let bytes = counts.iter().map(|c| c.bytes).sum();
    print_rate("exported", records, bytes, started.elapsed());
    println!("dump written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `cairn import`: verifies the whole dump, then imports the selection from it.
pub(crate) async fn import(config: &StorageConfig, args: &ImportArgs) -> Result<ExitCode> {
    let storage = Storage::open(config).await?;
    let selection = args.select.selection()?;
    let path = args.file.clone();
    let open = move || File::open(&path).map_err(|e| file_error("opening the dump", &path, e));
    let started = Instant::now();
    let counts = admin::import(&storage, open, &selection, args.page, &Reporter::new()).await?;
    print_counts(&counts);
    let records = counts.iter().map(|c| c.records).sum();
    let bytes = counts.iter().map(|c| c.bytes).sum();
    print_rate("imported", records, bytes, started.elapsed());
    Ok(ExitCode::SUCCESS)
}

/// Prints the verification table of a copy: counts and digests of both sides per section.
fn print_verification(report: &CopyReport) {
    println!(
        "{:<20} {:<18} {:>9} {:>10} {:>10} {:<16} {:<16} result",
        "tenant", "component", "copied", "source", "target", "source digest", "target digest"
    );
    for section in &report.sections {
        let (source, target) = (section.source.hex(), section.target.hex());
        println!(
            "{:<20} {:<18} {:>9} {:>10} {:>10} {:<16} {:<16} {}",
            section.tenant.as_str(),
            section.component.name(),
            section.copied,
            section.source.records,
            section.target.records,
            &source[..16],
            &target[..16],
            if section.matches() { "ok" } else { "MISMATCH" }
        );
    }
}

/// `cairn copy`: copies the selection from one configuration's backends to another's,
/// resumable, and verifies both sides. Exits with 2 when the verification fails.
pub(crate) async fn copy(args: &CopyArgs) -> Result<ExitCode> {
    let from = Storage::open(&cairn::load_config(Some(&args.from))?).await?;
    let to = Storage::open(&cairn::load_config(Some(&args.to))?).await?;
    let options = CopyOptions {
        page: args.page,
        checkpoint: Some(args.checkpoint.clone()),
    };
    let report = admin::copy(
        &from,
        &to,
        &args.select.selection()?,
        &options,
        &Reporter::new(),
    )
    .await?;
    print_verification(&report);
    print_rate("copied", report.records, report.bytes, report.copying);
    if report.verified() {
        println!("verification: every section matches");
        Ok(ExitCode::SUCCESS)
    } else {
        let failed = report.sections.iter().filter(|s| !s.matches()).count();
        println!(
            "verification FAILED: {failed} sections differ; run the copy again to recopy them \
             (stop writers on the source first)"
        );
        Ok(ExitCode::from(2))
    }
}
