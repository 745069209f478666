//! The HNSW vector engine as the registry builds it: the whole vector suite over memory and
//! over sled, the engine shared per tenant, persisted segments reused on reopen and rebuilt
//! when damaged, and a recall sanity check.

#![cfg(feature = "sled")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_core::{Bytes, Key, StorageBackend, StorageBackendExt, StorageBackendType, TenantId};
use cairn_registry::{Component, Storage, TenantStorage, from_toml};
use cairn_stores::vectors::Metadata;
use cairn_stores::{HnswVectorStore, Metric, SearchRequest, VectorRecord, VectorStore};

/// Segments are sealed from 32 buffered writes, so the suite runs through graphs and merges.
const SEAL_THRESHOLD: usize = 32;

async fn open(vector_section: &str, data: &Path) -> Storage {
    let config = from_toml(&format!(
        r#"
        [storage]
        backend = "memory"
        path = "{}"
        [storage.sled]
        temporary = true
        [storage.vector_embeddings]
        backend = "hnsw"
        seal_threshold = {SEAL_THRESHOLD}
        {vector_section}
        "#,
        data.display()
    ))
    .unwrap();
    Storage::open(&config).await.unwrap()
}

fn two_tenants(storage: &Storage) -> (Arc<dyn VectorStore>, Arc<dyn VectorStore>) {
    let tenant = |name: &str| storage.tenant(&TenantId::new(name).unwrap());
    (tenant("t").vectors(), tenant("other").vectors())
}

fn scratch_dir() -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "cairn-hnsw-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

async fn memory_engines() -> (Arc<dyn VectorStore>, Arc<dyn VectorStore>) {
    let storage = open("", &scratch_dir()).await;
    two_tenants(&storage)
}

async fn sled_engines() -> (Arc<dyn VectorStore>, Arc<dyn VectorStore>) {
    let dir = scratch_dir();
    let storage = open(&format!("path = \"{}\"", dir.join("hnsw").display()), &dir).await;
    let (store, other) = two_tenants(&storage);
    let backend = storage
        .default_tenant()
        .backend(Component::VectorEmbeddings);
    assert_eq!(backend.backend_type(), StorageBackendType::Sled);
    (store, other)
}

mod on_memory {
    cairn_testkit::vectors_suite!(super::memory_engines);
}

mod on_sled {
    cairn_testkit::vectors_suite!(super::sled_engines);
}

fn pseudo_vector(seed: u64, dimension: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
    (0..dimension)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2_000) as f32 / 1_000.0 - 1.0
        })
        .collect()
}

