//! Conformance cases for [`SessionStore`].
//!
//! Contract cases take the store under test on a fresh tenant; [`tenants_are_isolated`] also
//! takes a store on a second tenant. Cases that inspect the generic implementation's stored
//! values take the backend instead.
//!
//! Time-to-live cases use a lifetime of 500 ms and sleep 700 ms to outlive it.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind, StorageBackend, StorageBackendExt};
use cairn_stores::sessions::keys::SessionKey;
use cairn_stores::{GenericSessionStore, SessionStore};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const SHORT: Duration = Duration::milliseconds(500);
const LONG: Duration = Duration::seconds(60);

/// Sleeps past [`SHORT`].
async fn outlive_short() {
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
}

fn hash_of(seed: &str) -> String {
    blake3::hash(seed.as_bytes()).to_hex().to_string()
}

async fn listed_ids(store: &Arc<dyn SessionStore>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(after.as_deref(), 2).await.unwrap();
        ids.extend(page.items.into_iter().map(|s| s.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

/// `create`/`get`: a session round-trips with its expiry `ttl` after creation; ids are
/// generated when not given.
pub async fn create_get_round_trips(store: Arc<dyn SessionStore>) {
    let before = OffsetDateTime::now_utc();
    let session = store
        .create(Some("s1"), LONG, json!({"step": 1, "user": "ada"}))
        .await
        .unwrap();
    assert_eq!(session.id, "s1");
    assert!(session.created_at >= before);
    assert_eq!(session.expires_at - session.created_at, LONG);
    assert_eq!(session.ttl, LONG);
    assert_eq!(session.data, json!({"step": 1, "user": "ada"}));
    assert!(session.artifacts.is_empty());
    assert_eq!(store.get("s1").await.unwrap(), Some(session));

    let a = store.create(None, LONG, json!(null)).await.unwrap();
    let b = store.create(None, LONG, json!([1, 2])).await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.len(), 36, "a UUID: {}", a.id);
    assert_eq!(store.get(&b.id).await.unwrap().unwrap().data, json!([1, 2]));
    assert_eq!(store.get("missing").await.unwrap(), None);
}

/// `create`: an unexpired session's id is taken (`Conflict`, nothing changes); an expired
/// one's is free again.
pub async fn create_existing_id_is_conflict_until_expired(store: Arc<dyn SessionStore>) {
    store
        .create(Some("s"), SHORT, json!({"v": 1}))
        .await
        .unwrap();
    let err = store
        .create(Some("s"), LONG, json!({"v": 2}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(store.get("s").await.unwrap().unwrap().data, json!({"v": 1}));
    outlive_short().await;
    let fresh = store
        .create(Some("s"), LONG, json!({"v": 3}))
        .await
        .unwrap();
    assert_eq!(store.get("s").await.unwrap(), Some(fresh));
    assert_eq!(store.purge_expired().await.unwrap(), 0);
}

/// Expired sessions are invisible to `get` and `list` before any purge, and cannot be
/// updated.
pub async fn expired_sessions_are_invisible(store: Arc<dyn SessionStore>) {
    store.create(Some("short"), SHORT, json!({})).await.unwrap();
    store.create(Some("long"), LONG, json!({})).await.unwrap();
    assert_eq!(listed_ids(&store).await, ["long", "short"]);
    outlive_short().await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert_eq!(listed_ids(&store).await, ["long"]);
    let hash = hash_of("a");
    let errors = [
        store.extend("short", LONG).await.unwrap_err(),
        store.touch("short").await.unwrap_err(),
        store.update_data("short", json!(1)).await.unwrap_err(),
        store.link_artifact("short", &hash).await.unwrap_err(),
        store.unlink_artifact("short", &hash).await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    assert!(store.get("long").await.unwrap().is_some());
}

/// `extend` keeps a session alive past its first expiry; `touch` renews by the creation ttl;
/// `extend` may also shorten.
pub async fn extend_and_touch_renew_expiry(store: Arc<dyn SessionStore>) {
    let created = store.create(Some("s"), SHORT, json!({})).await.unwrap();
    let before = OffsetDateTime::now_utc();
    let extended = store.extend("s", LONG).await.unwrap();
    assert!(extended.expires_at >= before + LONG);
    assert_eq!(extended.ttl, SHORT);
    outlive_short().await;
    assert_eq!(store.get("s").await.unwrap(), Some(extended.clone()));
    assert_eq!(listed_ids(&store).await, ["s"]);

    let before = OffsetDateTime::now_utc();
    let touched = store.touch("s").await.unwrap();
    assert!(touched.expires_at >= before + SHORT);
    assert!(touched.expires_at < extended.expires_at);
    assert!(touched.expires_at > created.expires_at);
    assert_eq!(touched.created_at, created.created_at);
    outlive_short().await;
    assert_eq!(store.get("s").await.unwrap(), None);
}

/// `purge_expired` removes exactly the expired sessions, counts them, and leaves live ones
/// (also ones extended after creation with a short ttl).
pub async fn purge_removes_exactly_the_expired(store: Arc<dyn SessionStore>) {
    for id in ["a", "b", "c"] {
        store.create(Some(id), SHORT, json!({})).await.unwrap();
    }
    for id in ["x", "y"] {
        store.create(Some(id), LONG, json!({})).await.unwrap();
    }
    store.extend("c", LONG).await.unwrap();
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    outlive_short().await;
    assert_eq!(store.purge_expired().await.unwrap(), 2);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(listed_ids(&store).await, ["c", "x", "y"]);
    assert!(store.get("c").await.unwrap().is_some());
    assert!(!store.delete("a").await.unwrap());
}

/// `update_data` replaces the snapshot and keeps the expiry.
pub async fn snapshots_are_stored_and_readable(store: Arc<dyn SessionStore>) {
    let created = store
        .create(Some("s"), LONG, json!({"turn": 0}))
        .await
        .unwrap();
    let snapshot = json!({"turn": 7, "messages": ["hi", "hello"], "nested": {"k": [1.5, null]}});
    let updated = store.update_data("s", snapshot.clone()).await.unwrap();
    assert_eq!(updated.data, snapshot);
    assert_eq!(updated.expires_at, created.expires_at);
    assert_eq!(store.get("s").await.unwrap(), Some(updated));
}

/// Linked artifacts round-trip in linking order without repeats; unlink reports whether the
/// hash was linked.
pub async fn linked_artifacts_round_trip(store: Arc<dyn SessionStore>) {
    store.create(Some("s"), LONG, json!({})).await.unwrap();
    let (a, b) = (hash_of("a"), hash_of("b"));
    store.link_artifact("s", &a).await.unwrap();
    store.link_artifact("s", &b.to_uppercase()).await.unwrap();
    let session = store.link_artifact("s", &a).await.unwrap();
    assert_eq!(session.artifacts, [a.clone(), b.clone()]);
    assert_eq!(
        store.get("s").await.unwrap().unwrap().artifacts,
        [a.clone(), b.clone()]
    );
    assert!(store.unlink_artifact("s", &a).await.unwrap());
    assert!(!store.unlink_artifact("s", &a).await.unwrap());
    assert_eq!(store.get("s").await.unwrap().unwrap().artifacts, [b]);
}

/// Concurrent links to one session are never lost.
pub async fn concurrent_links_are_never_lost(store: Arc<dyn SessionStore>) {
    store.create(Some("s"), LONG, json!({})).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.link_artifact("s", &hash_of(&i.to_string())).await })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap().unwrap();
    }
    let linked: BTreeSet<String> = store
        .get("s")
        .await
        .unwrap()
        .unwrap()
        .artifacts
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = (0..20).map(|i| hash_of(&i.to_string())).collect();
    assert_eq!(linked, expected);
}

/// `list` pages through unexpired sessions in id order without gaps or repeats.
pub async fn list_pages_in_id_order(store: Arc<dyn SessionStore>) {
    store
        .create(Some("s2-expired"), SHORT, json!({}))
        .await
        .unwrap();
    for id in ["s4", "s0", "s3", "s1", "s2"] {
        store
            .create(Some(id), LONG, json!({"id": id}))
            .await
            .unwrap();
    }
    outlive_short().await;
    assert_eq!(listed_ids(&store).await, ["s0", "s1", "s2", "s3", "s4"]);
    let page = store.list(None, 3).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.next_after.as_deref(), Some("s2"));
    let rest = store.list(Some("s2"), 3).await.unwrap();
    let ids: Vec<&str> = rest.items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s3", "s4"]);
    assert_eq!(rest.next_after, None);
    assert_eq!(rest.items[1].data, json!({"id": "s4"}));
}

/// `delete` reports whether an unexpired session went; expired ones are removed silently.
pub async fn delete_removes_sessions(store: Arc<dyn SessionStore>) {
    store.create(Some("live"), LONG, json!({})).await.unwrap();
    store.create(Some("old"), SHORT, json!({})).await.unwrap();
    assert!(store.delete("live").await.unwrap());
    assert!(!store.delete("live").await.unwrap());
    assert_eq!(store.get("live").await.unwrap(), None);
    outlive_short().await;
    assert!(!store.delete("old").await.unwrap());
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(listed_ids(&store).await.is_empty());
}

/// Ids with `/`, `%`, quotes and non-ASCII text stay distinct and round-trip exactly.
pub async fn hostile_ids_round_trip(store: Arc<dyn SessionStore>) {
    let ids = ["a/b", "a%2Fb", "a", "ü'; DROP TABLE kv; --"];
    for (i, id) in ids.iter().enumerate() {
        store.create(Some(id), LONG, json!(i)).await.unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(store.get(id).await.unwrap().unwrap().data, json!(i), "{id}");
    }
    let listed: BTreeSet<String> = listed_ids(&store).await.into_iter().collect();
    assert_eq!(listed, ids.iter().map(|id| id.to_string()).collect());
    assert!(store.delete("a/b").await.unwrap());
    assert!(store.get("a%2Fb").await.unwrap().is_some());
}

/// Bad ids, ttls, hashes and limits are `InvalidInput` and change nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn SessionStore>) {
    let long_id = "x".repeat(257);
    for id in ["", long_id.as_str(), "a\0b"] {
        let err = store.create(Some(id), LONG, json!({})).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{id:?}");
        assert_eq!(
            store.get(id).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            store.delete(id).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    for ttl in [
        Duration::ZERO,
        Duration::seconds(-5),
        Duration::days(3_660_000),
    ] {
        let err = store.create(Some("s"), ttl, json!({})).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "ttl {ttl}");
    }
    assert!(listed_ids(&store).await.is_empty());

    let created = store
        .create(Some("s"), LONG, json!({"v": 1}))
        .await
        .unwrap();
    for ttl in [Duration::ZERO, Duration::milliseconds(-1)] {
        let err = store.extend("s", ttl).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "extend by {ttl}");
    }
    for hash in ["", "abc", "zz"] {
        let err = store.link_artifact("s", hash).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "hash {hash:?}");
    }
    for limit in [0, 10_001] {
        let err = store.list(None, limit).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "limit {limit}");
    }
    assert_eq!(
        store.list(Some(""), 5).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(store.get("s").await.unwrap(), Some(created));
    assert_eq!(listed_ids(&store).await, ["s"]);
}

