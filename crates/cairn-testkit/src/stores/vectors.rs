//! Conformance cases for [`VectorStore`].
//!
//! Contract cases take the store under test on a fresh tenant; [`tenants_are_isolated`] also
//! takes a store on a second tenant. Cases that inspect the generic implementation's stored
//! bytes take the backend instead.

use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind, StorageBackend, StorageBackendExt};
use cairn_stores::vectors::keys::VectorKey;
use cairn_stores::vectors::{MAX_DIMENSION, MAX_K, Metadata};
use cairn_stores::{GenericVectorStore, Metric, SearchRequest, VectorRecord, VectorStore};
use serde_json::json;

fn meta(value: serde_json::Value) -> Metadata {
    value.as_object().cloned().expect("metadata is an object")
}

fn record(id: &str, vector: &[f32], metadata: serde_json::Value) -> VectorRecord {
    VectorRecord {
        id: id.to_owned(),
        vector: vector.to_vec(),
        metadata: meta(metadata),
    }
}

async fn collection_with(
    store: &Arc<dyn VectorStore>,
    metric: Metric,
    vectors: &[(&str, &[f32])],
) -> &'static str {
    let dimension = vectors[0].1.len();
    store
        .create_collection("c", dimension, metric)
        .await
        .unwrap();
    let records = vectors
        .iter()
        .map(|(id, v)| record(id, v, json!({ "id": id })))
        .collect();
    store.upsert_batch("c", records).await.unwrap();
    "c"
}

async fn search_ids(store: &Arc<dyn VectorStore>, request: SearchRequest) -> Vec<(String, f32)> {
    store
        .search("c", request)
        .await
        .unwrap()
        .into_iter()
        .map(|hit| (hit.id, hit.score))
        .collect()
}

fn assert_hits(got: &[(String, f32)], want: &[(&str, f32)]) {
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    let want_ids: Vec<&str> = want.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, want_ids, "hits {got:?}");
    for ((_, score), (id, expected)) in got.iter().zip(want) {
        assert!(
            (score - expected).abs() < 1e-4,
            "{id}: score {score}, expected {expected}"
        );
    }
}

/// `search` under cosine: exact top-k, best (highest similarity) first, with metadata.
pub async fn cosine_top_k_is_exact(store: Arc<dyn VectorStore>) {
    let vectors: [(&str, &[f32]); 5] = [
        ("a", &[1.0, 0.0]),
        ("b", &[0.0, 1.0]),
        ("c", &[1.0, 1.0]),
        ("d", &[-1.0, 0.0]),
        ("e", &[2.0, 0.1]),
    ];
    collection_with(&store, Metric::Cosine, &vectors).await;
    let hits = store
        .search("c", SearchRequest::new(vec![3.0, 0.0], 3))
        .await
        .unwrap();
    let got: Vec<(String, f32)> = hits.iter().map(|h| (h.id.clone(), h.score)).collect();
    assert_hits(
        &got,
        &[
            ("a", 1.0),
            ("e", 2.0 / 4.01f32.sqrt()),
            ("c", 0.5f32.sqrt()),
        ],
    );
    assert_eq!(hits[0].metadata, meta(json!({ "id": "a" })));
    let all = search_ids(&store, SearchRequest::new(vec![1.0, 0.0], 10)).await;
    assert_hits(
        &all,
        &[
            ("a", 1.0),
            ("e", 2.0 / 4.01f32.sqrt()),
            ("c", 0.5f32.sqrt()),
            ("b", 0.0),
            ("d", -1.0),
        ],
    );
}

/// `search` under L2: scores are distances, smallest first; `min_score` is a maximum distance.
pub async fn l2_top_k_is_exact(store: Arc<dyn VectorStore>) {
    let vectors: [(&str, &[f32]); 4] = [
        ("a", &[0.0, 0.0]),
        ("b", &[3.0, 4.0]),
        ("c", &[1.0, 1.0]),
        ("d", &[-2.0, 0.0]),
    ];
    collection_with(&store, Metric::L2, &vectors).await;
    let got = search_ids(&store, SearchRequest::new(vec![0.0, 0.0], 3)).await;
    assert_hits(&got, &[("a", 0.0), ("c", 2.0f32.sqrt()), ("d", 2.0)]);
    let mut within = SearchRequest::new(vec![0.0, 0.0], 3);
    within.min_score = Some(1.5);
    let got = search_ids(&store, within).await;
    assert_hits(&got, &[("a", 0.0), ("c", 2.0f32.sqrt())]);
    let got = search_ids(&store, SearchRequest::new(vec![3.0, 4.0], 1)).await;
    assert_hits(&got, &[("b", 0.0)]);
}

