//! `cairn stats` and `cairn verify`.

use std::process::ExitCode;

use cairn::admin;
use cairn::{Component, Result, Storage, StorageConfig, TenantId};
use clap::Args;

use crate::progress::Reporter;
use crate::selection::SelectArgs;

/// Options of `cairn stats` and `cairn verify`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    select: SelectArgs,
}

/// `cairn stats`: records and bytes per component and tenant, and each component's backend
/// with its characteristics.
pub(crate) async fn stats(config: &StorageConfig, args: &InspectArgs) -> Result<ExitCode> {
    let storage = Storage::open(config).await?;
    let selection = args.select.selection()?;
    println!(
        "{:<18} {:<9} {:<10} {:<7} {:<7} {:<7} {:<9}",
        "component", "backend", "persistent", "durable", "atomic", "ordered", "rls"
    );
    let view = storage.tenant(&TenantId::default_tenant());
    for &component in &selection.components {
        let c = view.backend(component).characteristics();
        let yes = |b: bool| if b { "yes" } else { "no" };
        println!(
            "{:<18} {:<9} {:<10} {:<7} {:<7} {:<7} {:<9}",
            component.name(),
            storage.backend_choice(component).name(),
            yes(c.persistent),
            yes(c.durable_on_ack),
            yes(c.atomic_batches),
            yes(c.ordered_scans),
            yes(c.engine_enforced_tenancy)
        );
    }
    println!();
    let sections = admin::stats(&storage, &selection, &Reporter::new()).await?;
    println!(
        "{:<24} {:<20} {:>12} {:>14}",
        "tenant", "component", "records", "bytes"
    );
    for section in &sections {
        println!(
            "{:<24} {:<20} {:>12} {:>14}",
            section.tenant.as_str(),
            section.component.name(),
            section.records,
            section.bytes
        );
    }
    let total: u64 = sections.iter().map(|s| s.records).sum();
    let bytes: u64 = sections.iter().map(|s| s.bytes).sum();
    println!("{:<45} {total:>12} {bytes:>14}", "total");
    Ok(ExitCode::SUCCESS)
}

/// `cairn verify`: re-checks artifact hashes and agent-state checksums; lists every corrupt
/// record and exits with 2 when there is one.
pub(crate) async fn verify(config: &StorageConfig, args: &InspectArgs) -> Result<ExitCode> {
    let storage = Storage::open(config).await?;
    let report = admin::verify(&storage, &args.select.selection()?, &Reporter::new()).await?;
    for corrupt in &report.corrupt {
        println!(
            "CORRUPT {} {} {}: {}",
            corrupt.tenant.as_str(),
            corrupt.component.name(),
            corrupt.id,
            corrupt.error
        );
    }
    println!(
        "checked {} artifacts ({}) and {} agent-state snapshots ({}): {} corrupt",
        report.artifacts,
        Component::Artifacts.name(),
        report.snapshots,
        Component::AgentState.name(),
        report.corrupt.len()
    );
    Ok(if report.corrupt.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