/// Tenants never see, take ids from, or purge each other's sessions.
pub async fn tenants_are_isolated(store: Arc<dyn SessionStore>, other: Arc<dyn SessionStore>) {
    store.create(Some("s"), LONG, json!("mine")).await.unwrap();
    store
        .create(Some("old"), SHORT, json!("mine"))
        .await
        .unwrap();
    assert_eq!(other.get("s").await.unwrap(), None);
    other
        .create(Some("s"), SHORT, json!("theirs"))
        .await
        .unwrap();
    assert_eq!(store.get("s").await.unwrap().unwrap().data, json!("mine"));
    assert_eq!(listed_ids(&other).await, ["s"]);
    outlive_short().await;
    assert_eq!(other.purge_expired().await.unwrap(), 1);
    assert_eq!(store.get("s").await.unwrap().unwrap().data, json!("mine"));
    assert!(other.create(Some("s"), LONG, json!("again")).await.is_ok());
    assert!(other.delete("s").await.unwrap());
    assert!(store.get("s").await.unwrap().is_some());
    assert_eq!(store.purge_expired().await.unwrap(), 1);
}

/// Generic implementation: the expiry index holds exactly one entry per stored session at its
/// current expiry, through extend and purge; purging everything leaves no key behind.
pub async fn expiry_index_stays_consistent(backend: Arc<dyn StorageBackend>) {
    let store = GenericSessionStore::new(backend.clone());
    let a = store.create(Some("a"), SHORT, json!({})).await.unwrap();
    let b = store.create(Some("b"), SHORT, json!({})).await.unwrap();
    let b = store.extend(&b.id, LONG).await.unwrap();
    let b = store.touch(&b.id).await.unwrap();
    let index = backend
        .scan_all(&SessionKey::expiry_prefix(), 100)
        .await
        .unwrap();
    let keys: Vec<_> = index.iter().map(|(key, _)| key.clone()).collect();
    let expected = [
        SessionKey::Expiry {
            at: a.expires_at,
            id: "a",
        }
        .key()
        .unwrap(),
        SessionKey::Expiry {
            at: b.expires_at,
            id: "b",
        }
        .key()
        .unwrap(),
    ];
    assert_eq!(keys, expected);
    outlive_short().await;
    assert_eq!(store.purge_expired().await.unwrap(), 2);
    for prefix in [SessionKey::records_prefix(), SessionKey::expiry_prefix()] {
        assert!(backend.scan_all(&prefix, 100).await.unwrap().is_empty());
    }
}