/// `search` under dot: largest product first; equal scores are ordered by id; `min_score` is
/// a minimum.
pub async fn dot_top_k_is_exact_and_ties_order_by_id(store: Arc<dyn VectorStore>) {
    let vectors: [(&str, &[f32]); 4] = [
        ("d", &[2.0, 2.0, 2.0]),
        ("a", &[1.0, 2.0, 3.0]),
        ("b", &[-1.0, 0.0, 0.0]),
        ("c", &[0.0, 0.0, 10.0]),
    ];
    collection_with(&store, Metric::Dot, &vectors).await;
    let got = search_ids(&store, SearchRequest::new(vec![1.0, 1.0, 1.0], 3)).await;
    assert_hits(&got, &[("c", 10.0), ("a", 6.0), ("d", 6.0)]);
    let got = search_ids(&store, SearchRequest::new(vec![1.0, 1.0, 1.0], 2)).await;
    assert_hits(&got, &[("c", 10.0), ("a", 6.0)]);
    let mut above = SearchRequest::new(vec![1.0, 1.0, 1.0], 4);
    above.min_score = Some(0.0);
    let got = search_ids(&store, above).await;
    assert_hits(&got, &[("c", 10.0), ("a", 6.0), ("d", 6.0)]);
}

/// `search`: a filter that most vectors fail still yields `k` hits when `k` match.
pub async fn filters_never_starve_k(store: Arc<dyn VectorStore>) {
    store
        .create_collection("c", 2, Metric::Cosine)
        .await
        .unwrap();
    let mut records = Vec::new();
    for i in 0..190 {
        let v = [1.0, i as f32 * 0.001];
        records.push(record(
            &format!("noise-{i:03}"),
            &v,
            json!({"kind": "noise"}),
        ));
    }
    for i in 0..10 {
        let v = [i as f32 * 0.1, 1.0];
        let lang = if i % 2 == 0 { "en" } else { "de" };
        records.push(record(
            &format!("signal-{i}"),
            &v,
            json!({"kind": "signal", "lang": lang, "n": i}),
        ));
    }
    store.upsert_batch("c", records).await.unwrap();

    let mut request = SearchRequest::new(vec![1.0, 0.0], 5);
    request.filter = meta(json!({"kind": "signal"}));
    let hits = store.search("c", request).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        ["signal-9", "signal-8", "signal-7", "signal-6", "signal-5"]
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

    let mut both = SearchRequest::new(vec![1.0, 0.0], 4);
    both.filter = meta(json!({"kind": "signal", "lang": "en"}));
    let hits = store.search("c", both).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["signal-8", "signal-6", "signal-4", "signal-2"]);

    let mut few = SearchRequest::new(vec![1.0, 0.0], 50);
    few.filter = meta(json!({"n": 3}));
    let hits = store.search("c", few).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].metadata["lang"], "de");

    let mut none = SearchRequest::new(vec![1.0, 0.0], 5);
    none.filter = meta(json!({"kind": "missing"}));
    assert!(store.search("c", none).await.unwrap().is_empty());
}

/// `search` over more vectors than one scan page: exact results and count.
pub async fn search_spans_scan_pages(store: Arc<dyn VectorStore>) {
    store.create_collection("c", 2, Metric::L2).await.unwrap();
    let n = 10_050usize;
    let records = (0..n)
        .map(|i| record(&format!("v{i:05}"), &[i as f32, 0.0], json!({})))
        .collect();
    store.upsert_batch("c", records).await.unwrap();
    assert_eq!(store.count("c").await.unwrap(), n as u64);
    let got = search_ids(&store, SearchRequest::new(vec![10_049.2, 0.0], 3)).await;
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["v10049", "v10048", "v10047"]);
    let got = search_ids(&store, SearchRequest::new(vec![0.0, 0.0], 2)).await;
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["v00000", "v00001"]);
}

