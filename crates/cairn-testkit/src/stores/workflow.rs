//! Conformance cases for [`WorkflowStore`].
//!
//! [`workflow_suite!`](crate::workflow_suite) takes a factory returning two stores on two
//! fresh, distinct tenants; every case but the isolation one uses only the first.

use std::sync::Arc;

use cairn_core::{ErrorKind, StorageBackend};
use cairn_stores::workflow::keys::WorkflowKey;
use cairn_stores::workflow::{Transition, Workflow, WorkflowStatus, WorkflowStore};
use serde_json::{Value, json};

use super::probe::{expect_kind, flip_byte};

const ALL_STATUSES: [WorkflowStatus; 5] = [
    WorkflowStatus::Pending,
    WorkflowStatus::Running,
    WorkflowStatus::Completed,
    WorkflowStatus::Failed,
    WorkflowStatus::Cancelled,
];

fn all_transitions() -> [Transition; 4] {
    [
        Transition::Start,
        Transition::Complete {
            output: json!({"rows": 3}),
        },
        Transition::Fail {
            error: "disk full".into(),
        },
        Transition::Cancel,
    ]
}

fn ids(workflows: &[Workflow]) -> Vec<&str> {
    workflows.iter().map(|w| w.id.as_str()).collect()
}

async fn list(store: &Arc<dyn WorkflowStore>, status: WorkflowStatus) -> Vec<String> {
    let listed = store.list_by_status(status, None, 100).await.unwrap();
    listed.into_iter().map(|w| w.id).collect()
}

/// Drives a new workflow `id` into `status` through legal moves.
async fn workflow_in(store: &Arc<dyn WorkflowStore>, id: &str, status: WorkflowStatus) -> Workflow {
    let mut workflow = store.create(Some(id), "job", json!(null)).await.unwrap();
    let path: &[Transition] = match status {
        WorkflowStatus::Pending => &[],
        WorkflowStatus::Running => &[Transition::Start],
        WorkflowStatus::Completed => {
            &[Transition::Start, Transition::Complete { output: json!(1) }]
        }
        WorkflowStatus::Failed => &[
            Transition::Start,
            Transition::Fail {
                error: "boom".into(),
            },
        ],
        WorkflowStatus::Cancelled => &[Transition::Cancel],
    };
    for step in path {
        workflow = store.transition(id, step.clone()).await.unwrap();
    }
    assert_eq!(workflow.status, status);
    workflow
}

/// `create` stores a pending workflow with a UUID v7 id or the caller's; a taken id is
/// `Conflict` and leaves the first one unchanged.
pub async fn create_stores_pending_workflows(store: Arc<dyn WorkflowStore>) {
    let input = json!({"file": "a.csv", "rows": [1, 2]});
    let made = store.create(None, "ingest", input.clone()).await.unwrap();
    assert_eq!(made.id.len(), 36);
    assert_eq!(made.id.as_bytes()[14], b'7', "a UUID v7: {}", made.id);
    assert_eq!(made.name, "ingest");
    assert_eq!(made.status, WorkflowStatus::Pending);
    assert_eq!(made.input, input);
    assert_eq!(
        (made.started_at, made.finished_at, &made.error, &made.output),
        (None, None, &None, &None)
    );
    assert_eq!(made.duration(), None);
    assert_eq!(store.get(&made.id).await.unwrap(), Some(made.clone()));
    let named = store
        .create(Some("wf-1"), "report", json!(1))
        .await
        .unwrap();
    assert_eq!(named.id, "wf-1");
    expect_kind(
        store.create(Some("wf-1"), "other", json!(2)).await,
        ErrorKind::Conflict,
    );
    assert_eq!(store.get("wf-1").await.unwrap(), Some(named));
    assert_eq!(store.get("missing").await.unwrap(), None);
    let mut pending = list(&store, WorkflowStatus::Pending).await;
    pending.sort();
    let mut expected = vec![made.id, "wf-1".to_owned()];
    expected.sort();
    assert_eq!(pending, expected);
}

