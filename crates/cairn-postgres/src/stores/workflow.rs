//! [`PostgresWorkflowStore`]: [`WorkflowStore`] on the `workflows` table.

use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend, check_scan_limit};
use cairn_stores::codec::check_id;
use cairn_stores::portable::{
    ExportPage, PortableStore, decode_portable, encode_portable, page_of,
};
use cairn_stores::workflow::{Transition, Workflow, WorkflowStatus, WorkflowStore, check_workflow};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use super::timestamps::{join, optional_at, split};
use super::{export_after_id, export_fetch, query};
use crate::backend::PostgresBackend;
use crate::error;

/// A [`WorkflowStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was
/// built on.
///
/// # Storage
/// One table, `workflows`, primary key `(tenant_id, id)`: name, status, the creation, start
/// and finish times (each a `timestamptz` plus its nanoseconds), the error text, and input
/// and output as `jsonb`. CHECK constraints hold what each status implies (a finish time
/// exactly for terminal statuses, an error exactly for `failed`, an output exactly for
/// `completed`). `list_by_status` reads the index `(tenant_id, status, sort_key)`, where
/// `sort_key` is the id escaped as in the generic store's keys.
///
/// # State machine
/// A transition is one transaction of two pipelined statements (one round trip): `SELECT
/// status … FOR UPDATE` locks the row and reads its newest status, then `UPDATE … WHERE
/// status = ANY(<statuses the move may leave>)` applies the move. Concurrent moves of one
/// workflow therefore take turns, and each is judged against the status the one before it
/// left: of two terminal moves of a running workflow one applies and the other is
/// `InvalidInput`. Times written come from the client's clock, as in the generic store.
///
/// # Limits
/// PostgreSQL `text` and `jsonb` cannot hold NUL characters: an input, output or error text
/// containing one is `InvalidInput` and nothing changes.
#[derive(Clone)]
pub struct PostgresWorkflowStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresWorkflowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresWorkflowStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Every statement of the workflow store. `$1` is always the tenant id; the columns of a
/// workflow are always the `columns!()` list, read by [`workflow_from`].
mod sql {
    /// The columns [`super::workflow_from`] reads, in order.
    macro_rules! columns {
        () => {
            "id, name, status, created_at, created_ns, started_at, started_ns, \
             finished_at, finished_ns, error, input, output"
        };
    }

    /// `$2` id, `$3` name, `$4`/`$5` creation time, `$6` input. Returns no row when the id
    /// is taken.
    pub(super) const CREATE: &str = concat!(
        "\
INSERT INTO workflows (tenant_id, id, name, status, created_at, created_ns, input)
VALUES ($1, $2, $3, 'pending', $4, $5, $6)
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING ",
        columns!()
    );

    /// `$2` id. Runs first in a transition: waits for moves in flight and holds off new ones.
    pub(super) const LOCK: &str =
        "SELECT status FROM workflows WHERE tenant_id = $1 AND id = $2 FOR UPDATE";

    /// `$2` id, `$3` the new status, `$4`..`$9` start time, finish time (each with its
    /// nanoseconds), output and error, each NULL to keep the stored value; `$10` the statuses
    /// the move may leave.
    pub(super) const MOVE: &str = concat!(
        "\
UPDATE workflows SET status = $3,
    started_at = COALESCE($4, started_at), started_ns = COALESCE($5, started_ns),
    finished_at = COALESCE($6, finished_at), finished_ns = COALESCE($7, finished_ns),
    output = COALESCE($8, output), error = COALESCE($9, error)
WHERE tenant_id = $1 AND id = $2 AND status = ANY($10)
RETURNING ",
        columns!()
    );

    /// `$2` id.
    pub(super) const GET: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM workflows WHERE tenant_id = $1 AND id = $2"
    );

    /// `$2` status, `$3` the id to list after (`''` from the start: every `sort_key` is
    /// longer), escaped here exactly as `sort_key` is; `$4` the most rows.
    pub(super) const LIST_BY_STATUS: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM workflows
WHERE tenant_id = $1 AND status = $2
    AND sort_key > replace(replace($3, '%', '%25'), '/', '%2F')
ORDER BY sort_key LIMIT $4"
    );

    /// Every workflow by id: `$2` the id to read after (NULL: from the start), `$3` the most
    /// rows.
    pub(super) const EXPORT: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM workflows WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3"
    );

    /// Writes whole workflows, replacing those of the same id: `$2` ids, `$3` names, `$4`
    /// statuses, `$5`..`$10` creation, start and finish times (each with its nanoseconds),
    /// `$11` errors, `$12` inputs, `$13` outputs, all in the same order.
    pub(super) const IMPORT: &str = "\
INSERT INTO workflows (tenant_id, id, name, status, created_at, created_ns, started_at,
    started_ns, finished_at, finished_ns, error, input, output)