/// `upsert` replaces: get and search see the new vector and metadata, not the old.
pub async fn upsert_replaces(store: Arc<dyn VectorStore>) {
    store
        .create_collection("c", 2, Metric::Cosine)
        .await
        .unwrap();
    store
        .upsert("c", "a", vec![1.0, 0.0], meta(json!({"v": 1})))
        .await
        .unwrap();
    store
        .upsert("c", "b", vec![0.0, 1.0], meta(json!({"v": 1})))
        .await
        .unwrap();
    let first = store
        .search("c", SearchRequest::new(vec![1.0, 0.0], 1))
        .await
        .unwrap();
    assert_eq!(first[0].id, "a");

    store
        .upsert("c", "a", vec![-1.0, 0.0], meta(json!({"v": 2})))
        .await
        .unwrap();
    let got = search_ids(&store, SearchRequest::new(vec![1.0, 0.0], 5)).await;
    assert_hits(&got, &[("b", 0.0), ("a", -1.0)]);
    let a = store.get("c", "a").await.unwrap().expect("a exists");
    assert_eq!(a, record("a", &[-1.0, 0.0], json!({"v": 2})));
    assert_eq!(store.count("c").await.unwrap(), 2);

    let batch = vec![
        record("b", &[0.5, 0.5], json!({"v": 3})),
        record("b", &[1.0, 0.0], json!({"v": 4})),
    ];
    store.upsert_batch("c", batch).await.unwrap();
    let b = store.get("c", "b").await.unwrap().expect("b exists");
    assert_eq!(b, record("b", &[1.0, 0.0], json!({"v": 4})));
    assert_eq!(store.count("c").await.unwrap(), 2);
}

/// `delete` makes a vector invisible to get, search and count.
pub async fn delete_makes_vector_invisible(store: Arc<dyn VectorStore>) {
    let vectors: [(&str, &[f32]); 3] = [("a", &[1.0, 0.0]), ("b", &[0.0, 1.0]), ("c", &[1.0, 1.0])];
    collection_with(&store, Metric::Dot, &vectors).await;
    assert!(store.delete("c", "a").await.unwrap());
    assert!(!store.delete("c", "a").await.unwrap());
    assert_eq!(store.get("c", "a").await.unwrap(), None);
    let got = search_ids(&store, SearchRequest::new(vec![1.0, 0.0], 10)).await;
    assert_hits(&got, &[("c", 1.0), ("b", 0.0)]);
    assert_eq!(store.count("c").await.unwrap(), 2);
}

/// `create_collection`: idempotent with equal parameters, `Conflict` with others; collections
/// can be read and deleted, and a deleted collection's vectors never reappear.
pub async fn collections_lifecycle(store: Arc<dyn VectorStore>) {
    let info = store
        .create_collection("docs", 3, Metric::L2)
        .await
        .unwrap();
    assert_eq!((info.name.as_str(), info.dimension), ("docs", 3));
    let again = store
        .create_collection("docs", 3, Metric::L2)
        .await
        .unwrap();
    assert_eq!(again, info);
    assert_eq!(store.collection("docs").await.unwrap(), Some(info));
    for (dim, metric) in [(4, Metric::L2), (3, Metric::Cosine)] {
        let err = store
            .create_collection("docs", dim, metric)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }
    store
        .upsert("docs", "x", vec![1.0, 2.0, 3.0], Metadata::new())
        .await
        .unwrap();
    assert!(store.delete_collection("docs").await.unwrap());
    assert!(!store.delete_collection("docs").await.unwrap());
    assert_eq!(store.collection("docs").await.unwrap(), None);
    let err = store.count("docs").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    store
        .create_collection("docs", 2, Metric::Dot)
        .await
        .unwrap();
    assert_eq!(store.count("docs").await.unwrap(), 0);
    assert_eq!(store.get("docs", "x").await.unwrap(), None);
    let max = store
        .create_collection("wide", MAX_DIMENSION, Metric::Cosine)
        .await
        .unwrap();
    assert_eq!(max.dimension, MAX_DIMENSION);
}

