//! Copying every selected component from one storage to another, resumable from a checkpoint
//! file, verified by fingerprints of both sides.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_core::{Error, ErrorKind, Result, TenantId};
use cairn_stores::portable::{CopyStep, Fingerprint, OnPage, copy as copy_store, fingerprint};
use serde::{Deserialize, Serialize};

use super::{DEFAULT_PAGE, Progress, Selection, page_for};
use crate::Storage;
use crate::component::Component;

/// How [`copy`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Records per page (fewer for artifacts, see [`super::ARTIFACT_PAGE`]).
    pub page: usize,
    /// Where the checkpoint is kept; `None` copies without one (an interrupted copy starts
    /// over, which is safe: imports replace records of the same identity).
    pub checkpoint: Option<PathBuf>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            page: DEFAULT_PAGE,
            checkpoint: None,
        }
    }
}

/// How far one tenant's component has been copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SectionMark {
    tenant: String,
    component: String,
    /// The source's export cursor after the last copied page.
    cursor: Option<Vec<u8>>,
    /// Records copied so far.
    copied: u64,
    /// Every record was copied.
    done: bool,
}

/// The progress of a copy, saved after every page so an interrupted copy resumes where it
/// stopped. The cursors belong to the source: resume only with the same source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    sections: Vec<SectionMark>,
}

impl Checkpoint {
    /// Reads the checkpoint at `path`; an empty one when no file is there.
    ///
    /// # Errors
    /// `Backend` when the file cannot be read; `Corruption` when it is not a checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Checkpoint::default());
            }
            Err(err) => return Err(io_error("reading the copy checkpoint", path, err)),
        };
        serde_json::from_slice(&bytes).map_err(|err| {
            Error::corruption("the copy checkpoint does not decode")
                .with_context("path", path.display())
                .with_source(err)
        })
    }

    /// Writes the checkpoint to `path` atomically (a synced temporary file renamed over it).
    ///
    /// # Errors
    /// `Backend` when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|err| {
            Error::new(ErrorKind::Backend, "the copy checkpoint does not serialise")
                .with_source(err)
        })?;
        let temporary = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        };
        write().map_err(|err| io_error("writing the copy checkpoint", path, err))
    }

    /// The mark of `tenant`'s `component`, added when missing.
    fn mark(&mut self, tenant: &TenantId, component: Component) -> &mut SectionMark {
        let at = self
            .sections
            .iter()
            .position(|m| m.tenant == tenant.as_str() && m.component == component.name());
        let at = at.unwrap_or_else(|| {
            self.sections.push(SectionMark {
                tenant: tenant.as_str().to_owned(),
                component: component.name().to_owned(),
                cursor: None,
                copied: 0,
                done: false,
            });
            self.sections.len() - 1
        });
        &mut self.sections[at]
    }
}

fn io_error(what: &str, path: &Path, err: std::io::Error) -> Error {
    Error::new(ErrorKind::Backend, format!("{what} failed"))
        .with_context("path", path.display())
        .with_source(err)
}

/// One tenant's component after a copy: what each side holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionCheck {
    /// The tenant.
    pub tenant: TenantId,
    /// The component.
    pub component: Component,
    /// Records copied by this run (0 when an earlier run had finished the section).
    pub copied: u64,
    /// The source's records.
    pub source: Fingerprint,
    /// The target's records.
    pub target: Fingerprint,
}

impl SectionCheck {
    /// Both sides hold the same records.
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Every selected section, verified.
    pub sections: Vec<SectionCheck>,
    /// Records copied by this run.
    pub records: u64,
    /// Bytes of the records copied by this run.
    pub bytes: u64,
    /// Time spent copying (verification excluded).
    pub copying: Duration,
}

impl CopyReport {
    /// Every section matches on both sides.
    pub fn verified(&self) -> bool {
        self.sections.iter().all(SectionCheck::matches)
    }
}

