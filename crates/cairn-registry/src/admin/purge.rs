//! Retention over the selected tenants: expired sessions, old events, old hook executions.

use cairn_core::{Error, Result, TenantId};
use time::{Duration, OffsetDateTime};

use super::Selection;
use crate::Storage;
use crate::component::Component;

/// What [`purge`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Remove every expired session.
    pub expired_sessions: bool,
    /// Remove events older than this.
    pub events_older_than: Option<Duration>,
    /// Remove hook executions older than this.
    pub hooks_older_than: Option<Duration>,
}

/// What [`purge`] removed from one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// The tenant.
    pub tenant: TenantId,
    /// Expired sessions removed.
    pub sessions: u64,
    /// Events removed.
    pub events: u64,
    /// Hook executions removed.
    pub hooks: u64,
}

/// Applies retention to every selected tenant (only to the selected components among
/// sessions, event log and hook history). Ages count back from now.
///
/// # Errors
/// `InvalidInput` for a negative age; the stores' errors.
pub async fn purge(
    storage: &Storage,
    selection: &Selection,
    options: &PurgeOptions,
) -> Result<Vec<PurgeReport>> {
    let now = OffsetDateTime::now_utc();
    let cutoff = |age: Option<Duration>| -> Result<Option<OffsetDateTime>> {
        match age {
            Some(age) if age.is_negative() => Err(Error::invalid_input(format!(
                "a retention age must not be negative, got {age}"
            ))),
            Some(age) => now.checked_sub(age).map(Some).ok_or_else(|| {
                Error::invalid_input(format!("retention age {age} reaches before year 0"))
            }),
            None => Ok(None),
        }
    };
    let events_before = cutoff(options.events_older_than)?;
    let hooks_before = cutoff(options.hooks_older_than)?;
    let selected = |c| selection.components.contains(&c);
    let mut reports = Vec::new();
    for tenant in selection.tenants_in(storage).await? {
        let view = storage.tenant(&tenant);
        let mut report = PurgeReport {
            tenant: tenant.clone(),
            sessions: 0,
            events: 0,
            hooks: 0,
        };
        if options.expired_sessions && selected(Component::Sessions) {
            report.sessions = view.sessions().purge_expired().await?;
        }
        if let Some(before) = events_before.filter(|_| selected(Component::EventLog)) {
            report.events = view.events().drop_before(before).await?;
        }
        if let Some(before) = hooks_before.filter(|_| selected(Component::HookHistory)) {
            report.hooks = view.hooks().drop_before(before).await?;
        }
        reports.push(report);
    }
    Ok(reports)
}