/// Bad input is `InvalidInput` (a missing collection `NotFound`) and changes nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn VectorStore>) {
    for (name, dim) in [("", 2), ("n", 0), ("n", MAX_DIMENSION + 1)] {
        let err = store
            .create_collection(name, dim, Metric::Cosine)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?} {dim}: {err}");
    }
    let long = "x".repeat(257);
    assert_eq!(
        store
            .create_collection(&long, 2, Metric::L2)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    store
        .create_collection("c", 2, Metric::Cosine)
        .await
        .unwrap();
    store
        .upsert("c", "keep", vec![1.0, 0.0], meta(json!({"k": 1})))
        .await
        .unwrap();

    let bad_vectors: [(&str, Vec<f32>); 8] = [
        ("too short", vec![1.0]),
        ("too long", vec![1.0, 0.0, 0.0]),
        ("nan", vec![f32::NAN, 1.0]),
        ("inf", vec![1.0, f32::INFINITY]),
        ("-inf", vec![f32::NEG_INFINITY, 1.0]),
        ("zero under cosine", vec![0.0, 0.0]),
        ("vanishing under cosine", vec![1e-30, -1e-30]),
        ("overflowing length", vec![1e30, 1e30]),
    ];
    for (what, vector) in &bad_vectors {
        let err = store
            .upsert("c", "keep", vector.clone(), Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        let err = store
            .search("c", SearchRequest::new(vector.clone(), 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "query {what}: {err}");
    }
    for id in ["", long.as_str()] {
        let err = store
            .upsert("c", id, vec![1.0, 0.0], Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "id {id:?}");
    }
    let batch = vec![
        record("new-1", &[0.0, 1.0], json!({})),
        record("new-2", &[f32::NAN, 1.0], json!({})),
    ];
    let err = store.upsert_batch("c", batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    for k in [0, MAX_K + 1] {
        let err = store
            .search("c", SearchRequest::new(vec![1.0, 0.0], k))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "k = {k}");
    }
    let mut nan_threshold = SearchRequest::new(vec![1.0, 0.0], 1);
    nan_threshold.min_score = Some(f32::NAN);
    let err = store.search("c", nan_threshold).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let missing = [
        store
            .upsert("nope", "a", vec![1.0, 0.0], Metadata::new())
            .await
            .unwrap_err(),
        store.get("nope", "a").await.unwrap_err(),
        store.delete("nope", "a").await.unwrap_err(),
        store.count("nope").await.unwrap_err(),
        store
            .search("nope", SearchRequest::new(vec![1.0, 0.0], 1))
            .await
            .unwrap_err(),
    ];
    for err in missing {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }

    assert_eq!(store.count("c").await.unwrap(), 1);
    assert_eq!(
        store.get("c", "keep").await.unwrap(),
        Some(record("keep", &[1.0, 0.0], json!({"k": 1})))
    );
    assert_eq!(store.collection("nope").await.unwrap(), None);
    store.create_collection("l2", 2, Metric::L2).await.unwrap();
    store
        .upsert("l2", "zero", vec![0.0, 0.0], Metadata::new())
        .await
        .unwrap();
    let mut negative = SearchRequest::new(vec![0.0, 0.0], 1);
    negative.min_score = Some(-1.0);
    let err = store.search("l2", negative).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// Ids and names with `/`, `%` and non-ASCII text stay distinct and round-trip exactly.
pub async fn hostile_ids_round_trip(store: Arc<dyn VectorStore>) {
    for name in ["a/b", "a", "a%2Fb"] {
        store.create_collection(name, 2, Metric::Dot).await.unwrap();
    }
    let ids = ["x/y", "x%2Fy", "x", "ü'; DROP TABLE kv; --"];
    for (i, id) in ids.iter().enumerate() {
        store
            .upsert("a/b", id, vec![i as f32, 1.0], Metadata::new())
            .await
            .unwrap();
    }
    assert_eq!(store.count("a/b").await.unwrap(), 4);
    assert_eq!(store.count("a").await.unwrap(), 0);
    assert_eq!(store.count("a%2Fb").await.unwrap(), 0);
    let got = search_ids_in(&store, "a/b", vec![1.0, 0.0], 4).await;
    assert_eq!(got, ["ü'; DROP TABLE kv; --", "x", "x%2Fy", "x/y"]);
    let x = store.get("a/b", "x/y").await.unwrap().expect("x/y exists");
    assert_eq!(x.vector, vec![0.0, 1.0]);
}

async fn search_ids_in(
    store: &Arc<dyn VectorStore>,
    collection: &str,
    query: Vec<f32>,
    k: usize,
) -> Vec<String> {
    store
        .search(collection, SearchRequest::new(query, k))
        .await
        .unwrap()
        .into_iter()
        .map(|hit| hit.id)
        .collect()
}

/// Concurrent upserts of distinct ids all land.
pub async fn concurrent_upserts_all_land(store: Arc<dyn VectorStore>) {
    store.create_collection("c", 2, Metric::L2).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .upsert("c", &format!("v{i}"), vec![i as f32, 0.0], Metadata::new())
                    .await
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap().unwrap();
    }
    assert_eq!(store.count("c").await.unwrap(), 50);
}

/// A deterministic pseudo-random vector of `dimension` components in `[-1, 1)`.
fn pseudo_vector(seed: u64, dimension: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..dimension)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

async fn nearest(store: &Arc<dyn VectorStore>, query: Vec<f32>, k: usize) -> Vec<String> {
    search_ids_in(store, "c", query, k).await
}

/// A vector is found by a search issued right after its upsert returned, every time, while
/// the collection keeps growing (an approximate store seals in the background meanwhile).
pub async fn insert_then_search_sees_it(store: Arc<dyn VectorStore>) {
    store
        .create_collection("c", 16, Metric::Cosine)
        .await
        .unwrap();
    for i in 0..400u64 {
        let vector = pseudo_vector(i, 16);
        let id = format!("v{i}");
        store
            .upsert("c", &id, vector.clone(), meta(json!({ "i": i })))
            .await
            .unwrap();
        let hits = store
            .search("c", SearchRequest::new(vector, 1))
            .await
            .unwrap();
        assert_eq!(hits.len(), 1, "after {id}");
        assert_eq!(hits[0].id, id);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
        assert_eq!(hits[0].metadata, meta(json!({ "i": i })));
    }
    assert_eq!(store.count("c").await.unwrap(), 400);
}

/// A deleted vector never comes back from a search issued after the delete returned, not even
/// when the query is the deleted vector itself.
pub async fn delete_then_search_never_returns_it(store: Arc<dyn VectorStore>) {
    store.create_collection("c", 16, Metric::L2).await.unwrap();
    let records = (0..600u64)
        .map(|i| record(&format!("v{i}"), &pseudo_vector(i, 16), json!({})))
        .collect();
    store.upsert_batch("c", records).await.unwrap();
    for i in (0..600u64).step_by(3) {
        let id = format!("v{i}");
        assert!(store.delete("c", &id).await.unwrap());
        let hits = nearest(&store, pseudo_vector(i, 16), 10).await;
        assert_eq!(hits.len(), 10);
        assert!(!hits.contains(&id), "{id} in {hits:?}");
    }
    assert_eq!(store.count("c").await.unwrap(), 400);
    for i in 0..600u64 {
        let kept = store.get("c", &format!("v{i}")).await.unwrap().is_some();
        assert_eq!(kept, i % 3 != 0, "v{i}");
    }
}

/// Upserting an existing id moves its vector: searches find it at the new place only, with
/// the new metadata.
pub async fn update_moves_a_vector(store: Arc<dyn VectorStore>) {
    store
        .create_collection("c", 16, Metric::Cosine)
        .await
        .unwrap();
    let records = (0..300u64)
        .map(|i| record(&format!("v{i}"), &pseudo_vector(i, 16), json!({"v": 1})))
        .collect();
    store.upsert_batch("c", records).await.unwrap();
    let far: Vec<f32> = (0..16).map(|d| if d == 0 { 50.0 } else { 0.0 }).collect();
    let old = pseudo_vector(42, 16);
    let before = nearest(&store, old.clone(), 1).await;
    assert_eq!(before, ["v42"]);
    store
        .upsert("c", "v42", far.clone(), meta(json!({"v": 2})))
        .await
        .unwrap();
    let hits = store.search("c", SearchRequest::new(far, 1)).await.unwrap();
    assert_eq!(hits[0].id, "v42");
    assert_eq!(hits[0].metadata, meta(json!({"v": 2})));
    let mut at_old = SearchRequest::new(old, 5);
    at_old.filter = meta(json!({"v": 1}));
    let ids: Vec<String> = store
        .search("c", at_old)
        .await
        .unwrap()
        .into_iter()
        .map(|hit| hit.id)
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(!ids.contains(&"v42".to_owned()), "{ids:?}");
    assert_eq!(store.count("c").await.unwrap(), 300);
}

/// Many tasks insert, search and delete at once: each sees its own acknowledged inserts and
/// never its own acknowledged deletes, and the end state is exactly the surviving ids.
pub async fn concurrent_insert_search_delete(store: Arc<dyn VectorStore>) {
    store
        .create_collection("c", 16, Metric::Cosine)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..60u64 {
                    let seed = task * 1_000 + i;
                    let id = format!("t{task}-{i}");
                    let vector = pseudo_vector(seed, 16);
                    store
                        .upsert("c", &id, vector.clone(), meta(json!({ "task": task })))
                        .await
                        .unwrap();
                    let hits = nearest(&store, vector.clone(), 3).await;
                    assert_eq!(hits.first(), Some(&id), "insert of {id} not seen");
                    if i % 2 == 1 {
                        assert!(store.delete("c", &id).await.unwrap());
                        let hits = nearest(&store, vector, 10).await;
                        assert!(!hits.contains(&id), "deleted {id} returned");
                    }
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    assert_eq!(store.count("c").await.unwrap(), 8 * 30);
    for task in 0..8 {
        for i in 0..60 {
            let kept = store.get("c", &format!("t{task}-{i}")).await.unwrap();
            assert_eq!(kept.is_some(), i % 2 == 0, "t{task}-{i}");
        }
    }
}

/// A vector of the wrong dimension or with NaN is rejected with `InvalidInput` in every write
/// and query path of a populated collection, and nothing changes.
pub async fn dimension_mismatch_and_nan_are_rejected(store: Arc<dyn VectorStore>) {
    store.create_collection("c", 16, Metric::L2).await.unwrap();
    let records = (0..200u64)
        .map(|i| record(&format!("v{i}"), &pseudo_vector(i, 16), json!({})))
        .collect();
    store.upsert_batch("c", records).await.unwrap();
    let mut nan = pseudo_vector(3, 16);
    nan[9] = f32::NAN;
    for (what, vector) in [
        ("short", pseudo_vector(1, 15)),
        ("long", pseudo_vector(1, 17)),
        ("nan", nan),
    ] {
        let err = store
            .upsert("c", "v1", vector.clone(), Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        let batch = vec![
            record("fresh", &pseudo_vector(9, 16), json!({})),
            record("v2", &vector, json!({})),
        ];
        let err = store.upsert_batch("c", batch).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        for exact in [false, true] {
            let mut request = SearchRequest::new(vector.clone(), 3);
            request.exact = exact;
            let err = store.search("c", request).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        }
    }
    assert_eq!(store.count("c").await.unwrap(), 200);
    assert_eq!(store.get("c", "fresh").await.unwrap(), None);
    let v1 = store.get("c", "v1").await.unwrap().expect("v1 kept");
    assert_eq!(v1.vector, pseudo_vector(1, 16));
    assert_eq!(nearest(&store, pseudo_vector(1, 16), 1).await, ["v1"]);
}

/// Tenants never see each other's collections or vectors.
pub async fn tenants_are_isolated(store: Arc<dyn VectorStore>, other: Arc<dyn VectorStore>) {
    store
        .create_collection("docs", 2, Metric::Cosine)
        .await
        .unwrap();
    store
        .upsert("docs", "mine", vec![1.0, 0.0], Metadata::new())
        .await
        .unwrap();
    assert_eq!(other.collection("docs").await.unwrap(), None);
    assert_eq!(
        other.count("docs").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    other
        .create_collection("docs", 3, Metric::L2)
        .await
        .unwrap();
    other
        .upsert("docs", "theirs", vec![1.0, 0.0, 0.0], Metadata::new())
        .await
        .unwrap();
    assert_eq!(
        search_ids_in(&store, "docs", vec![1.0, 0.0], 10).await,
        ["mine"]
    );
    assert_eq!(
        search_ids_in(&other, "docs", vec![1.0, 0.0, 0.0], 10).await,
        ["theirs"]
    );
    assert_eq!(other.get("docs", "mine").await.unwrap(), None);
    assert!(other.delete_collection("docs").await.unwrap());
    assert_eq!(store.count("docs").await.unwrap(), 1);
}

/// Generic implementation: vectors are stored as binary (version byte, checksum, dimension,
/// little-endian `f32`s, metadata JSON), not as JSON arrays.
pub async fn stored_vectors_are_binary(backend: Arc<dyn StorageBackend>) {
    let store = GenericVectorStore::new(backend.clone());
    store.create_collection("c", 3, Metric::Dot).await.unwrap();
    store
        .upsert("c", "a", vec![1.0, -2.0, 0.5], meta(json!({"k": "v"})))
        .await
        .unwrap();
    let entries = backend
        .scan_all(&VectorKey::all_vectors_prefix(), 100)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    let value = &entries[0].1;
    let json = br#"{"k":"v"}"#;
    assert_eq!(value.len(), 1 + 4 + 4 + 12 + json.len());
    assert_eq!(value[0], 1, "format version");
    assert_eq!(&value[5..9], &3u32.to_le_bytes());
    assert_eq!(&value[9..13], &1.0f32.to_le_bytes());
    assert_eq!(&value[13..17], &(-2.0f32).to_le_bytes());
    assert_eq!(&value[21..], json);
}

/// Generic implementation: a damaged stored vector is `Corruption` for get and search, never
/// a panic or a wrong score; undamaged vectors still read.
pub async fn corrupted_vector_is_corruption(backend: Arc<dyn StorageBackend>) {
    let store = GenericVectorStore::new(backend.clone());
    store
        .create_collection("c", 3, Metric::Cosine)
        .await
        .unwrap();
    for (id, v) in [("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0])] {
        store
            .upsert("c", id, v.to_vec(), Metadata::new())
            .await
            .unwrap();
    }
    let entries = backend
        .scan_all(&VectorKey::all_vectors_prefix(), 100)
        .await
        .unwrap();
    let (key_a, value_a) = entries
        .iter()
        .find(|(key, _)| key.as_str().ends_with("/a"))
        .expect("a is stored")
        .clone();
    let damages: [Bytes; 4] = [
        flip(&value_a, 11),
        flip(&value_a, 0),
        value_a.slice(..value_a.len() - 3),
        Bytes::new(),
    ];
    for damaged in damages {
        backend.set(&key_a, damaged.clone()).await.unwrap();
        let err = store.get("c", "a").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{damaged:?}: {err}");
        let err = store
            .search("c", SearchRequest::new(vec![0.0, 1.0, 0.0], 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{damaged:?}: {err}");
        assert_eq!(store.get("c", "b").await.unwrap().unwrap().vector[1], 1.0);
    }
    backend.set(&key_a, value_a).await.unwrap();
    assert_eq!(store.get("c", "a").await.unwrap().unwrap().vector[0], 1.0);
}

fn flip(value: &Bytes, at: usize) -> Bytes {
    let mut bytes = value.to_vec();
    bytes[at] ^= 0x01;
    Bytes::from(bytes)
}

/// Expands to one `#[tokio::test]` per case of the vectors suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn VectorStore>, Arc<dyn VectorStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! vectors_suite {
    ($factory:path) => {
        $crate::__store_cases!(store vectors, $factory;
            cosine_top_k_is_exact,
            l2_top_k_is_exact,
            dot_top_k_is_exact_and_ties_order_by_id,
            filters_never_starve_k,
            search_spans_scan_pages,
            upsert_replaces,
            delete_makes_vector_invisible,
            collections_lifecycle,
            bad_input_is_rejected_and_changes_nothing,
            hostile_ids_round_trip,
            concurrent_upserts_all_land,
            insert_then_search_sees_it,
            delete_then_search_never_returns_it,
            update_moves_a_vector,
            concurrent_insert_search_delete,
            dimension_mismatch_and_nan_are_rejected,
        );
        $crate::__store_cases!(pair vectors, $factory; tenants_are_isolated);
    };
}

/// Runs [`vectors_suite!`](crate::vectors_suite) on `GenericVectorStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! vectors_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(vectors, vectors_suite, VectorStore, GenericVectorStore, $backend;
            store_and_backend: [];
            backend: [stored_vectors_are_binary, corrupted_vector_is_corruption]);
    };
}
