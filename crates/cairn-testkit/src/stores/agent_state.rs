//! Conformance cases for [`AgentStateStore`].
//!
//! [`agent_state_suite!`](crate::agent_state_suite) takes a factory returning two stores on
//! two fresh, distinct tenants; every case but the isolation one uses only the first.

use std::sync::Arc;

use cairn_core::{ErrorKind, StorageBackend};
use cairn_stores::agent_state::keys::AgentStateKey;
use cairn_stores::agent_state::{AgentStateStore, SnapshotInfo};
use serde_json::json;

use super::probe::{expect_kind, flip_byte, stored};

/// SHA-256 of the 10 bytes `{"step":1}`.
const STEP1_SHA256: &str = "8565a568653654ae5b4d4444245fa76e8bdea8c7d0db4a75bcffbb60bd6a0452";

fn versions(infos: &[SnapshotInfo]) -> Vec<u64> {
    infos.iter().map(|i| i.version).collect()
}

async fn save_n(store: &Arc<dyn AgentStateStore>, agent: &str, n: u64) {
    for step in 1..=n {
        store
            .save(agent, &json!({ "step": step }), None)
            .await
            .unwrap();
    }
}

/// Saves number versions from 1, carry the payload's SHA-256 and size, and load back exactly.
pub async fn saves_are_versioned_and_checksummed(store: Arc<dyn AgentStateStore>) {
    let first = store.save("a", &json!({"step": 1}), None).await.unwrap();
    assert_eq!(first.agent_id, "a");
    assert_eq!(first.version, 1);
    assert_eq!(first.size, 10);
    assert_eq!(first.checksum, STEP1_SHA256);
    let nested = json!({"step": 2, "plan": ["look", "act"], "memo": {"k": null, "n": 1.5}});
    let second = store.save("a", &nested, None).await.unwrap();
    assert_eq!(second.version, 2);
    assert!(second.saved_at >= first.saved_at);
    let latest = store.load_latest("a").await.unwrap().unwrap();
    assert_eq!(latest.info, second);
    assert_eq!(latest.state, nested);
    let v1 = store.load_version("a", 1).await.unwrap().unwrap();
    assert_eq!((v1.info, v1.state), (first.clone(), json!({"step": 1})));
    assert!(store.load_version("a", 3).await.unwrap().is_none());
    assert!(store.load_version("a", 0).await.unwrap().is_none());
    assert!(store.load_latest("nobody").await.unwrap().is_none());
    let listed = store.list_versions("a").await.unwrap();
    assert_eq!(listed, vec![first, second]);
    assert!(store.list_versions("nobody").await.unwrap().is_empty());
}

/// `expected_version` must name the latest version (`Some(0)`: none yet); a stale one is
/// `Conflict` and stores nothing.
pub async fn expected_version_is_checked(store: Arc<dyn AgentStateStore>) {
    let v1 = store.save("a", &json!(1), Some(0)).await.unwrap();
    assert_eq!(v1.version, 1);
    expect_kind(
        store.save("a", &json!("again"), Some(0)).await,
        ErrorKind::Conflict,
    );
    assert_eq!(
        store.save("a", &json!(2), Some(1)).await.unwrap().version,
        2
    );
    expect_kind(
        store.save("a", &json!("stale"), Some(1)).await,
        ErrorKind::Conflict,
    );
    expect_kind(
        store.save("a", &json!("ahead"), Some(7)).await,
        ErrorKind::Conflict,
    );
    let latest = store.load_latest("a").await.unwrap().unwrap();
    assert_eq!((latest.info.version, latest.state), (2, json!(2)));
    assert_eq!(versions(&store.list_versions("a").await.unwrap()), [1, 2]);
}