/// Generic implementation: an undecodable record is `Corruption`, never a panic.
pub async fn corrupted_record_is_corruption(backend: Arc<dyn StorageBackend>) {
    let store = GenericSessionStore::new(backend.clone());
    store
        .create(Some("s"), LONG, json!({"k": 1}))
        .await
        .unwrap();
    let key = SessionKey::Record { id: "s" }.key().unwrap();
    let record = backend.get(&key).await.unwrap().unwrap();
    let mut bad_version = record.to_vec();
    bad_version[0] = 99;
    let damages = [
        Bytes::from(bad_version),
        record.slice(..record.len() / 2),
        Bytes::new(),
    ];
    for damaged in damages {
        backend.set(&key, damaged.clone()).await.unwrap();
        let errors = [
            store.get("s").await.unwrap_err(),
            store.touch("s").await.unwrap_err(),
            store.list(None, 10).await.unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.kind(), ErrorKind::Corruption, "{damaged:?}: {err}");
        }
    }
}

/// Expands to one `#[tokio::test]` per case of the sessions suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn SessionStore>, Arc<dyn SessionStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! sessions_suite {
    ($factory:path) => {
        $crate::__store_cases!(store sessions, $factory;
            create_get_round_trips,
            create_existing_id_is_conflict_until_expired,
            expired_sessions_are_invisible,
            extend_and_touch_renew_expiry,
            purge_removes_exactly_the_expired,
            snapshots_are_stored_and_readable,
            linked_artifacts_round_trip,
            concurrent_links_are_never_lost,
            list_pages_in_id_order,
            delete_removes_sessions,
            hostile_ids_round_trip,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair sessions, $factory; tenants_are_isolated);
    };
}

/// Runs [`sessions_suite!`](crate::sessions_suite) on `GenericSessionStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! sessions_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(sessions, sessions_suite, SessionStore, GenericSessionStore, $backend;
            store_and_backend: [];
            backend: [expiry_index_stays_consistent, corrupted_record_is_corruption]);
    };
}
