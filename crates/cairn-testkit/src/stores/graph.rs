//! Conformance cases for [`GraphStore`], the bi-temporal knowledge graph.
//!
//! Cases take the store under test on a fresh, empty tenant; [`tenants_are_isolated`] also
//! takes a store on a second tenant of the same engine, and
//! [`corrupted_values_are_detected`] (generic implementation only) the backend the store
//! writes to. [`graph_suite!`](crate::graph_suite) wires every case for a factory returning
//! two stores on two tenants; [`graph_generic_suite!`](crate::graph_generic_suite) wires
//! `GenericGraphStore` over a key-value backend factory.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind, StorageBackend, StorageBackendExt};
use cairn_stores::graph::{
    AsOf, Direction, Entity, EntityInput, GraphStore, RelationshipInput, TraversalHit,
    TraverseRequest,
};
use cairn_stores::paging::PageRequest;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

/// Expands to one `#[tokio::test]` per case of the graph suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn GraphStore>, Arc<dyn GraphStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! graph_suite {
    ($factory:path) => {
        $crate::__store_cases!(store graph, $factory;
            created_entity_is_version_one_and_current,
            valid_time_travel,
            update_is_visible_by_known_at,
            history_lists_every_version_in_order,
            properties_merge_with_new_keys_winning,
            close_entity_ends_validity,
            chain_traversal_respects_max_depth,
            cycle_traversal_lists_each_entity_once,
            traversal_takes_smallest_depth_and_direction,
            relation_type_filters,
            as_of_traversal_ignores_relationships_not_valid_then,
            relationship_versions_merge_and_close,
            list_entities_filters_and_pages,
            relationship_endpoint_rules,
            bad_input_is_rejected_and_changes_nothing,
            concurrent_updates_lose_nothing,
            ids_with_separators_stay_apart,
        );
        $crate::__store_cases!(pair graph, $factory; tenants_are_isolated);
    };
}

/// Runs [`graph_suite!`](crate::graph_suite) on `GenericGraphStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! graph_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(graph, graph_suite, GraphStore, GenericGraphStore, $backend;
            store_and_backend: [corrupted_values_are_detected];
            backend: []);
    };
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn props(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("test properties must be an object, got {other}"),
    }
}

/// An entity input valid over `[from, to)`.
fn entity_during(
    id: &str,
    entity_type: &str,
    from: OffsetDateTime,
    to: Option<OffsetDateTime>,
) -> EntityInput {
    EntityInput {
        valid_from: Some(from),
        valid_to: to,
        ..EntityInput::new(id, entity_type, id.to_uppercase())
    }
}

/// Creates entities `ids`, all valid from a year ago on.
async fn entities(store: &Arc<dyn GraphStore>, ids: &[&str]) {
    let year_ago = OffsetDateTime::now_utc() - days(365);
    for id in ids {
        store
            .upsert_entity(entity_during(id, "node", year_ago, None))
            .await
            .unwrap();
    }
}

/// Creates relationships `(id, from, type, to)`, all valid from a year ago on.
async fn links(store: &Arc<dyn GraphStore>, links: &[(&str, &str, &str, &str)]) {
    let year_ago = OffsetDateTime::now_utc() - days(365);
    for (id, from, relation_type, to) in links {
        let input = RelationshipInput {
            valid_from: Some(year_ago),
            ..RelationshipInput::new(*id, *from, *relation_type, *to)
        };
        store.upsert_relationship(input).await.unwrap();
    }
}

/// `(entity id, depth)` of each hit, in order.
fn reached(hits: &[TraversalHit]) -> Vec<(String, usize)> {
    hits.iter()
        .map(|h| (h.entity.id.clone(), h.depth))
        .collect()
}