SELECT $1, w.id, w.name, w.status, w.created_at, w.created_ns, w.started_at, w.started_ns,
    w.finished_at, w.finished_ns, w.error, w.input, w.output
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int2[],
    $7::timestamptz[], $8::int2[], $9::timestamptz[], $10::int2[], $11::text[], $12::jsonb[],
    $13::jsonb[])
    AS w(id, name, status, created_at, created_ns, started_at, started_ns, finished_at,
        finished_ns, error, input, output)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    name = EXCLUDED.name, status = EXCLUDED.status,
    created_at = EXCLUDED.created_at, created_ns = EXCLUDED.created_ns,
    started_at = EXCLUDED.started_at, started_ns = EXCLUDED.started_ns,
    finished_at = EXCLUDED.finished_at, finished_ns = EXCLUDED.finished_ns,
    error = EXCLUDED.error, input = EXCLUDED.input, output = EXCLUDED.output";
}

/// A stored status name as a [`WorkflowStatus`].
fn parse_status(name: &str) -> Result<WorkflowStatus> {
    WorkflowStatus::parse(name).ok_or_else(|| {
        Error::corruption("stored workflow has an unknown status").with_context("status", name)
    })
}

/// A workflow row (columns of `sql::columns!`).
fn workflow_from(row: &Row, op: &'static str) -> Result<Workflow> {
    let map = |err| error::from_pg(op, err);
    Ok(Workflow {
        id: row.try_get(0).map_err(map)?,
        name: row.try_get(1).map_err(map)?,
        status: parse_status(row.try_get(2).map_err(map)?)?,
        created_at: join(row.try_get(3).map_err(map)?, row.try_get(4).map_err(map)?)?,
        started_at: optional_at(row, 5, op)?,
        finished_at: optional_at(row, 7, op)?,
        error: row.try_get(9).map_err(map)?,
        input: row.try_get::<_, Value>(10).map_err(map)?,
        // A completed run's JSON `null` output reads as none, as in the generic store.
        output: row
            .try_get::<_, Option<Value>>(11)
            .map_err(map)?
            .filter(|output| !output.is_null()),
    })
}

fn not_found(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, "workflow not found").with_context("workflow", id)
}

impl PostgresWorkflowStore {
    /// A workflow store on `backend`'s pool and tenant. The table comes from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresWorkflowStore {
        PostgresWorkflowStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }
}

#[async_trait]
impl WorkflowStore for PostgresWorkflowStore {
    async fn create(
        &self,
        workflow_id: Option<&str>,
        name: &str,
        input: Value,
    ) -> Result<Workflow> {
        const OP: &str = "workflow_create";
        if let Some(id) = workflow_id {
            check_id("workflow id", id)?;
        }
        check_id("workflow name", name)?;
        let id = workflow_id.map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
        let (at, ns) = split(OffsetDateTime::now_utc());
        let tenant = self.tenant();
        let input = Json(&input);
        let rows = query(
            &self.backend,
            sql::CREATE,
            &[&tenant, &id, &name, &at, &ns, &input],
            OP,
        )
        .await?;
        match rows.first() {
            Some(row) => workflow_from(row, OP),
            None => {
                Err(Error::conflict("a workflow with this id exists").with_context("workflow", id))
            }
        }
    }

    async fn transition(&self, workflow_id: &str, transition: Transition) -> Result<Workflow> {
        const OP: &str = "workflow_transition";
        check_id("workflow id", workflow_id)?;
        let to = transition.target();
        let now = split(OffsetDateTime::now_utc());
        let started = matches!(transition, Transition::Start).then_some(now);
        let finished = to.is_terminal().then_some(now);
        let (output, error) = match &transition {
            Transition::Complete { output } => (Some(Json(output)), None),
            Transition::Fail { error } => (None, Some(error.as_str())),
            Transition::Start | Transition::Cancel => (None, None),
        };
        let from: Vec<&str> = WorkflowStatus::ALL
            .into_iter()
            .filter(|status| status.can_move_to(to))
            .map(WorkflowStatus::as_str)
            .collect();
        let tenant = self.tenant();
        let status = to.as_str();
        let (started_at, started_ns) = (started.map(|t| t.0), started.map(|t| t.1));
        let (finished_at, finished_ns) = (finished.map(|t| t.0), finished.map(|t| t.1));
        let params: [&(dyn ToSql + Sync); 10] = [
            &tenant,
            &workflow_id,
            &status,
            &started_at,
            &started_ns,
            &finished_at,
            &finished_ns,
            &output,
            &error,
            &from,
        ];
        let conn = self.backend.conn(OP).await?;
        let lock = conn.statement(sql::LOCK, OP).await?;
        let apply = conn.statement(sql::MOVE, OP).await?;
        let client = conn.client();
        let (locked, moved) = conn
            .run(
                self.backend.tenant_id(),
                OP,
                futures::future::try_join(
                    client.query(&lock, &[&tenant, &workflow_id]),
                    client.query(&apply, &params),
                ),
            )
            .await?;
        if let Some(row) = moved.first() {
            return workflow_from(row, OP);
        }
        let Some(row) = locked.first() else {
            return Err(not_found(workflow_id));
        };
        let current = parse_status(row.try_get(0).map_err(|err| error::from_pg(OP, err))?)?;
        current.check_move(to, workflow_id)?;
        // The row was locked before the update, so an allowed move applies; should it not,
        // the move is reported as lost, never as done.
        Err(
            Error::conflict("the workflow changed while it was being moved")
                .with_retryable(true)
                .with_context("workflow", workflow_id),
        )
    }