/// Of 20 concurrent saves expecting the same version exactly one wins; the rest are
/// `Conflict`.
pub async fn concurrent_saves_with_same_expectation_have_one_winner(
    store: Arc<dyn AgentStateStore>,
) {
    store.save("a", &json!("base"), None).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.save("a", &json!({ "writer": i }), Some(1)).await })
        })
        .collect();
    let mut winners = Vec::new();
    for result in futures::future::join_all(tasks).await {
        match result.unwrap() {
            Ok(info) => winners.push(info),
            Err(err) => assert_eq!(err.kind(), ErrorKind::Conflict, "{err}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].version, 2);
    let latest = store.load_latest("a").await.unwrap().unwrap();
    assert_eq!(latest.info, winners[0]);
    assert_eq!(versions(&store.list_versions("a").await.unwrap()), [1, 2]);
}

/// 30 concurrent unconditional saves all succeed with the versions 1..=30.
pub async fn concurrent_unconditional_saves_never_collide(store: Arc<dyn AgentStateStore>) {
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.save("a", &json!(i), None).await.unwrap().version })
        })
        .collect();
    let mut got: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=30).collect::<Vec<_>>());
    let listed = store.list_versions("a").await.unwrap();
    assert_eq!(versions(&listed), (1..=30).collect::<Vec<_>>());
}

/// `prune` keeps the newest versions and reports how many it removed.
pub async fn prune_keeps_the_newest(store: Arc<dyn AgentStateStore>) {
    save_n(&store, "a", 5).await;
    save_n(&store, "b", 2).await;
    assert_eq!(store.prune("a", 2).await.unwrap(), 3);
    assert_eq!(versions(&store.list_versions("a").await.unwrap()), [4, 5]);
    assert!(store.load_version("a", 3).await.unwrap().is_none());
    let v4 = store.load_version("a", 4).await.unwrap().unwrap();
    assert_eq!(v4.state, json!({"step": 4}));
    assert_eq!(store.prune("a", 2).await.unwrap(), 0);
    assert_eq!(store.prune("a", 10).await.unwrap(), 0);
    assert_eq!(store.prune("nobody", 1).await.unwrap(), 0);
    expect_kind(store.prune("a", 0).await, ErrorKind::InvalidInput);
    let next = store.save("a", &json!("six"), Some(5)).await.unwrap();
    assert_eq!(next.version, 6);
    assert_eq!(versions(&store.list_versions("b").await.unwrap()), [1, 2]);
}

/// Prunes racing saves never remove the latest version: 20 saves and 5 `prune(3)` run
/// concurrently, then the latest of 20 versions loads and at least 3 versions remain.
pub async fn prune_during_saves_keeps_the_latest(store: Arc<dyn AgentStateStore>) {
    let saves = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store.save("a", &json!(i), None).await.unwrap();
        })
    });
    let prunes = (0..5).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store.prune("a", 3).await.unwrap();
        })
    });
    let tasks: Vec<_> = saves.chain(prunes).collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let latest = store
        .load_latest("a")
        .await
        .unwrap()
        .expect("latest survives");
    assert_eq!(latest.info.version, 20);
    let listed = versions(&store.list_versions("a").await.unwrap());
    assert!(listed.len() >= 3, "{listed:?}");
    assert_eq!(listed[listed.len() - 3..], [18, 19, 20]);
    assert_eq!(store.prune("a", 3).await.unwrap(), listed.len() as u64 - 3);
}

/// `delete_agent` removes every version; the next save starts at 1 again.
pub async fn delete_agent_removes_every_version(store: Arc<dyn AgentStateStore>) {
    save_n(&store, "a", 3).await;
    save_n(&store, "b", 1).await;
    assert_eq!(store.delete_agent("a").await.unwrap(), 3);
    assert!(store.load_latest("a").await.unwrap().is_none());
    assert!(store.load_version("a", 2).await.unwrap().is_none());
    assert!(store.list_versions("a").await.unwrap().is_empty());
    assert_eq!(store.delete_agent("a").await.unwrap(), 0);
    assert_eq!(
        store.save("a", &json!(0), Some(0)).await.unwrap().version,
        1
    );
    assert_eq!(
        store.load_latest("b").await.unwrap().unwrap().info.version,
        1
    );
}