fn records(range: std::ops::Range<u64>, dimension: usize) -> Vec<VectorRecord> {
    range
        .map(|i| VectorRecord {
            id: format!("v{i}"),
            vector: pseudo_vector(i, dimension),
            metadata: Metadata::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handle_of_a_tenant_shares_one_engine() {
    let storage = open("", &scratch_dir()).await;
    let acme = TenantId::new("acme").unwrap();
    let first = storage.tenant(&acme).vectors();
    let again = storage.tenant(&acme).vectors();
    let cloned: TenantStorage = storage.tenant(&acme).clone();
    assert!(Arc::ptr_eq(&first, &again));
    assert!(Arc::ptr_eq(&first, &cloned.vectors()));
    let other = storage.tenant(&TenantId::new("other").unwrap()).vectors();
    assert!(!Arc::ptr_eq(&first, &other));
    first.create_collection("c", 4, Metric::L2).await.unwrap();
    first
        .upsert("c", "a", vec![1.0, 2.0, 3.0, 4.0], Metadata::new())
        .await
        .unwrap();
    assert_eq!(again.count("c").await.unwrap(), 1);
}

/// The manifest keys of every persisted segment.
async fn manifests(backend: &Arc<dyn StorageBackend>) -> Vec<Key> {
    backend
        .scan_all("vec/s/", 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.as_str().ends_with("/m"))
        .collect()
}

fn engine_on(backend: Arc<dyn StorageBackend>) -> HnswVectorStore {
    let params = cairn_stores::HnswParams {
        seal_threshold: SEAL_THRESHOLD,
        ..Default::default()
    };
    HnswVectorStore::new(backend, params).unwrap()
}

async fn sled_at(dir: &Path) -> Arc<dyn StorageBackend> {
    Arc::new(
        cairn_sled::SledBackend::open(cairn_sled::SledConfig::new(dir))
            .await
            .unwrap(),
    )
}

fn tag() -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert("tag".to_owned(), "x".into());
    metadata
}

async fn top_ids(store: &HnswVectorStore, query: Vec<f32>, k: usize, exact: bool) -> Vec<String> {
    let mut request = SearchRequest::new(query, k);
    request.exact = exact;
    store
        .search("c", request)
        .await
        .unwrap()
        .into_iter()
        .map(|hit| hit.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_seal_loads_the_persisted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let store = engine_on(sled_at(dir.path()).await);
        store
            .create_collection("c", 8, Metric::Cosine)
            .await
            .unwrap();
        store.upsert_batch("c", records(0..300, 8)).await.unwrap();
        for i in (0..300).step_by(10) {
            store.delete("c", &format!("v{i}")).await.unwrap();
        }
        store
            .upsert("c", "tagged", pseudo_vector(777, 8), tag())
            .await
            .unwrap();
        store.wait_sealed().await.unwrap();
        top_ids(&store, pseudo_vector(5, 8), 10, false).await
    };
    let backend = sled_at(dir.path()).await;
    let sealed = manifests(&backend).await;
    assert!(!sealed.is_empty());
    let store = engine_on(backend.clone());
    assert_eq!(store.count("c").await.unwrap(), 271);
    let mut tagged = SearchRequest::new(pseudo_vector(1, 8), 5);
    tagged.filter = tag();
    let hits = store.search("c", tagged).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].id.as_str(), &hits[0].metadata), ("tagged", &tag()));
    assert_eq!(
        top_ids(&store, pseudo_vector(5, 8), 10, false).await,
        before
    );
    assert!(
        !top_ids(&store, pseudo_vector(10, 8), 10, false)
            .await
            .contains(&"v10".to_owned())
    );
    store.wait_sealed().await.unwrap();
    // Nothing was rebuilt: the loaded segments are the persisted ones.
    assert_eq!(manifests(&backend).await, sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_is_rebuilt_from_the_vectors() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine_on(sled_at(dir.path()).await);
        store.create_collection("c", 8, Metric::L2).await.unwrap();
        store.upsert_batch("c", records(0..200, 8)).await.unwrap();
        store.wait_sealed().await.unwrap();
    }
    let backend = sled_at(dir.path()).await;
    let sealed = manifests(&backend).await;
    assert_eq!(sealed.len(), 1);
    let chunks: Vec<(Key, Bytes)> = backend
        .scan_all("vec/s/", 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|(key, _)| !key.as_str().ends_with("/m"))
        .collect();
    let (key, value) = &chunks[0];
    let mut damaged = value.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    backend.set(key, Bytes::from(damaged)).await.unwrap();

    let store = engine_on(backend.clone());
    for i in [0u64, 77, 199] {
        let ids = top_ids(&store, pseudo_vector(i, 8), 1, false).await;
        assert_eq!(ids, [format!("v{i}")]);
    }
    store.wait_sealed().await.unwrap();
    let rebuilt = manifests(&backend).await;
    assert_eq!(rebuilt.len(), 1);
    assert_ne!(rebuilt, sealed, "the damaged segment was replaced");
    assert_eq!(store.count("c").await.unwrap(), 200);
    let exact = top_ids(&store, pseudo_vector(3, 8), 10, true).await;
    assert_eq!(top_ids(&store, pseudo_vector(3, 8), 10, false).await, exact);
}

