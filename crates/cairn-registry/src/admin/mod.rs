//! Operations over a whole [`Storage`], for the `cairn` administration
//! commands: export to and import from a dump file ([`export`], [`import`]), copy between two
//! storages with a resumable checkpoint and a verification ([`copy`]), statistics
//! ([`stats`]), integrity checks ([`verify`]) and retention ([`purge`]).
//!
//! Every operation works on a [`Selection`] of tenants and components, moves records through
//! the component stores' [`PortableStore`](cairn_stores::portable::PortableStore) form (so a
//! record lands in the target's own layout: a key-value encoded graph becomes native
//! PostgreSQL rows) and reports its advance to a [`Progress`].

mod copy;
mod dump;
mod inspect;
mod purge;

pub use copy::{Checkpoint, CopyOptions, CopyReport, SectionCheck, copy};
pub use dump::{SectionCount, export, import, verify_dump};
pub use inspect::{CorruptRecord, SectionStats, VerifyReport, stats, verify};
pub use purge::{PurgeOptions, PurgeReport, purge};

use cairn_core::{Result, TenantId};

use crate::Storage;
use crate::component::Component;

/// Records per page when moving a component, unless the caller asks otherwise.
pub const DEFAULT_PAGE: usize = 1_000;

/// Records per page for artifacts: a portable artifact record holds the whole content, so a
/// page's memory is this many times the largest artifact.
pub const ARTIFACT_PAGE: usize = 8;

/// The page size used for `component` when the caller asks for `page`.
pub(crate) fn page_for(component: Component, page: usize) -> usize {
    match component {
        Component::Artifacts => page.min(ARTIFACT_PAGE),
        _ => page,
    }
}

/// Which tenants and components an operation covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The tenants; `None` for every tenant holding data ([`Storage::tenants`]).
    pub tenants: Option<Vec<TenantId>>,
    /// The components, in this order.
    pub components: Vec<Component>,
}

impl Selection {
    /// Every tenant and every component.
    pub fn all() -> Selection {
        Selection {
            tenants: None,
            components: Component::ALL.to_vec(),
        }
    }

    /// The tenants this selection covers in `storage`.
    ///
    /// # Errors
    /// As [`Storage::tenants`].
    pub async fn tenants_in(&self, storage: &Storage) -> Result<Vec<TenantId>> {
        match &self.tenants {
            Some(tenants) => Ok(tenants.clone()),
            None => storage.tenants().await,
        }
    }

    /// Whether the selection covers `tenant`'s `component`.
    pub fn covers(&self, tenant: &TenantId, component: Component) -> bool {
        self.components.contains(&component)
            && self.tenants.as_ref().is_none_or(|t| t.contains(tenant))
    }
}

/// Receives the advance of a long operation, one section (a tenant's component) at a time.
pub trait Progress: Send + Sync {
    /// Whether record totals are worth an extra read where they are not known otherwise
    /// (an export counts each section first when this is `true`, for an ETA).
    fn wants_totals(&self) -> bool {
        false
    }
    /// A section starts; `total` is its record count when known.
    fn start(&self, tenant: &TenantId, component: Component, total: Option<u64>);
    /// `records` more records (of `bytes` bytes) of the current section are done.
    fn advance(&self, records: u64, bytes: u64);
    /// The current section is done, with `records` records in all.
    fn finish(&self, records: u64);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &TenantId, _: Component, _: Option<u64>) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self, _: u64) {}
}