/// Bad agent ids are `InvalidInput` and store nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn AgentStateStore>) {
    let long = "x".repeat(257);
    for bad in ["", long.as_str(), "nul\0"] {
        expect_kind(
            store.save(bad, &json!(1), None).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(store.load_latest(bad).await, ErrorKind::InvalidInput);
        expect_kind(store.load_version(bad, 1).await, ErrorKind::InvalidInput);
        expect_kind(store.list_versions(bad).await, ErrorKind::InvalidInput);
        expect_kind(store.delete_agent(bad).await, ErrorKind::InvalidInput);
        expect_kind(store.prune(bad, 1).await, ErrorKind::InvalidInput);
    }
    let odd = "agent/with%2Fodd chars";
    assert_eq!(store.save(odd, &json!(1), None).await.unwrap().version, 1);
    assert!(store.load_latest("agent").await.unwrap().is_none());
    assert_eq!(
        store.load_latest(odd).await.unwrap().unwrap().state,
        json!(1)
    );
}

/// Two tenants never see each other's agents and version them independently.
pub async fn tenants_are_isolated(
    store: Arc<dyn AgentStateStore>,
    other: Arc<dyn AgentStateStore>,
) {
    save_n(&store, "a", 2).await;
    assert!(other.load_latest("a").await.unwrap().is_none());
    assert!(other.list_versions("a").await.unwrap().is_empty());
    assert_eq!(
        other.save("a", &json!("o"), Some(0)).await.unwrap().version,
        1
    );
    assert_eq!(other.delete_agent("a").await.unwrap(), 1);
    let mine = store.load_latest("a").await.unwrap().unwrap();
    assert_eq!((mine.info.version, mine.state), (2, json!({"step": 2})));
}

/// Flipping any single byte of a stored payload, damaging the stored checksum or losing the
/// payload makes loads fail with `Corruption`, never return data; restoring the bytes heals.
pub async fn damaged_snapshots_are_corruption(
    store: Arc<dyn AgentStateStore>,
    backend: Arc<dyn StorageBackend>,
) {
    let state = json!({"goal": "ship", "n": 42});
    store.save("a", &state, None).await.unwrap();
    let (agent, version) = ("a", 1);
    let data = AgentStateKey::Data { agent, version }.key().unwrap();
    let len = stored(&*backend, &data).await.len();
    for index in 0..len {
        let original = flip_byte(&*backend, &data, index).await;
        expect_kind(store.load_latest("a").await, ErrorKind::Corruption);
        expect_kind(store.load_version("a", 1).await, ErrorKind::Corruption);
        backend.set(&data, original).await.unwrap();
    }
    let info = AgentStateKey::Info { agent, version }.key().unwrap();
    let original = stored(&*backend, &info).await;
    let checksum = store.list_versions("a").await.unwrap()[0].checksum.clone();
    let at = original
        .windows(64)
        .position(|w| w == checksum.as_bytes())
        .expect("checksum is stored in the metadata");
    flip_byte(&*backend, &info, at + 10).await;
    expect_kind(store.load_version("a", 1).await, ErrorKind::Corruption);
    backend.set(&info, original).await.unwrap();
    let payload = stored(&*backend, &data).await;
    backend.delete(&data).await.unwrap();
    expect_kind(store.load_latest("a").await, ErrorKind::Corruption);
    backend.set(&data, payload).await.unwrap();
    assert_eq!(store.load_latest("a").await.unwrap().unwrap().state, state);
}

/// Expands to one `#[tokio::test]` per case of the agent_state suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn AgentStateStore>, Arc<dyn AgentStateStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! agent_state_suite {
    ($factory:path) => {
        $crate::__store_cases!(store agent_state, $factory;
            saves_are_versioned_and_checksummed,
            expected_version_is_checked,
            concurrent_saves_with_same_expectation_have_one_winner,
            concurrent_unconditional_saves_never_collide,
            prune_keeps_the_newest,
            prune_during_saves_keeps_the_latest,
            delete_agent_removes_every_version,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair agent_state, $factory; tenants_are_isolated);
    };
}

/// Runs [`agent_state_suite!`](crate::agent_state_suite) on `GenericAgentStateStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! agent_state_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(agent_state, agent_state_suite, AgentStateStore, GenericAgentStateStore, $backend;
            store_and_backend: [damaged_snapshots_are_corruption];
            backend: []);
    };
}
