//! Statistics and integrity checks over the selected components.

use cairn_core::{Error, Result, TenantId};
use cairn_stores::agent_state::{SnapshotInfo, verify_snapshot};
use cairn_stores::portable::{decode_portable, fingerprint};
use futures::StreamExt;

use super::{DEFAULT_PAGE, Progress, Selection, page_for};
use crate::component::{BackendChoice, Component};
use crate::{Storage, TenantStorage};

/// How much one tenant's component holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionStats {
    /// The tenant.
    pub tenant: TenantId,
    /// The component.
    pub component: Component,
    /// The backend the component is on.
    pub backend: BackendChoice,
    /// Records, as exported (every version, every expired session...).
    pub records: u64,
    /// Bytes of those records in their portable form.
    pub bytes: u64,
}

/// Counts the records and bytes of every selected tenant's components, reading each once.
///
/// # Errors
/// The stores' export errors.
pub async fn stats(
    storage: &Storage,
    selection: &Selection,
    progress: &dyn Progress,
) -> Result<Vec<SectionStats>> {
    let mut sections = Vec::new();
    for tenant in selection.tenants_in(storage).await? {
        let view = storage.tenant(&tenant);
        for &component in &selection.components {
            progress.start(&tenant, component, None);
            let store = view.portable(component);
            let print = fingerprint(store.as_ref(), page_for(component, DEFAULT_PAGE)).await?;
            progress.advance(print.records, print.bytes);
            progress.finish(print.records);
            sections.push(SectionStats {
                tenant: tenant.clone(),
                component,
                backend: storage.backend_choice(component),
                records: print.records,
                bytes: print.bytes,
            });
        }
    }
    Ok(sections)
}

/// A record that failed its integrity check.
#[derive(Debug)]
pub struct CorruptRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The component.
    pub component: Component,
    /// The record: an artifact's hash, or `agent@version` for a snapshot.
    pub id: String,
    /// What the check found.
    pub error: Error,
}

/// What [`verify`] checked and found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Artifacts whose content was read and hashed.
    pub artifacts: u64,
    /// Agent-state snapshots whose payload was checked against its SHA-256.
    pub snapshots: u64,
    /// The records that failed.
    pub corrupt: Vec<CorruptRecord>,
}

/// Re-checks the selected tenants' artifacts (every byte read and hashed with BLAKE3 against
/// its address) and agent-state snapshots (payload size and SHA-256 against the recorded
/// checksum). A corrupt record is reported and the check goes on; other components hold no
/// checksums and are skipped.
///
/// # Errors
/// Errors that stop the walk itself (a listing or export page that fails).
pub async fn verify(
    storage: &Storage,
    selection: &Selection,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for tenant in selection.tenants_in(storage).await? {
        let view = storage.tenant(&tenant);
        if selection.components.contains(&Component::Artifacts) {
            progress.start(&tenant, Component::Artifacts, None);
            let checked = verify_artifacts(&view, &mut report, progress).await?;
            progress.finish(checked);
        }
        if selection.components.contains(&Component::AgentState) {
            progress.start(&tenant, Component::AgentState, None);
            let checked = verify_snapshots(&view, &mut report, progress).await?;
            progress.finish(checked);
        }
    }
    Ok(report)
}

/// Reads every artifact of the tenant through the store, which hashes the content as it
/// streams and ends the stream with `Corruption` on a mismatch.
async fn verify_artifacts(
    view: &TenantStorage,
    report: &mut VerifyReport,
    progress: &dyn Progress,
) -> Result<u64> {
    let store = view.artifacts();
    let mut after: Option<String> = None;
    let mut checked = 0;
    loop {
        let page = store.list(after.as_deref(), DEFAULT_PAGE).await?;
        for info in &page.items {
            let mut bytes = 0;
            let outcome = match store.open(&info.hash).await {
                Ok(Some(mut reader)) => loop {
                    match reader.chunks.next().await {
                        Some(Ok(chunk)) => bytes += chunk.len() as u64,
                        Some(Err(err)) => break Err(err),
                        None => break Ok(()),
                    }
                },
                // Released since it was listed.
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            };
            if let Err(error) = outcome {
                report.corrupt.push(CorruptRecord {
                    tenant: view.tenant_id().clone(),
                    component: Component::Artifacts,
                    id: info.hash.clone(),
                    error,
                });
            }
            checked += 1;
            report.artifacts += 1;
            progress.advance(1, bytes);
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(checked),
        }
    }
}

/// Checks every snapshot of the tenant, read in its portable form (the metadata with the
/// stored payload), as a load would.
async fn verify_snapshots(
    view: &TenantStorage,
    report: &mut VerifyReport,
    progress: &dyn Progress,
) -> Result<u64> {
    let store = view.portable(Component::AgentState);
    let mut after: Option<Vec<u8>> = None;
    let mut checked = 0;
    loop {
        let page = store.export_page(after.as_deref(), DEFAULT_PAGE).await?;
        for record in &page.records {
            let (info, payload): (SnapshotInfo, &[u8]) = decode_portable(record)?;
            let id = format!("{}@{}", info.agent_id, info.version);
            if let Err(error) = verify_snapshot(info, Some(payload)) {
                report.corrupt.push(CorruptRecord {
                    tenant: view.tenant_id().clone(),
                    component: Component::AgentState,
                    id,
                    error,
                });
            }
            checked += 1;
            report.snapshots += 1;
            progress.advance(1, record.len() as u64);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(checked),
        }
    }
}
