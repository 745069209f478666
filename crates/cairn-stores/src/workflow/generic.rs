//! [`WorkflowStore`] over any [`StorageBackend`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, Key, Result, StorageBackend, WriteBatch, check_scan_limit,
};
use serde_json::Value;
use uuid::Uuid;

use super::keys::WorkflowKey;
use super::{Transition, Workflow, WorkflowStatus, WorkflowStore, check_workflow};
use crate::codec::{decode_record, encode_record};
use crate::kvops::{RangeScan, check_id, commit, now, retry};
use crate::portable::{ExportPage, PortableStore, decode_portable, export_records};

/// The workflow store implemented once over the key-value contract (layout in
/// [`keys`](super::keys)).
#[derive(Debug, Clone)]
pub struct GenericWorkflowStore {
    backend: Arc<dyn StorageBackend>,
}

impl GenericWorkflowStore {
    /// A store on `backend`'s tenant.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        GenericWorkflowStore { backend }
    }

    async fn try_transition(&self, id: &str, transition: &Transition) -> Result<Option<Workflow>> {
        let key = WorkflowKey::Record { id }.key()?;
        let current = self.backend.get(&key).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "workflow not found").with_context("workflow", id)
        })?;
        let before: Workflow = decode_record(&current)?;
        let after = apply(&before, transition)?;
        let batch = WriteBatch::new()
            .check(key.clone(), Some(current))
            .put(key, encode_record(&after)?)
            .delete(
                WorkflowKey::ByStatus {
                    status: before.status,
                    id,
                }
                .key()?,
            )
            .put(
                WorkflowKey::ByStatus {
                    status: after.status,
                    id,
                }
                .key()?,
                Bytes::new(),
            );
        Ok(commit(&*self.backend, batch).await?.then_some(after))
    }

    /// Reads the workflows named by index keys, keeping those still in `status` (a record
    /// may have moved on since its index entry was read).
    async fn still_in(
        &self,
        status: WorkflowStatus,
        index: &[(Key, Bytes)],
    ) -> Result<Vec<Workflow>> {
        let ids = index
            .iter()
            .map(|(k, _)| WorkflowKey::id_of(k))
            .collect::<Result<Vec<_>>>()?;
        let keys = ids
            .iter()
            .map(|id| WorkflowKey::Record { id }.key())
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for value in self.backend.get_batch(&keys).await?.iter().flatten() {
            let workflow: Workflow = decode_record(value)?;
            if workflow.status == status {
                out.push(workflow);
            }
        }
        Ok(out)
    }
}

/// The workflow after `transition`, or `InvalidInput` when the move is illegal.
fn apply(workflow: &Workflow, transition: &Transition) -> Result<Workflow> {
    let to = transition.target();
    workflow.status.check_move(to, &workflow.id)?;
    let at = now();
    let mut next = workflow.clone();
    next.status = to;
    match transition {
        Transition::Start => next.started_at = Some(at),
        Transition::Complete { output } => next.output = Some(output.clone()),
        Transition::Fail { error } => next.error = Some(error.clone()),
        Transition::Cancel => {}
    }
    if to.is_terminal() {
        next.finished_at = Some(at);
    }
    Ok(next)
}

#[async_trait]
impl WorkflowStore for GenericWorkflowStore {
    async fn create(
        &self,
        workflow_id: Option<&str>,
        name: &str,
        input: Value,
    ) -> Result<Workflow> {
        if let Some(id) = workflow_id {
            check_id("workflow id", id)?;
        }
        check_id("workflow name", name)?;
        let workflow = Workflow {
            id: workflow_id.map_or_else(|| Uuid::now_v7().to_string(), str::to_owned),
            name: name.to_owned(),
            status: WorkflowStatus::Pending,
            created_at: now(),
            started_at: None,
            finished_at: None,
            error: None,
            input,
            output: None,
        };
        let id = workflow.id.as_str();
        let key = WorkflowKey::Record { id }.key()?;
        let status = WorkflowStatus::Pending;
        let batch = WriteBatch::new()
            .check(key.clone(), None)
            .put(key, encode_record(&workflow)?)
            .put(WorkflowKey::ByStatus { status, id }.key()?, Bytes::new());
        if commit(&*self.backend, batch).await? {
            Ok(workflow)
        } else {
            Err(Error::conflict("a workflow with this id exists").with_context("workflow", id))
        }
    }

    async fn transition(&self, workflow_id: &str, transition: Transition) -> Result<Workflow> {
        check_id("workflow id", workflow_id)?;
        retry("workflow transition", || {
            self.try_transition(workflow_id, &transition)
        })
        .await
    }

    async fn get(&self, workflow_id: &str) -> Result<Option<Workflow>> {
        check_id("workflow id", workflow_id)?;
        let key = WorkflowKey::Record { id: workflow_id }.key()?;
        self.backend
            .get(&key)
            .await?
            .map(|v| decode_record(&v))
            .transpose()
    }

    async fn list_by_status(
        &self,
        status: WorkflowStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Workflow>> {
        if let Some(id) = after {
            check_id("workflow id", id)?;
        }
        check_scan_limit(limit)?;
        let after = after
            .map(|id| WorkflowKey::ByStatus { status, id }.key())
            .transpose()?;
        let mut scan = RangeScan::new(WorkflowKey::status_prefix(status)).after(after);
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit {
            let page = scan.next_page(&*self.backend, limit - out.len()).await?;
            if page.is_empty() {
                break;
            }
            out.extend(self.still_in(status, &page).await?);
        }
        Ok(out)
    }
}

/// The portable record of a workflow is the [`Workflow`] itself, in record-key order. An
/// import replaces the workflow of the same id, moving its status index entry when its status
/// changed.
#[async_trait]
impl PortableStore for GenericWorkflowStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let prefix = WorkflowKey::records_prefix();
        export_records::<Workflow>(&*self.backend, &prefix, after, limit).await
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut workflows = BTreeMap::new();
        for record in records {
            let (workflow, _): (Workflow, _) = decode_portable(record)?;
            check_workflow(&workflow)?;
            workflows.insert(WorkflowKey::Record { id: &workflow.id }.key()?, workflow);
        }
        if workflows.is_empty() {
            return Ok(());
        }
        let keys = workflows.keys().cloned().collect::<Vec<_>>();
        let existing = self.backend.get_batch(&keys).await?;
        let mut batch = WriteBatch::new();
        for ((key, workflow), old) in workflows.into_iter().zip(existing) {
            let id = workflow.id.as_str();
            if let Some(old) = old {
                let old: Workflow = decode_record(&old).map_err(|e| e.with_context("key", &key))?;
                if old.status != workflow.status {
                    let status = old.status;
                    batch = batch.delete(WorkflowKey::ByStatus { status, id }.key()?);
                }
            }
            let status = workflow.status;
            batch = batch
                .put(WorkflowKey::ByStatus { status, id }.key()?, Bytes::new())
                .put(key, encode_record(&workflow)?);
        }
        self.backend.write_batch(batch).await
    }
}