async fn recall_at_10(metric: Metric) -> f64 {
    let backend: Arc<dyn StorageBackend> = Arc::new(cairn_memory::MemoryBackend::new());
    let store = HnswVectorStore::new(backend, cairn_stores::HnswParams::default()).unwrap();
    store.create_collection("c", 32, metric).await.unwrap();
    store
        .upsert_batch("c", records(0..3_000, 32))
        .await
        .unwrap();
    store.wait_sealed().await.unwrap();
    let (mut found, mut wanted) = (0usize, 0usize);
    for q in 10_000..10_050u64 {
        let query = pseudo_vector(q, 32);
        let exact = top_ids(&store, query.clone(), 10, true).await;
        let approximate = top_ids(&store, query, 10, false).await;
        wanted += exact.len();
        found += approximate.iter().filter(|id| exact.contains(id)).count();
    }
    found as f64 / wanted as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_at_10_on_a_few_thousand_vectors() {
    for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
        let recall = recall_at_10(metric).await;
        assert!(recall >= 0.95, "{metric:?}: recall@10 {recall}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnsw_on_the_shared_sled_path_reuses_the_shared_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = from_toml(&format!(
        r#"
        [storage]
        backend = "sled"
        path = "{}"
        [storage.vector_embeddings]
        backend = "hnsw"
        path = "{}"
        "#,
        dir.path().display(),
        dir.path().join("sled").display()
    ))
    .unwrap();
    let storage = Storage::open(&config).await.unwrap();
    let tenant = storage.default_tenant();
    let key = Key::new("probe").unwrap();
    tenant
        .backend(Component::EventLog)
        .set(&key, Bytes::from_static(b"shared"))
        .await
        .unwrap();
    let vectors_kv = tenant.backend(Component::VectorEmbeddings);
    assert_eq!(vectors_kv.backend_type(), StorageBackendType::Sled);
    assert_eq!(
        vectors_kv.get(&key).await.unwrap(),
        Some(Bytes::from_static(b"shared"))
    );
}

/// Writers insert and delete while readers search, with seals and merges running: a reader
/// never gets an id whose delete was acknowledged before its search started, and always finds
/// a vector whose insert was acknowledged (and not deleted) before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_during_seals_see_acknowledged_writes_across_tasks() {
    use std::collections::HashSet;
    use std::sync::Mutex;

    let store: Arc<dyn VectorStore> =
        Arc::new(engine_on(Arc::new(cairn_memory::MemoryBackend::new())));
    store
        .create_collection("c", 16, Metric::Cosine)
        .await
        .unwrap();
    let deleted = Arc::new(Mutex::new(HashSet::<String>::new()));
    let live = Arc::new(Mutex::new(Vec::<u64>::new()));
    let writers: Vec<_> = (0..4u64)
        .map(|task| {
            let (store, deleted, live) = (store.clone(), deleted.clone(), live.clone());
            tokio::spawn(async move {
                for i in 0..150u64 {
                    let seed = task * 10_000 + i;
                    let id = format!("v{seed}");
                    store
                        .upsert("c", &id, pseudo_vector(seed, 16), Metadata::new())
                        .await
                        .unwrap();
                    if i % 2 == 1 {
                        store.delete("c", &id).await.unwrap();
                        deleted.lock().unwrap().insert(id);
                    } else {
                        live.lock().unwrap().push(seed);
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|reader| {
            let (store, deleted, live) = (store.clone(), deleted.clone(), live.clone());
            tokio::spawn(async move {
                for round in 0..150u64 {
                    let gone = deleted.lock().unwrap().clone();
                    let known = live.lock().unwrap().last().copied();
                    let query = pseudo_vector(99_000 + reader * 1_000 + round, 16);
                    let hits = store
                        .search("c", SearchRequest::new(query, 20))
                        .await
                        .unwrap();
                    for hit in &hits {
                        assert!(!gone.contains(&hit.id), "deleted {} returned", hit.id);
                    }
                    if let Some(seed) = known {
                        let hits = store
                            .search("c", SearchRequest::new(pseudo_vector(seed, 16), 1))
                            .await
                            .unwrap();
                        assert_eq!(hits[0].id, format!("v{seed}"));
                    }
                }
            })
        })
        .collect();
    for task in futures::future::join_all(writers.into_iter().chain(readers)).await {
        task.unwrap();
    }
    assert_eq!(store.count("c").await.unwrap(), 4 * 75);
}