fn pairs(expected: &[(&str, usize)]) -> Vec<(String, usize)> {
    expected
        .iter()
        .map(|(id, d)| (id.to_string(), *d))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn rel_ids(rels: &[cairn_stores::graph::Relationship]) -> Vec<String> {
    rels.iter().map(|r| r.id.clone()).collect()
}

async fn all_entity_ids(store: &Arc<dyn GraphStore>, as_of: Option<AsOf>) -> Vec<String> {
    let page = store
        .list_entities(None, as_of, PageRequest::first(1000))
        .await
        .unwrap();
    page.items.into_iter().map(|e| e.id).collect()
}

/// A first write creates version 1, valid and known from the write on, and is current.
pub async fn created_entity_is_version_one_and_current(store: Arc<dyn GraphStore>) {
    let before = OffsetDateTime::now_utc();
    let input = EntityInput {
        properties: props(json!({"age": 36, "tags": ["x"]})),
        ..EntityInput::new("alice", "person", "Alice")
    };
    let created = store.upsert_entity(input).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(
        (created.entity_type.as_str(), created.name.as_str()),
        ("person", "Alice")
    );
    assert_eq!(
        Value::Object(created.properties.clone()),
        json!({"age": 36, "tags": ["x"]})
    );
    assert!(created.time.recorded_at >= before);
    assert_eq!(created.time.valid_from, created.time.recorded_at);
    assert_eq!(
        (created.time.valid_to, created.time.superseded_at),
        (None, None)
    );
    assert_eq!(
        store.get_entity("alice").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.entity_history("alice").await.unwrap(), vec![created]);
    assert_eq!(store.get_entity("bob").await.unwrap(), None);
    assert!(store.entity_history("bob").await.unwrap().is_empty());
}

/// Valid time: an entity valid from now-365 d to now-180 d is found as of now-270 d and not
/// as of now-90 d, now, or before it started.
pub async fn valid_time_travel(store: Arc<dyn GraphStore>) {
    let now = OffsetDateTime::now_utc();
    let input = entity_during("rome-trip", "event", now - days(365), Some(now - days(180)));
    store.upsert_entity(input).await.unwrap();
    let at = |d| AsOf::valid_at(now - days(d));
    let found = store.get_entity_as_of("rome-trip", at(270)).await.unwrap();
    assert_eq!(found.map(|e| e.version), Some(1));
    assert_eq!(
        store.get_entity_as_of("rome-trip", at(90)).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_entity_as_of("rome-trip", at(400)).await.unwrap(),
        None
    );
    assert_eq!(store.get_entity("rome-trip").await.unwrap(), None);
    // The start is inclusive and the end exclusive.
    let edge = |t| AsOf::valid_at(t);
    assert!(
        store
            .get_entity_as_of("rome-trip", edge(now - days(365)))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_entity_as_of("rome-trip", edge(now - days(180)))
            .await
            .unwrap()
            .is_none()
    );
}

/// Transaction time: after an update, the old version is what was known before the update
/// and the new one what is known after; nothing was known before the first write.
pub async fn update_is_visible_by_known_at(store: Arc<dyn GraphStore>) {
    let v1 = store
        .upsert_entity(EntityInput {
            properties: props(json!({"city": "Lyon"})),
            ..EntityInput::new("alice", "person", "Alice")
        })
        .await
        .unwrap();
    let v2 = store
        .upsert_entity(EntityInput {
            properties: props(json!({"city": "Oslo"})),
            ..EntityInput::new("alice", "person", "Alice B.")
        })
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(v2.time.recorded_at >= v1.time.recorded_at);
    let now = OffsetDateTime::now_utc();
    let as_of = |known_at| AsOf {
        valid_at: now,
        known_at,
    };
    let old = store
        .get_entity_as_of("alice", as_of(v1.time.recorded_at))
        .await
        .unwrap()
        .expect("old version known before the update");
    assert_eq!((old.version, old.name.as_str()), (1, "Alice"));
    assert_eq!(old.properties["city"], json!("Lyon"));
    assert_eq!(old.time.superseded_at, Some(v2.time.recorded_at));
    let new = store
        .get_entity_as_of("alice", as_of(v2.time.recorded_at))
        .await
        .unwrap();
    assert_eq!(new, Some(v2.clone()));
    let before = v1.time.recorded_at - Duration::seconds(1);
    assert_eq!(
        store
            .get_entity_as_of("alice", as_of(before))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_entity("alice").await.unwrap(), Some(v2));
}

/// History lists every version in recorded order; each is superseded exactly when the next
/// was recorded, and only the last is current.
pub async fn history_lists_every_version_in_order(store: Arc<dyn GraphStore>) {
    let start = OffsetDateTime::now_utc() - days(30);
    for name in ["one", "two", "three"] {
        let input = EntityInput {
            valid_from: Some(start),
            ..EntityInput::new("e", "thing", name)
        };
        store.upsert_entity(input).await.unwrap();
    }
    store
        .close_entity("e", OffsetDateTime::now_utc() - days(1))
        .await
        .unwrap();
    let history = store.entity_history("e").await.unwrap();
    let summary: Vec<(u64, &str, bool)> = history
        .iter()
        .map(|e| (e.version, e.name.as_str(), e.time.valid_to.is_some()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "one", false),
            (2, "two", false),
            (3, "three", false),
            (4, "three", true)
        ]
    );
    for pair in history.windows(2) {
        assert_eq!(pair[0].time.superseded_at, Some(pair[1].time.recorded_at));
    }
    assert_eq!(history[3].time.superseded_at, None);
}

