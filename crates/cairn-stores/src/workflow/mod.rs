//! Workflow state: runs of named workflows moving through a fixed state machine.
//!
//! ```text
//! pending ──start──▶ running ──complete──▶ completed
//!    │                  ├──────fail──────▶ failed
//!    │                  └─────cancel─────▶ cancelled
//!    └──────────────cancel───────────────▶ cancelled
//! ```
//!
//! These are the only legal moves. Anything else, including every move out of a terminal
//! state (completed, failed, cancelled), is `InvalidInput` and changes nothing. Moves are
//! compare-and-swap on the stored record, so of two concurrent moves from the same state
//! exactly one applies; the other is then judged against the new state.

pub mod keys;

mod generic;

use async_trait::async_trait;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::portable::check_portable_time;

pub use generic::GenericWorkflowStore;

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    /// Created, not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished with an output (terminal).
    Completed,
    /// Finished with an error (terminal).
    Failed,
    /// Stopped before finishing (terminal).
    Cancelled,
}

impl WorkflowStatus {
    /// The lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Pending => "pending",
            WorkflowStatus::Running => "running",
            WorkflowStatus::Completed => "completed",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no move leaves this status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowStatus::Completed | WorkflowStatus::Failed | WorkflowStatus::Cancelled
        )
    }

    /// Whether the state machine allows moving from `self` to `to`.
    pub fn can_move_to(self, to: WorkflowStatus) -> bool {
        use WorkflowStatus::{Cancelled, Completed, Failed, Pending, Running};
        matches!(
            (self, to),
            (Pending, Running | Cancelled) | (Running, Completed | Failed | Cancelled)
        )
    }

    /// Every status, in the order of the life of a workflow.
    pub const ALL: [WorkflowStatus; 5] = [
        WorkflowStatus::Pending,
        WorkflowStatus::Running,
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
    ];

    /// The status named `name` (as [`WorkflowStatus::as_str`] writes it), if any.
    pub fn parse(name: &str) -> Option<WorkflowStatus> {
        WorkflowStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Checks that workflow `workflow_id` may move from `self` to `to`.
    ///
    /// # Errors
    /// `InvalidInput` naming both statuses when the state machine does not allow the move.
    pub fn check_move(self, to: WorkflowStatus, workflow_id: &str) -> Result<()> {
        if self.can_move_to(to) {
            return Ok(());
        }
        Err(Error::invalid_input(format!(
            "illegal workflow transition from {} to {}",
            self.as_str(),
            to.as_str()
        ))
        .with_context("workflow", workflow_id))
    }
}

/// A move to request, with the detail its target status carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "lowercase")]
pub enum Transition {
    /// To `running`; sets `started_at`.
    Start,
    /// To `completed` with the workflow's output; sets `finished_at`.
    Complete {
        /// The result, stored as `output`.
        output: Value,
    },
    /// To `failed` with the error text; sets `finished_at`.
    Fail {
        /// What went wrong, stored as `error`.
        error: String,
    },
    /// To `cancelled`; sets `finished_at`.
    Cancel,
}

impl Transition {
    /// The status this move leads to.
    pub fn target(&self) -> WorkflowStatus {
        match self {
            Transition::Start => WorkflowStatus::Running,
            Transition::Complete { .. } => WorkflowStatus::Completed,
            Transition::Fail { .. } => WorkflowStatus::Failed,
            Transition::Cancel => WorkflowStatus::Cancelled,
        }
    }
}

/// A stored workflow run. It is also the portable record of workflow state
/// ([`crate::portable`]), one per workflow; see [`check_workflow`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Caller-chosen, or a UUID v7 (time-ordered) when none was given.
    pub id: String,
    /// The workflow's name.
    pub name: String,
    /// Current status.
    pub status: WorkflowStatus,
    /// When it was created, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it moved to `running`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it reached a terminal status.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The error text of a failed run.
    pub error: Option<String>,
    /// The input given at creation.
    pub input: Value,
    /// The output of a completed run.
    pub output: Option<Value>,
}

impl Workflow {
    /// How long the run took from start to finish; `None` unless it both started and
    /// finished (a workflow cancelled while pending never started).
    pub fn duration(&self) -> Option<time::Duration> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// Checks a workflow read from a portable record before it is imported: its id and name, its
/// times (UTC, years 0 to 9999), and what its status implies, as the state machine leaves it:
/// a start time unless pending (a cancelled run may lack one), a finish time exactly when
/// terminal, an error exactly when failed, and no output unless completed (a completed run's
/// missing output is a JSON `null` output).
///
/// # Errors
/// `InvalidInput` naming the first bad field.
pub fn check_workflow(workflow: &Workflow) -> Result<()> {
    use WorkflowStatus::{Cancelled, Completed, Failed, Pending};
    crate::codec::check_id("workflow id", &workflow.id)?;
    crate::codec::check_id("workflow name", &workflow.name)?;
    check_portable_time("workflow creation", workflow.created_at)?;
    for (what, at) in [
        ("workflow start", workflow.started_at),
        ("workflow finish", workflow.finished_at),
    ] {
        if let Some(at) = at {
            check_portable_time(what, at)?;
        }
    }
    let status = workflow.status;
    let started_ok = match status {
        Pending => workflow.started_at.is_none(),
        Cancelled => true,
        _ => workflow.started_at.is_some(),
    };
    let consistent = started_ok
        && workflow.finished_at.is_some() == status.is_terminal()
        && workflow.error.is_some() == (status == Failed)
        && (workflow.output.is_none() || status == Completed);
    if !consistent {
        return Err(Error::invalid_input(format!(
            "a {} workflow's times, error and output do not match its status",
            status.as_str()
        ))
        .with_context("workflow", &workflow.id));
    }
    Ok(())
}

/// Workflow runs and their status.
///
/// Workflow ids and names are strings of 1 to 256 bytes without NUL; any other is
/// `InvalidInput`. A bad argument is always rejected before anything is written.
///
/// Every implementation is also a [`PortableStore`](crate::portable::PortableStore): its
/// records can be exported, imported and copied to another backend.
#[async_trait]
pub trait WorkflowStore: crate::portable::PortableStore {
    /// Creates a `pending` workflow with `input`, under `workflow_id` or a new UUID v7.
    ///
    /// # Errors
    /// `Conflict` when a workflow with that id exists; `InvalidInput` for a bad id or name.
    async fn create(&self, workflow_id: Option<&str>, name: &str, input: Value)
    -> Result<Workflow>;

    /// Applies `transition` and returns the updated workflow.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidInput` for a bad id or a move the state machine
    /// does not allow from the current status (nothing changes).
    async fn transition(&self, workflow_id: &str, transition: Transition) -> Result<Workflow>;

    /// Reads one workflow; `None` when it does not exist.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Corruption` for damaged data.
    async fn get(&self, workflow_id: &str) -> Result<Option<Workflow>>;

    /// Lists up to `limit` workflows currently in `status`, in the byte order of their
    /// escaped ids (`%` and `/` escaped as `%25` and `%2F`; creation order for generated
    /// ids), starting after id `after`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad `after` id or limit; `Corruption` for damaged data.
    async fn list_by_status(
        &self,
        status: WorkflowStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Workflow>>;
}
