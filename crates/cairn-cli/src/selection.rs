//! The `--tenant` and `--component` options shared by the data commands.

use std::str::FromStr;

use cairn::admin::Selection;
use cairn::{Component, Result, TenantId};
use clap::Args;

/// Which tenants and components a command covers.
#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// A tenant to cover (repeatable); every tenant holding data when absent.
    #[arg(long = "tenant", value_name = "TENANT")]
    tenants: Vec<String>,

    /// A component to cover, e.g. `event_log` (repeatable); all ten when absent.
    #[arg(long = "component", value_name = "COMPONENT")]
    components: Vec<String>,
}

impl SelectArgs {
    /// The selection these options name.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid tenant id or an unknown component.
    pub(crate) fn selection(&self) -> Result<Selection> {
        let mut selection = Selection::all();
        if !self.tenants.is_empty() {
            selection.tenants = Some(
                self.tenants
                    .iter()
                    .map(|t| TenantId::new(t.as_str()))
                    .collect::<Result<_>>()?,
            );
        }
        if !self.components.is_empty() {
            selection.components = self
                .components
                .iter()
                .map(|c| Component::from_str(c))
                .collect::<Result<_>>()?;
        }
        Ok(selection)
    }
}