/// An update merges properties: input keys replace stored ones (nested objects whole),
/// other stored keys stay, `null` is stored; type and name come from the input.
pub async fn properties_merge_with_new_keys_winning(store: Arc<dyn GraphStore>) {
    let first = EntityInput {
        properties: props(json!({"a": 1, "b": {"x": 1}, "c": "keep"})),
        ..EntityInput::new("m", "draft", "Draft")
    };
    store.upsert_entity(first).await.unwrap();
    let second = EntityInput {
        properties: props(json!({"a": 2, "b": {"y": 2}, "d": null})),
        ..EntityInput::new("m", "final", "Final")
    };
    let merged = store.upsert_entity(second).await.unwrap();
    let expected = json!({"a": 2, "b": {"y": 2}, "c": "keep", "d": null});
    assert_eq!(Value::Object(merged.properties.clone()), expected);
    assert_eq!(
        (merged.entity_type.as_str(), merged.name.as_str()),
        ("final", "Final")
    );
    assert_eq!(store.get_entity("m").await.unwrap(), Some(merged));
    // The type index follows the type change in the current view.
    let page = PageRequest::first(10);
    let drafts = store
        .list_entities(Some("draft"), None, page.clone())
        .await
        .unwrap();
    assert!(drafts.items.is_empty());
    let finals = store
        .list_entities(Some("final"), None, page)
        .await
        .unwrap();
    assert_eq!(finals.items.len(), 1);
}

/// Closing records a version with `valid_to`; the entity leaves the current view but stays
/// valid before the end. Closing an unknown id is `NotFound`; an end not after the start is
/// `InvalidInput`; neither writes anything.
pub async fn close_entity_ends_validity(store: Arc<dyn GraphStore>) {
    let now = OffsetDateTime::now_utc();
    store
        .upsert_entity(entity_during("job", "role", now - days(10), None))
        .await
        .unwrap();
    let closed = store.close_entity("job", now - days(1)).await.unwrap();
    assert_eq!(
        (closed.version, closed.time.valid_to),
        (2, Some(now - days(1)))
    );
    assert_eq!(store.get_entity("job").await.unwrap(), None);
    let then = store
        .get_entity_as_of("job", AsOf::valid_at(now - days(5)))
        .await
        .unwrap();
    assert_eq!(then, Some(closed));
    let err = store.close_entity("nobody", now).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = store.close_entity("job", now - days(10)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.entity_history("job").await.unwrap().len(), 2);
    assert!(store.entity_history("nobody").await.unwrap().is_empty());
}

