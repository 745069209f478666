//! [`MigratingWorkflowStore`].

use async_trait::async_trait;
use cairn_core::Result;
use serde_json::Value;

use super::{Scope, migrating_store, portable_records};
use crate::workflow::{Transition, Workflow, WorkflowStatus, WorkflowStore};

migrating_store!(
    /// A [`WorkflowStore`] moving from an old to a new implementation while in use; see the
    /// [module docs](super). Creations and transitions are mirrored as the workflow they
    /// return (its id and times as the deciding side set them). `get` falls back to the old
    /// side; `list_by_status` does not.
    MigratingWorkflowStore,
    WorkflowStore
);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl WorkflowStore for MigratingWorkflowStore {
    async fn create(
        &self,
        workflow_id: Option<&str>,
        name: &str,
        input: Value,
    ) -> Result<Workflow> {
        let scope = workflow_id.map_or(Scope::Created, Scope::Record);
        self.migration
            .write(scope, |side| async move {
                let workflow = self.on(side).create(workflow_id, name, input).await?;
                let mirror = portable_records([&workflow])?;
                Ok((workflow, mirror))
            })
            .await
    }

    async fn transition(&self, workflow_id: &str, transition: Transition) -> Result<Workflow> {
        self.migration
            .write(Scope::Record(workflow_id), |side| async move {
                let workflow = self.on(side).transition(workflow_id, transition).await?;
                let mirror = portable_records([&workflow])?;
                Ok((workflow, mirror))
            })
            .await
    }

    async fn get(&self, workflow_id: &str) -> Result<Option<Workflow>> {
        self.migration
            .read_one(|side| self.on(side).get(workflow_id))
            .await
    }

    async fn list_by_status(
        &self,
        status: WorkflowStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Workflow>> {
        self.on(self.migration.reader())
            .list_by_status(status, after, limit)
            .await
    }
}