/// pending → running → completed sets the times, the output and a duration.
pub async fn completing_records_output_and_duration(store: Arc<dyn WorkflowStore>) {
    store.create(Some("w"), "job", json!("in")).await.unwrap();
    let running = store.transition("w", Transition::Start).await.unwrap();
    assert_eq!(running.status, WorkflowStatus::Running);
    let started = running.started_at.expect("started_at is set");
    assert!(started >= running.created_at);
    assert_eq!(running.finished_at, None);
    assert_eq!(running.duration(), None);
    let output = json!({"rows": 3, "path": "/out"});
    let done = store
        .transition(
            "w",
            Transition::Complete {
                output: output.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, WorkflowStatus::Completed);
    assert_eq!(done.started_at, Some(started));
    let finished = done.finished_at.expect("finished_at is set");
    assert_eq!(done.duration(), Some(finished - started));
    assert!(done.duration().unwrap() >= time::Duration::ZERO);
    assert_eq!(done.output, Some(output));
    assert_eq!(done.error, None);
    assert_eq!(store.get("w").await.unwrap(), Some(done));
}

/// running → failed carries the error text; cancelling works from pending (no duration)
/// and from running.
pub async fn failing_and_cancelling(store: Arc<dyn WorkflowStore>) {
    workflow_in(&store, "f", WorkflowStatus::Running).await;
    let failed = store
        .transition(
            "f",
            Transition::Fail {
                error: "disk full".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.status, WorkflowStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("disk full"));
    assert_eq!(failed.output, None);
    assert!(failed.duration().is_some());
    store.create(Some("p"), "job", json!(null)).await.unwrap();
    let cancelled = store.transition("p", Transition::Cancel).await.unwrap();
    assert_eq!(cancelled.status, WorkflowStatus::Cancelled);
    assert_eq!(cancelled.started_at, None);
    assert!(cancelled.finished_at.is_some());
    assert_eq!(cancelled.duration(), None);
    workflow_in(&store, "r", WorkflowStatus::Running).await;
    let stopped = store.transition("r", Transition::Cancel).await.unwrap();
    assert_eq!(stopped.status, WorkflowStatus::Cancelled);
    assert!(stopped.duration().is_some());
}

/// Every move outside the state machine is `InvalidInput` and changes neither the record
/// nor the status index; an unknown id is `NotFound`.
pub async fn illegal_moves_are_rejected_and_change_nothing(store: Arc<dyn WorkflowStore>) {
    let mut rejected = 0;
    for (n, from) in ALL_STATUSES.into_iter().enumerate() {
        for transition in all_transitions() {
            if from.can_move_to(transition.target()) {
                continue;
            }
            let id = format!("w{n}-{}", transition.target().as_str());
            let before = workflow_in(&store, &id, from).await;
            expect_kind(
                store.transition(&id, transition).await,
                ErrorKind::InvalidInput,
            );
            assert_eq!(store.get(&id).await.unwrap(), Some(before));
            rejected += 1;
        }
    }
    // pending: complete, fail; running: start; three terminal states: all four moves.
    assert_eq!(rejected, 2 + 1 + 3 * 4);
    for status in ALL_STATUSES {
        for id in list(&store, status).await {
            let workflow = store.get(&id).await.unwrap().unwrap();
            assert_eq!(workflow.status, status, "{id} is indexed under its status");
        }
    }
    assert_eq!(list(&store, WorkflowStatus::Pending).await.len(), 2);
    assert_eq!(list(&store, WorkflowStatus::Running).await.len(), 1);
    assert_eq!(list(&store, WorkflowStatus::Completed).await.len(), 4);
    expect_kind(
        store.transition("nope", Transition::Start).await,
        ErrorKind::NotFound,
    );
}

/// `list_by_status` follows transitions and pages by id.
pub async fn list_by_status_follows_transitions(store: Arc<dyn WorkflowStore>) {
    for id in ["w1", "w2", "w3", "w4", "w5"] {
        store.create(Some(id), "job", json!(id)).await.unwrap();
    }
    for id in ["w1", "w2", "w3"] {
        store.transition(id, Transition::Start).await.unwrap();
    }
    let output = json!("ok");
    store
        .transition("w1", Transition::Complete { output })
        .await
        .unwrap();
    assert_eq!(list(&store, WorkflowStatus::Pending).await, ["w4", "w5"]);
    assert_eq!(list(&store, WorkflowStatus::Running).await, ["w2", "w3"]);
    assert_eq!(list(&store, WorkflowStatus::Completed).await, ["w1"]);
    assert!(list(&store, WorkflowStatus::Failed).await.is_empty());
    let pending = WorkflowStatus::Pending;
    let page1 = store.list_by_status(pending, None, 1).await.unwrap();
    assert_eq!(ids(&page1), ["w4"]);
    assert_eq!(page1[0].input, json!("w4"));
    let page2 = store.list_by_status(pending, Some("w4"), 1).await.unwrap();
    assert_eq!(ids(&page2), ["w5"]);
    let page3 = store.list_by_status(pending, Some("w5"), 1).await.unwrap();
    assert!(page3.is_empty());
    let from_start = store.list_by_status(pending, Some("a"), 10).await.unwrap();
    assert_eq!(ids(&from_start), ["w4", "w5"]);
}

/// Two concurrent terminal moves of one running workflow: exactly one applies, the other
/// then sees a terminal state and is `InvalidInput`; the index holds the winner only.
pub async fn concurrent_terminal_moves_have_one_winner(store: Arc<dyn WorkflowStore>) {
    for n in 0..10 {
        let id = format!("race-{n}");
        workflow_in(&store, &id, WorkflowStatus::Running).await;
        let moves = [
            Transition::Complete { output: json!(n) },
            Transition::Fail {
                error: format!("error {n}"),
            },
        ];
        let tasks: Vec<_> = moves
            .into_iter()
            .map(|t| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move { store.transition(&id, t).await })
            })
            .collect();
        let mut winners = Vec::new();
        for result in futures::future::join_all(tasks).await {
            match result.unwrap() {
                Ok(workflow) => winners.push(workflow),
                Err(err) => assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}"),
            }
        }
        assert_eq!(winners.len(), 1, "{id}");
        assert_eq!(store.get(&id).await.unwrap().as_ref(), Some(&winners[0]));
    }
    let completed = list(&store, WorkflowStatus::Completed).await;
    let failed = list(&store, WorkflowStatus::Failed).await;
    assert_eq!(completed.len() + failed.len(), 10);
    assert!(completed.iter().all(|id| !failed.contains(id)));
    assert!(list(&store, WorkflowStatus::Running).await.is_empty());
}