/// A chain A->B->C->D->E: depth 4 reaches B, C, D, E at depths 1 to 4 with their paths;
/// depth 2 only B and C.
pub async fn chain_traversal_respects_max_depth(store: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b", "c", "d", "e"]).await;
    links(
        &store,
        &[
            ("ab", "a", "next", "b"),
            ("bc", "b", "next", "c"),
            ("cd", "c", "next", "d"),
            ("de", "d", "next", "e"),
        ],
    )
    .await;
    let hits = store
        .traverse("a", TraverseRequest::outgoing(4))
        .await
        .unwrap();
    assert_eq!(
        reached(&hits),
        pairs(&[("b", 1), ("c", 2), ("d", 3), ("e", 4)])
    );
    assert_eq!(hits[3].path, strings(&["a", "b", "c", "d", "e"]));
    assert_eq!(hits[3].relationships, strings(&["ab", "bc", "cd", "de"]));
    assert_eq!(hits[0].entity.name, "B");
    let hits = store
        .traverse("a", TraverseRequest::outgoing(2))
        .await
        .unwrap();
    assert_eq!(reached(&hits), pairs(&[("b", 1), ("c", 2)]));
    let from_end = store
        .traverse("e", TraverseRequest::outgoing(4))
        .await
        .unwrap();
    assert!(from_end.is_empty());
    let unknown = store
        .traverse("zz", TraverseRequest::outgoing(4))
        .await
        .unwrap();
    assert!(unknown.is_empty());
}