/// Copies the selected tenants' components of `from` into `to`, a page at a time, then
/// compares both sides' fingerprints per section.
///
/// With a checkpoint file, the position reached is saved after every page, once the target
/// has made the page durable ([`Storage::flush`]), and a later call
/// with the same file resumes each section there (sections already done are only verified).
/// When every section verifies, the file is removed; sections that do not are marked to be
/// copied again by the next call. Copy from a source without writers (or through a
/// `MigratingBackend` backfill) for the two sides to match.
///
/// # Errors
/// The stores' export and import errors, and the checkpoint file's; the pages copied before
/// the failure stay copied and checkpointed.
pub async fn copy(
    from: &Storage,
    to: &Storage,
    selection: &Selection,
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let mut checkpoint = match &options.checkpoint {
        Some(path) => Checkpoint::load(path)?,
        None => Checkpoint::default(),
    };
    let tenants = selection.tenants_in(from).await?;
    let mut report = CopyReport {
        sections: Vec::new(),
        records: 0,
        bytes: 0,
        copying: Duration::ZERO,
    };
    for tenant in &tenants {
        let (source_view, target_view) = (from.tenant(tenant), to.tenant(tenant));
        for &component in &selection.components {
            let page = page_for(component, options.page);
            let (source, target) = (
                source_view.portable(component),
                target_view.portable(component),
            );
            let source_print = fingerprint(source.as_ref(), page).await?;
            let mark = checkpoint.mark(tenant, component).clone();
            let started = Instant::now();
            let mut copied = 0;
            if !mark.done {
                progress.start(
                    tenant,
                    component,
                    Some(source_print.records.saturating_sub(mark.copied)),
                );
                let cursor = mark.cursor.clone();
                let saver = Saver {
                    tenant,
                    component,
                    checkpoint: &mut checkpoint,
                    mark,
                    path: options.checkpoint.as_deref(),
                    target: to,
                    progress,
                    bytes: &mut report.bytes,
                };
                copied = copy_store(source.as_ref(), target.as_ref(), cursor, page, saver).await?;
                progress.finish(copied);
            }
            report.copying += started.elapsed();
            report.records += copied;
            let target_print = fingerprint(target.as_ref(), page).await?;
            report.sections.push(SectionCheck {
                tenant: tenant.clone(),
                component,
                copied,
                source: source_print,
                target: target_print,
            });
        }
    }
    finish_checkpoint(&mut checkpoint, &report, options.checkpoint.as_deref())?;
    Ok(report)
}

/// Records each copied page: in the progress, and in the checkpoint file once the target
/// has made the page durable (a checkpoint never runs ahead of the data).
struct Saver<'a> {
    tenant: &'a TenantId,
    component: Component,
    checkpoint: &'a mut Checkpoint,
    mark: SectionMark,
    path: Option<&'a Path>,
    target: &'a Storage,
    progress: &'a dyn Progress,
    bytes: &'a mut u64,
}

#[async_trait]
impl OnPage for Saver<'_> {
    async fn page_copied(&mut self, step: CopyStep) -> Result<()> {
        self.mark.copied += step.records;
        self.mark.done = step.next.is_none();
        self.mark.cursor = step.next;
        *self.bytes += step.bytes;
        self.progress.advance(step.records, step.bytes);
        let Some(path) = self.path else {
            return Ok(());
        };
        self.target.flush().await?;
        *self.checkpoint.mark(self.tenant, self.component) = self.mark.clone();
        self.checkpoint.save(path)
    }
}

/// Removes the checkpoint file after a verified copy; otherwise marks the sections that do
/// not match to be copied again from the start.
fn finish_checkpoint(
    checkpoint: &mut Checkpoint,
    report: &CopyReport,
    path: Option<&Path>,
) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    if report.verified() {
        return match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("removing the copy checkpoint", path, err))
            }
            _ => Ok(()),
        };
    }
    for section in report.sections.iter().filter(|s| !s.matches()) {
        *checkpoint.mark(&section.tenant, section.component) = SectionMark {
            tenant: section.tenant.as_str().to_owned(),
            component: section.component.name().to_owned(),
            cursor: None,
            copied: 0,
            done: false,
        };
    }
    checkpoint.save(path)
}