    async fn get(&self, workflow_id: &str) -> Result<Option<Workflow>> {
        const OP: &str = "workflow_get";
        check_id("workflow id", workflow_id)?;
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::GET, &[&tenant, &workflow_id], OP).await?;
        rows.first().map(|row| workflow_from(row, OP)).transpose()
    }

    async fn list_by_status(
        &self,
        status: WorkflowStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Workflow>> {
        const OP: &str = "workflow_list_by_status";
        if let Some(id) = after {
            check_id("workflow id", id)?;
        }
        check_scan_limit(limit)?;
        let tenant = self.tenant();
        let status = status.as_str();
        let after = after.unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query(
            &self.backend,
            sql::LIST_BY_STATUS,
            &[&tenant, &status, &after, &limit],
            OP,
        )
        .await?;
        rows.iter().map(|row| workflow_from(row, OP)).collect()
    }
}

/// The portable record of a workflow is the [`Workflow`] itself, in id order; the cursor is
/// the last id. A completed workflow without an output (how both stores read a JSON `null`
/// output) is imported with the output `null`, which reads back the same.
#[async_trait]
impl PortableStore for PostgresWorkflowStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        const OP: &str = "workflow_export";
        let fetch = export_fetch(limit)?;
        let after = export_after_id(after)?;
        let tenant = self.tenant();
        let rows = query(&self.backend, sql::EXPORT, &[&tenant, &after, &fetch], OP).await?;
        let workflows = rows
            .iter()
            .map(|row| workflow_from(row, OP))
            .collect::<Result<Vec<_>>>()?;
        page_of(
            workflows,
            limit,
            |workflow| encode_portable(workflow, &[]),
            |last| Ok(last.id.as_bytes().to_vec()),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut workflows = std::collections::BTreeMap::new();
        for record in records {
            let (workflow, _): (Workflow, _) = decode_portable(record)?;
            check_workflow(&workflow)?;
            workflows.insert(workflow.id.clone(), workflow);
        }
        if workflows.is_empty() {
            return Ok(());
        }
        let n = workflows.len();
        let (mut ids, mut names, mut statuses) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut created_at, mut created_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut started_at, mut started_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut finished_at, mut finished_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut errors, mut inputs, mut outputs) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for workflow in workflows.into_values() {
            let (at, ns) = split(workflow.created_at);
            created_at.push(at);
            created_ns.push(ns);
            let started = workflow.started_at.map(split);
            started_at.push(started.map(|t| t.0));
            started_ns.push(started.map(|t| t.1));
            let finished = workflow.finished_at.map(split);
            finished_at.push(finished.map(|t| t.0));
            finished_ns.push(finished.map(|t| t.1));
            let completed = workflow.status == WorkflowStatus::Completed;
            outputs.push(workflow.output.or_else(|| completed.then_some(Value::Null)));
            statuses.push(workflow.status.as_str());
            errors.push(workflow.error);
            inputs.push(workflow.input);
            names.push(workflow.name);
            ids.push(workflow.id);
        }
        let tenant = self.tenant();
        let params: [&(dyn ToSql + Sync); 13] = [
            &tenant,
            &ids,
            &names,
            &statuses,
            &created_at,
            &created_ns,
            &started_at,
            &started_ns,
            &finished_at,
            &finished_ns,
            &errors,
            &inputs,
            &outputs,
        ];
        query(&self.backend, sql::IMPORT, &params, "workflow_import").await?;
        Ok(())
    }
}