/// A cycle A->B->C->A traversed from A lists B and C exactly once each, never A.
pub async fn cycle_traversal_lists_each_entity_once(store: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b", "c"]).await;
    links(
        &store,
        &[
            ("ab", "a", "next", "b"),
            ("bc", "b", "next", "c"),
            ("ca", "c", "next", "a"),
        ],
    )
    .await;
    for direction in [Direction::Outgoing, Direction::Incoming, Direction::Both] {
        let request = TraverseRequest {
            direction,
            ..TraverseRequest::outgoing(10)
        };
        let hits = store.traverse("a", request).await.unwrap();
        let ids: BTreeSet<String> = hits.iter().map(|h| h.entity.id.clone()).collect();
        assert_eq!(hits.len(), 2, "{direction:?}: {hits:?}");
        assert_eq!(ids, BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    }
}

/// Every entity is listed once at its smallest depth; `Incoming` follows relationships
/// backwards and `Both` either way; a self-loop is harmless.
pub async fn traversal_takes_smallest_depth_and_direction(store: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b", "c", "d", "x"]).await;
    links(
        &store,
        &[
            ("ab", "a", "r", "b"),
            ("bc", "b", "r", "c"),
            ("cd", "c", "r", "d"),
            ("ad", "a", "r", "d"),
            ("xa", "x", "r", "a"),
            ("aa", "a", "r", "a"),
        ],
    )
    .await;
    let out = store
        .traverse("a", TraverseRequest::outgoing(5))
        .await
        .unwrap();
    assert_eq!(reached(&out), pairs(&[("b", 1), ("d", 1), ("c", 2)]));
    let incoming = TraverseRequest {
        direction: Direction::Incoming,
        ..TraverseRequest::outgoing(5)
    };
    let back = store.traverse("d", incoming).await.unwrap();
    assert_eq!(
        reached(&back),
        pairs(&[("a", 1), ("c", 1), ("b", 2), ("x", 2)])
    );
    assert_eq!(back[0].path, strings(&["d", "a"]));
    let both = TraverseRequest {
        direction: Direction::Both,
        ..TraverseRequest::outgoing(1)
    };
    let around = store.traverse("c", both).await.unwrap();
    assert_eq!(reached(&around), pairs(&[("b", 1), ("d", 1)]));
}

/// Relation type filters apply to traversals and to `relationships_of`; listings are ordered
/// by type, then id, in the requested direction.
pub async fn relation_type_filters(store: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b", "c", "d"]).await;
    links(
        &store,
        &[
            ("ab", "a", "knows", "b"),
            ("ac", "a", "works_at", "c"),
            ("bd", "b", "knows", "d"),
            ("cb", "c", "employs", "b"),
        ],
    )
    .await;
    let typed = |types: &[&str]| TraverseRequest {
        relation_types: Some(strings(types)),
        ..TraverseRequest::outgoing(5)
    };
    let knows = store.traverse("a", typed(&["knows"])).await.unwrap();
    assert_eq!(reached(&knows), pairs(&[("b", 1), ("d", 2)]));
    let work = store.traverse("a", typed(&["works_at"])).await.unwrap();
    assert_eq!(reached(&work), pairs(&[("c", 1)]));
    let both = store
        .traverse("a", typed(&["works_at", "employs"]))
        .await
        .unwrap();
    assert_eq!(reached(&both), pairs(&[("c", 1), ("b", 2)]));
    let none = store.traverse("a", typed(&["hates"])).await.unwrap();
    assert!(none.is_empty());

    let of = |id, direction, relation_type| {
        let store = store.clone();
        async move {
            let rels = store
                .relationships_of(id, direction, relation_type, None)
                .await
                .unwrap();
            rel_ids(&rels)
        }
    };
    assert_eq!(
        of("a", Direction::Outgoing, Some("knows")).await,
        strings(&["ab"])
    );
    assert_eq!(
        of("a", Direction::Outgoing, None).await,
        strings(&["ab", "ac"])
    );
    assert_eq!(
        of("a", Direction::Incoming, None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        of("b", Direction::Incoming, None).await,
        strings(&["cb", "ab"])
    );
    assert_eq!(
        of("b", Direction::Both, None).await,
        strings(&["cb", "ab", "bd"])
    );
    assert_eq!(
        of("b", Direction::Both, Some("knows")).await,
        strings(&["ab", "bd"])
    );
}

/// As-of traversal follows only relationships (and reaches only entities) valid at
/// `valid_at` and known at `known_at`.
pub async fn as_of_traversal_ignores_relationships_not_valid_then(store: Arc<dyn GraphStore>) {
    let now = OffsetDateTime::now_utc();
    entities(&store, &["a", "b", "c", "d"]).await;
    let during = |id, from, to, start: i64, end: Option<i64>| RelationshipInput {
        valid_from: Some(now - days(start)),
        valid_to: end.map(|e| now - days(e)),
        ..RelationshipInput::new(id, from, "r", to)
    };
    store
        .upsert_relationship(during("ab", "a", "b", 100, Some(50)))
        .await
        .unwrap();
    store
        .upsert_relationship(during("bd", "b", "d", 200, None))
        .await
        .unwrap();
    let known_before_ac = OffsetDateTime::now_utc();
    let ac = store
        .upsert_relationship(during("ac", "a", "c", 10, None))
        .await
        .unwrap();
    assert!(ac.time.recorded_at >= known_before_ac);

    let at = |as_of| TraverseRequest {
        as_of,
        ..TraverseRequest::outgoing(3)
    };
    let past = store
        .traverse("a", at(Some(AsOf::valid_at(now - days(75)))))
        .await
        .unwrap();
    assert_eq!(reached(&past), pairs(&[("b", 1), ("d", 2)]));
    let current = store.traverse("a", at(None)).await.unwrap();
    assert_eq!(reached(&current), pairs(&[("c", 1)]));
    let before_known = AsOf {
        valid_at: now,
        known_at: ac.time.recorded_at - Duration::nanoseconds(1),
    };
    let unknown_yet = store.traverse("a", at(Some(before_known))).await.unwrap();
    assert!(unknown_yet.is_empty(), "{unknown_yet:?}");
    let rels = store
        .relationships_of(
            "a",
            Direction::Outgoing,
            None,
            Some(AsOf::valid_at(now - days(75))),
        )
        .await
        .unwrap();
    assert_eq!(rel_ids(&rels), strings(&["ab"]));
    // An entity not valid at that time is not reached, nor traversed through.
    store.close_entity("b", now - days(60)).await.unwrap();
    let past = store
        .traverse("a", at(Some(AsOf::valid_at(now - days(55)))))
        .await
        .unwrap();
    assert!(past.is_empty(), "{past:?}");
}

/// Relationship updates merge properties into a new version; closing ends validity; the
/// history keeps both sides.
pub async fn relationship_versions_merge_and_close(store: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b"]).await;
    let year_ago = OffsetDateTime::now_utc() - days(365);
    let input = |p: Value| RelationshipInput {
        properties: props(p),
        valid_from: Some(year_ago),
        ..RelationshipInput::new("ab", "a", "knows", "b")
    };
    let v1 = store
        .upsert_relationship(input(json!({"since": 2019})))
        .await
        .unwrap();
    let v2 = store
        .upsert_relationship(input(json!({"strength": 0.5})))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(
        Value::Object(v2.properties.clone()),
        json!({"since": 2019, "strength": 0.5})
    );
    assert_eq!(
        store.get_relationship("ab").await.unwrap(),
        Some(v2.clone())
    );
    let end = OffsetDateTime::now_utc() - days(1);
    let v3 = store.close_relationship("ab", end).await.unwrap();
    assert_eq!((v3.version, v3.time.valid_to), (3, Some(end)));
    assert_eq!(store.get_relationship("ab").await.unwrap(), None);
    let old = store
        .get_relationship_as_of(
            "ab",
            AsOf {
                valid_at: end - days(1),
                known_at: v2.time.recorded_at,
            },
        )
        .await
        .unwrap();
    assert_eq!(old.map(|r| r.version), Some(2));
    let history = store.relationship_history("ab").await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let current = store
        .relationships_of("a", Direction::Outgoing, None, None)
        .await
        .unwrap();
    assert!(current.is_empty());
    let err = store.close_relationship("zz", end).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Listings filter by type and view, order by id, and page with an exact `next_after`.
pub async fn list_entities_filters_and_pages(store: Arc<dyn GraphStore>) {
    let now = OffsetDateTime::now_utc();
    for id in ["p1", "p2", "p3", "p4", "p5"] {
        store
            .upsert_entity(entity_during(id, "person", now - days(30), None))
            .await
            .unwrap();
    }
    for id in ["o1", "o2"] {
        store
            .upsert_entity(entity_during(id, "org", now - days(30), None))
            .await
            .unwrap();
    }
    store.close_entity("p3", now - days(10)).await.unwrap();

    let mut seen = Vec::new();
    let mut request = Some(PageRequest::first(2));
    while let Some(page_request) = request {
        let page = store
            .list_entities(Some("person"), None, page_request.clone())
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.push(page.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
        request = page_request.next(page.next_after.as_deref());
    }
    let expected = [vec!["p1", "p2"], vec!["p4", "p5"]];
    assert_eq!(seen, expected.map(|p| strings(&p)));

    let past = AsOf::valid_at(now - days(20));
    let persons_then = store
        .list_entities(Some("person"), Some(past), PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<&str> = persons_then.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(persons_then.next_after, None);
    assert_eq!(
        all_entity_ids(&store, None).await,
        strings(&["o1", "o2", "p1", "p2", "p4", "p5"])
    );
    assert!(
        all_entity_ids(&store, Some(AsOf::valid_at(now - days(40))))
            .await
            .is_empty()
    );
    let orgs = store
        .list_entities(Some("org"), None, PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!((orgs.items.len(), orgs.next_after), (2, None));
}

/// A relationship to a missing entity is `NotFound` and writes nothing; changing an
/// existing relationship's endpoints or type is `InvalidInput` and changes nothing.
pub async fn relationship_endpoint_rules(store: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b", "c"]).await;
    for (from, to) in [("a", "ghost"), ("ghost", "a")] {
        let err = store
            .upsert_relationship(RelationshipInput::new("r", from, "knows", to))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    assert_eq!(store.get_relationship("r").await.unwrap(), None);
    assert!(store.relationship_history("r").await.unwrap().is_empty());
    let around = store
        .relationships_of("a", Direction::Both, None, None)
        .await
        .unwrap();
    assert!(around.is_empty());

    links(&store, &[("ab", "a", "knows", "b")]).await;
    for (from, relation_type, to) in [
        ("a", "knows", "c"),
        ("c", "knows", "b"),
        ("a", "likes", "b"),
    ] {
        let err = store
            .upsert_relationship(RelationshipInput::new("ab", from, relation_type, to))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let history = store.relationship_history("ab").await.unwrap();
    assert_eq!(history.len(), 1);
    let hits = store
        .traverse("a", TraverseRequest::outgoing(2))
        .await
        .unwrap();
    assert_eq!(reached(&hits), pairs(&[("b", 1)]));
}

/// Empty or over-long ids and types, bad intervals, depths and page limits are
/// `InvalidInput` and change nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn GraphStore>) {
    let now = OffsetDateTime::now_utc();
    let kept = store
        .upsert_entity(entity_during("kept", "thing", now - days(2), None))
        .await
        .unwrap();
    let long = "x".repeat(257);
    let bad_entities = [
        EntityInput::new("", "thing", "empty id"),
        EntityInput::new(long.as_str(), "thing", "long id"),
        EntityInput::new("kept", "", "empty type"),
        EntityInput::new("kept", long.as_str(), "long type"),
        entity_during("kept", "thing", now, Some(now)),
        entity_during("kept", "thing", now, Some(now - days(1))),
        EntityInput {
            valid_to: Some(now - days(1)),
            ..EntityInput::new("kept", "thing", "ends before the default start")
        },
    ];
    for input in bad_entities {
        let err = store.upsert_entity(input.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{input:?}: {err}");
    }
    let err = store.close_entity("", now).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = store.get_entity("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let bad_rels = [
        RelationshipInput::new("", "kept", "r", "kept"),
        RelationshipInput::new("r", "", "r", "kept"),
        RelationshipInput::new("r", "kept", "", "kept"),
        RelationshipInput::new("r", "kept", "r", long.as_str()),
        RelationshipInput {
            valid_from: Some(now),
            valid_to: Some(now - days(1)),
            ..RelationshipInput::new("r", "kept", "r", "kept")
        },
    ];
    for input in bad_rels {
        let err = store.upsert_relationship(input.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{input:?}: {err}");
    }
    for depth in [0, 65] {
        let err = store
            .traverse("kept", TraverseRequest::outgoing(depth))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "depth {depth}");
    }
    for limit in [0, 1001] {
        let err = store
            .list_entities(None, None, PageRequest::first(limit))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "limit {limit}");
    }
    assert_eq!(store.entity_history("kept").await.unwrap(), vec![kept]);
    assert_eq!(all_entity_ids(&store, None).await, strings(&["kept"]));
    assert!(store.relationship_history("r").await.unwrap().is_empty());
}

/// 20 concurrent updates of one entity: 21 versions, each update's property kept, the
/// versions chained without gaps.
pub async fn concurrent_updates_lose_nothing(store: Arc<dyn GraphStore>) {
    store
        .upsert_entity(EntityInput::new("hot", "counter", "Hot"))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.spawn(async move {
            let input = EntityInput {
                properties: props(json!({ format!("k{i:02}"): i })),
                ..EntityInput::new("hot", "counter", "Hot")
            };
            store.upsert_entity(input).await.unwrap().version
        });
    }
    let mut versions: Vec<u64> = tasks.join_all().await;
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<u64>>());
    let history = store.entity_history("hot").await.unwrap();
    assert_eq!(history.len(), 21);
    assert_eq!(
        history.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=21).collect::<Vec<u64>>()
    );
    for pair in history.windows(2) {
        assert_eq!(pair[0].time.superseded_at, Some(pair[1].time.recorded_at));
        assert!(pair[1].properties.len() == pair[0].properties.len() + 1);
    }
    let current = store.get_entity("hot").await.unwrap().unwrap();
    let keys: Vec<String> = current.properties.keys().cloned().collect();
    let expected: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys, expected);
}

/// Ids containing `/` and `%` are kept apart from ids they could be confused with.
pub async fn ids_with_separators_stay_apart(store: Arc<dyn GraphStore>) {
    let ids = ["a", "a/b", "a%2Fb", "a%", "b"];
    entities(&store, &ids).await;
    links(
        &store,
        &[("x/y", "a", "t/u", "a/b"), ("x", "a/b", "t", "b")],
    )
    .await;
    for id in ids {
        let history = store.entity_history(id).await.unwrap();
        assert_eq!(history.len(), 1, "{id}");
        assert_eq!(history[0].id, id);
    }
    let hits = store
        .traverse("a", TraverseRequest::outgoing(3))
        .await
        .unwrap();
    assert_eq!(reached(&hits), pairs(&[("a/b", 1), ("b", 2)]));
    let rels = store
        .relationships_of("a/b", Direction::Both, Some("t/u"), None)
        .await
        .unwrap();
    assert_eq!(rel_ids(&rels), strings(&["x/y"]));
    let mut listed = all_entity_ids(&store, None).await;
    listed.sort();
    let mut expected = strings(&ids);
    expected.sort();
    assert_eq!(listed, expected);
}

/// Two tenants never see each other's entities, relationships, listings or traversals.
pub async fn tenants_are_isolated(store: Arc<dyn GraphStore>, other: Arc<dyn GraphStore>) {
    entities(&store, &["a", "b"]).await;
    links(&store, &[("ab", "a", "knows", "b")]).await;
    assert_eq!(other.get_entity("a").await.unwrap(), None);
    assert_eq!(other.get_relationship("ab").await.unwrap(), None);
    assert!(all_entity_ids(&other, None).await.is_empty());
    let err = other
        .upsert_relationship(RelationshipInput::new("ab", "a", "knows", "b"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let theirs = EntityInput {
        properties: props(json!({"tenant": "other"})),
        ..EntityInput::new("a", "node", "Other A")
    };
    let created = other.upsert_entity(theirs).await.unwrap();
    assert_eq!(created.version, 1);
    assert!(
        other
            .traverse("a", TraverseRequest::outgoing(3))
            .await
            .unwrap()
            .is_empty()
    );
    let mine = store.get_entity("a").await.unwrap().unwrap();
    assert_eq!((mine.version, mine.name.as_str()), (1, "A"));
    assert!(mine.properties.is_empty());
    let hits = store
        .traverse("a", TraverseRequest::outgoing(3))
        .await
        .unwrap();
    assert_eq!(reached(&hits), pairs(&[("b", 1)]));
}

/// Generic implementation: flipping any byte of any stored value that a current read uses
/// makes that read `Corruption`, never a panic or wrong data; restoring the byte heals it.
pub async fn corrupted_values_are_detected(
    store: Arc<dyn GraphStore>,
    backend: Arc<dyn StorageBackend>,
) {
    let entity: Entity = store
        .upsert_entity(EntityInput {
            properties: props(json!({"note": "naïve ☃", "n": 12345})),
            ..EntityInput::new("e", "thing", "Thing")
        })
        .await
        .unwrap();
    let stored = backend.scan_all("", 100).await.unwrap();
    let values: Vec<_> = stored.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert_eq!(values.len(), 2, "a pointer and one version: {stored:?}");
    for (key, value) in values {
        for i in 0..value.len() {
            let mut damaged = value.to_vec();
            damaged[i] ^= 0xFF;
            backend.set(key, Bytes::from(damaged)).await.unwrap();
            match store.get_entity("e").await {
                Err(err) => assert_eq!(err.kind(), ErrorKind::Corruption, "{key} byte {i}: {err}"),
                Ok(got) => panic!("{key} byte {i} flipped, read returned {got:?}"),
            }
        }
        backend.set(key, value.clone()).await.unwrap();
    }
    assert_eq!(store.get_entity("e").await.unwrap(), Some(entity));
}