/// Bad ids, names and limits are `InvalidInput` and store nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn WorkflowStore>) {
    let long = "x".repeat(257);
    for bad in ["", long.as_str(), "a\0b"] {
        expect_kind(
            store.create(Some(bad), "job", Value::Null).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(
            store.create(None, bad, Value::Null).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(
            store.transition(bad, Transition::Start).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(store.get(bad).await, ErrorKind::InvalidInput);
        expect_kind(
            store
                .list_by_status(WorkflowStatus::Pending, Some(bad), 1)
                .await,
            ErrorKind::InvalidInput,
        );
    }
    for limit in [0, cairn_core::MAX_SCAN_LIMIT + 1] {
        expect_kind(
            store
                .list_by_status(WorkflowStatus::Pending, None, limit)
                .await,
            ErrorKind::InvalidInput,
        );
    }
    for status in ALL_STATUSES {
        assert!(list(&store, status).await.is_empty());
    }
    let odd = "tenant'; DROP TABLE kv; --/%";
    store.create(Some(odd), "job", json!(1)).await.unwrap();
    assert_eq!(list(&store, WorkflowStatus::Pending).await, [odd]);
}

/// Two tenants never see each other's workflows; the same id can exist in both.
pub async fn tenants_are_isolated(store: Arc<dyn WorkflowStore>, other: Arc<dyn WorkflowStore>) {
    workflow_in(&store, "w", WorkflowStatus::Running).await;
    assert_eq!(other.get("w").await.unwrap(), None);
    assert!(list(&other, WorkflowStatus::Running).await.is_empty());
    expect_kind(
        other.transition("w", Transition::Cancel).await,
        ErrorKind::NotFound,
    );
    other.create(Some("w"), "theirs", json!(0)).await.unwrap();
    other.transition("w", Transition::Cancel).await.unwrap();
    let mine = store.get("w").await.unwrap().unwrap();
    assert_eq!(
        (mine.name.as_str(), mine.status),
        ("job", WorkflowStatus::Running)
    );
}

/// A damaged stored record reads as `Corruption` and cannot be moved.
pub async fn damaged_records_are_corruption(
    store: Arc<dyn WorkflowStore>,
    backend: Arc<dyn StorageBackend>,
) {
    workflow_in(&store, "w", WorkflowStatus::Running).await;
    let key = WorkflowKey::Record { id: "w" }.key().unwrap();
    let original = flip_byte(&*backend, &key, 0).await;
    expect_kind(store.get("w").await, ErrorKind::Corruption);
    expect_kind(
        store.transition("w", Transition::Cancel).await,
        ErrorKind::Corruption,
    );
    expect_kind(
        store
            .list_by_status(WorkflowStatus::Running, None, 10)
            .await,
        ErrorKind::Corruption,
    );
    backend.set(&key, original).await.unwrap();
    let workflow = store.get("w").await.unwrap().unwrap();
    assert_eq!(workflow.status, WorkflowStatus::Running);
}

/// Expands to one `#[tokio::test]` per case of the workflow suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn WorkflowStore>, Arc<dyn WorkflowStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! workflow_suite {
    ($factory:path) => {
        $crate::__store_cases!(store workflow, $factory;
            create_stores_pending_workflows,
            completing_records_output_and_duration,
            failing_and_cancelling,
            illegal_moves_are_rejected_and_change_nothing,
            list_by_status_follows_transitions,
            concurrent_terminal_moves_have_one_winner,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair workflow, $factory; tenants_are_isolated);
    };
}

/// Runs [`workflow_suite!`](crate::workflow_suite) on `GenericWorkflowStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! workflow_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(workflow, workflow_suite, WorkflowStore, GenericWorkflowStore, $backend;
            store_and_backend: [damaged_records_are_corruption];
            backend: []);
    };
}
