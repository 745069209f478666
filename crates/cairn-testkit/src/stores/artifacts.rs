//! Conformance cases for [`ArtifactStore`].
//!
//! Contract cases take the store under test on a fresh tenant; [`tenants_are_isolated`] also
//! takes a store on a second tenant. Cases that inspect the generic implementation's stored
//! values take the backend instead.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind, Key, StorageBackend};
use cairn_stores::artifacts::keys::ArtifactKey;
use cairn_stores::artifacts::{ChunkStream, DEFAULT_CHUNK_SIZE};
use cairn_stores::{ArtifactStore, GenericArtifactStore, PutOptions};
use futures::StreamExt;
use serde_json::json;

/// BLAKE3 of `hello world`.
const HELLO_HASH: &str = "d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24";

/// BLAKE3 of the empty input.
const EMPTY_HASH: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

fn text(content_type: &str, metadata: serde_json::Value) -> PutOptions {
    PutOptions {
        content_type: content_type.to_owned(),
        metadata: metadata
            .as_object()
            .cloned()
            .expect("metadata is an object"),
    }
}

/// Deterministic content of `len` bytes that does not repeat with any short period.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn hex(content: &[u8]) -> String {
    blake3::hash(content).to_hex().to_string()
}

fn pieces(content: &Bytes, size: usize) -> ChunkStream<'static> {
    let parts: Vec<cairn_core::Result<Bytes>> = (0..content.len())
        .step_by(size)
        .map(|start| Ok(content.slice(start..(start + size).min(content.len()))))
        .collect();
    futures::stream::iter(parts).boxed()
}

async fn collect_chunks(store: &Arc<dyn ArtifactStore>, hash: &str) -> Vec<Bytes> {
    let reader = store.open(hash).await.unwrap().expect("artifact exists");
    reader
        .chunks
        .map(|chunk| chunk.expect("chunk reads"))
        .collect()
        .await
}

/// `put`/`get`/`stat`/`exists`: content round-trips under its BLAKE3 hash with its type and
/// metadata; absent hashes are `None`/`false`.
pub async fn put_get_round_trips(store: Arc<dyn ArtifactStore>) {
    let options = text("text/plain", json!({"source": "greeting", "n": 1}));
    let reference = store
        .put(Bytes::from_static(b"hello world"), options.clone())
        .await
        .unwrap();
    assert_eq!(reference.hash, HELLO_HASH);
    assert_eq!((reference.size, reference.refcount), (11, 1));
    assert_eq!(reference.content_type, "text/plain");

    let artifact = store.get(HELLO_HASH).await.unwrap().expect("stored");
    assert_eq!(artifact.content, Bytes::from_static(b"hello world"));
    assert_eq!(artifact.info.hash, HELLO_HASH);
    assert_eq!(artifact.info.size, 11);
    assert_eq!(artifact.info.refcount, 1);
    assert_eq!(artifact.info.content_type, "text/plain");
    assert_eq!(artifact.info.metadata, options.metadata);
    assert_eq!(store.stat(HELLO_HASH).await.unwrap(), Some(artifact.info));
    assert!(store.exists(HELLO_HASH).await.unwrap());
    assert!(store.exists(&HELLO_HASH.to_uppercase()).await.unwrap());

    let absent = hex(b"never stored");
    assert_eq!(store.get(&absent).await.unwrap(), None);
    assert_eq!(store.stat(&absent).await.unwrap(), None);
    assert!(store.open(&absent).await.unwrap().is_none());
    assert!(!store.exists(&absent).await.unwrap());
}

/// Empty content is an artifact like any other.
pub async fn empty_content_round_trips(store: Arc<dyn ArtifactStore>) {
    let reference = store
        .put(Bytes::new(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(reference.hash, EMPTY_HASH);
    assert_eq!(reference.size, 0);
    let artifact = store.get(EMPTY_HASH).await.unwrap().expect("stored");
    assert!(artifact.content.is_empty());
    assert_eq!(artifact.info.content_type, "application/octet-stream");
    assert!(collect_chunks(&store, EMPTY_HASH).await.is_empty());
}

/// Identical content is stored once with a reference count; release frees it at zero.
pub async fn identical_content_is_deduplicated_and_counted(store: Arc<dyn ArtifactStore>) {
    let first = store
        .put(
            Bytes::from_static(b"hello world"),
            text("text/plain", json!({"v": 1})),
        )
        .await
        .unwrap();
    let second = store
        .put(
            Bytes::from_static(b"hello world"),
            text("text/markdown", json!({"v": 2})),
        )
        .await
        .unwrap();
    assert_eq!(first.hash, second.hash);
    assert_eq!(second.refcount, 2);
    assert_eq!(second.content_type, "text/plain");
    let info = store.stat(HELLO_HASH).await.unwrap().expect("stored");
    assert_eq!(info.refcount, 2);
    assert_eq!(info.metadata["v"], 1);
    assert_eq!(store.list(None, 10).await.unwrap().items.len(), 1);

    assert_eq!(store.release(HELLO_HASH).await.unwrap(), 1);
    assert_eq!(
        store.get(HELLO_HASH).await.unwrap().unwrap().info.refcount,
        1
    );
    assert_eq!(store.release(HELLO_HASH).await.unwrap(), 0);
    assert!(!store.exists(HELLO_HASH).await.unwrap());
    assert_eq!(store.get(HELLO_HASH).await.unwrap(), None);
    let err = store.release(HELLO_HASH).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let again = store
        .put(Bytes::from_static(b"hello world"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(again.refcount, 1);
    assert_eq!(again.content_type, "application/octet-stream");
}

/// Content larger than a chunk round-trips through `get` and chunk by chunk through `open`.
pub async fn chunked_content_round_trips(store: Arc<dyn ArtifactStore>) {
    let content = pattern(2 * DEFAULT_CHUNK_SIZE + DEFAULT_CHUNK_SIZE / 2, 1);
    let reference = store
        .put(content.clone(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(reference.hash, hex(&content));
    assert_eq!(reference.size, content.len() as u64);
    let artifact = store.get(&reference.hash).await.unwrap().expect("stored");
    assert!(artifact.content == content, "content changed");

    let chunks = collect_chunks(&store, &reference.hash).await;
    assert!(chunks.len() > 1, "large content comes in several chunks");
    assert!(chunks.iter().all(|chunk| chunk.len() <= DEFAULT_CHUNK_SIZE));
    assert!(chunks.concat() == content.as_ref(), "chunks reassemble");
}

/// `put_stream`: pieces of any size give the same artifact as one `put` of the whole.
pub async fn streamed_put_matches_whole_put(store: Arc<dyn ArtifactStore>) {
    let content = pattern(DEFAULT_CHUNK_SIZE * 2 + 12_345, 2);
    let streamed = store
        .put_stream(pieces(&content, 300_001), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(streamed.hash, hex(&content));
    assert_eq!(streamed.size, content.len() as u64);
    let whole = store
        .put(content.clone(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (whole.hash.as_str(), whole.refcount),
        (streamed.hash.as_str(), 2)
    );
    let tiny = store
        .put_stream(
            pieces(&Bytes::from_static(b"hello world"), 1),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(tiny.hash, HELLO_HASH);
    let artifact = store.get(&streamed.hash).await.unwrap().expect("stored");
    assert!(artifact.content == content, "streamed content changed");
}

/// `put_stream`: an error from the stream is returned and nothing is stored.
pub async fn failing_stream_stores_nothing(store: Arc<dyn ArtifactStore>) {
    let parts: Vec<cairn_core::Result<Bytes>> = vec![
        Ok(pattern(DEFAULT_CHUNK_SIZE + 10, 3)),
        Err(cairn_core::Error::new(
            ErrorKind::Unavailable,
            "upstream went away",
        )),
        Ok(Bytes::from_static(b"never read")),
    ];
    let err = store
        .put_stream(futures::stream::iter(parts).boxed(), PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(store.list(None, 10).await.unwrap().items.is_empty());
}

/// `list` pages through artifacts in hash order without gaps or repeats.
pub async fn list_pages_in_hash_order(store: Arc<dyn ArtifactStore>) {
    let mut hashes = Vec::new();
    for i in 0..5u8 {
        let reference = store
            .put(Bytes::from(vec![i; 10]), PutOptions::default())
            .await
            .unwrap();
        hashes.push(reference.hash);
    }
    hashes.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(after.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|info| info.hash));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, hashes);
    let err = store.list(None, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// Bad hashes and options are `InvalidInput` and change nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn ArtifactStore>) {
    let bad_hashes = [
        String::new(),
        "xyz".to_owned(),
        HELLO_HASH[..63].to_owned(),
        format!("{HELLO_HASH}0"),
        format!("{}g", &HELLO_HASH[..63]),
        "../../etc/passwd".to_owned(),
    ];
    for hash in &bad_hashes {
        let kinds = [
            store.get(hash).await.unwrap_err().kind(),
            store.stat(hash).await.unwrap_err().kind(),
            store.exists(hash).await.unwrap_err().kind(),
            store.release(hash).await.unwrap_err().kind(),
            store.open(hash).await.unwrap_err().kind(),
            store.list(Some(hash), 10).await.unwrap_err().kind(),
        ];
        assert!(
            kinds.iter().all(|k| *k == ErrorKind::InvalidInput),
            "{hash:?}: {kinds:?}"
        );
    }
    for content_type in [String::new(), "x".repeat(257)] {
        let options = PutOptions::with_content_type(content_type);
        let err = store
            .put(Bytes::from_static(b"hello world"), options.clone())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = store
            .put_stream(pieces(&Bytes::from_static(b"x"), 1), options)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert!(store.list(None, 10).await.unwrap().items.is_empty());
    assert!(!store.exists(HELLO_HASH).await.unwrap());
}

/// 20 concurrent puts of the same content take 20 references, one each.
pub async fn concurrent_puts_count_every_reference(store: Arc<dyn ArtifactStore>) {
    let content = pattern(50_000, 4);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let content = content.clone();
            tokio::spawn(async move { store.put(content, PutOptions::default()).await })
        })
        .collect();
    let mut counts = BTreeSet::new();
    for task in futures::future::join_all(tasks).await {
        counts.insert(task.unwrap().unwrap().refcount);
    }
    assert_eq!(counts, (1..=20).collect());
    let hash = hex(&content);
    assert_eq!(store.stat(&hash).await.unwrap().unwrap().refcount, 20);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let hash = hash.clone();
            tokio::spawn(async move { store.release(&hash).await })
        })
        .collect();
    let mut remaining = BTreeSet::new();
    for task in futures::future::join_all(tasks).await {
        remaining.insert(task.unwrap().unwrap());
    }
    assert_eq!(remaining, (0..20).collect());
    assert!(!store.exists(&hash).await.unwrap());
}

/// The same content in two tenants is two artifacts with independent counts.
pub async fn tenants_are_isolated(store: Arc<dyn ArtifactStore>, other: Arc<dyn ArtifactStore>) {
    store
        .put(
            Bytes::from_static(b"hello world"),
            text("text/plain", json!({})),
        )
        .await
        .unwrap();
    assert!(!other.exists(HELLO_HASH).await.unwrap());
    assert_eq!(
        other.release(HELLO_HASH).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let theirs = other
        .put(
            Bytes::from_static(b"hello world"),
            text("text/csv", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(theirs.refcount, 1);
    assert_eq!(theirs.content_type, "text/csv");
    store
        .put(Bytes::from_static(b"hello world"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(store.stat(HELLO_HASH).await.unwrap().unwrap().refcount, 2);
    assert_eq!(other.release(HELLO_HASH).await.unwrap(), 0);
    assert!(!other.exists(HELLO_HASH).await.unwrap());
    let mine = store.get(HELLO_HASH).await.unwrap().expect("still stored");
    assert_eq!(mine.content, Bytes::from_static(b"hello world"));
    assert_eq!(mine.info.refcount, 2);
}

async fn scope_entries(backend: &Arc<dyn StorageBackend>) -> Vec<(Key, usize)> {
    let mut out = Vec::new();
    let mut after: Option<Key> = None;
    loop {
        let page = backend
            .scan(&ArtifactKey::scope_prefix(), after.as_ref(), 8)
            .await
            .unwrap();
        out.extend(page.entries.into_iter().map(|(k, v)| (k, v.len())));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Generic implementation: a 100 MiB artifact round-trips and no stored value is larger than
/// the chunk size; releasing it removes every value.
pub async fn large_artifact_never_needs_a_large_value(backend: Arc<dyn StorageBackend>) {
    let store = GenericArtifactStore::new(backend.clone());
    let content = pattern(100 << 20, 5);
    let expected = hex(&content);
    let reference = store
        .put(content.clone(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(reference.hash, expected);
    let entries = scope_entries(&backend).await;
    assert_eq!(entries.len(), 101, "one record and 100 chunks");
    let largest = entries.iter().map(|(_, len)| *len).max().unwrap_or(0);
    assert_eq!(largest, DEFAULT_CHUNK_SIZE);

    let store: Arc<dyn ArtifactStore> = Arc::new(store);
    let mut reader = store.open(&expected).await.unwrap().expect("stored");
    let mut hasher = blake3::Hasher::new();
    let mut chunks = 0;
    while let Some(chunk) = reader.chunks.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= DEFAULT_CHUNK_SIZE);
        hasher.update(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, 100);
    assert_eq!(hasher.finalize().to_hex().as_str(), expected);
    let artifact = store.get(&expected).await.unwrap().expect("stored");
    assert!(artifact.content == content, "100 MiB changed on the way");

    assert_eq!(store.release(&expected).await.unwrap(), 0);
    assert!(scope_entries(&backend).await.is_empty());
}

/// Generic implementation: concurrent puts of the same content leave one copy of its chunks.
pub async fn concurrent_puts_store_one_copy(backend: Arc<dyn StorageBackend>) {
    let store: Arc<dyn ArtifactStore> =
        Arc::new(GenericArtifactStore::with_chunk_size(backend.clone(), 4).unwrap());
    let content = Bytes::from_static(b"0123456789");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let content = content.clone();
            tokio::spawn(async move { store.put(content, PutOptions::default()).await })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap().unwrap();
    }
    let hash = hex(&content);
    assert_eq!(store.stat(&hash).await.unwrap().unwrap().refcount, 20);
    let chunk_prefix = ArtifactKey::all_chunks_prefix();
    let chunks: Vec<usize> = scope_entries(&backend)
        .await
        .into_iter()
        .filter(|(key, _)| key.starts_with(&chunk_prefix))
        .map(|(_, len)| len)
        .collect();
    assert_eq!(chunks, [4, 4, 2]);
    for _ in 0..20 {
        store.release(&hash).await.unwrap();
    }
    assert!(scope_entries(&backend).await.is_empty());
}

/// Generic implementation: a damaged, shortened or missing chunk, or a damaged record, is
/// `Corruption`, never wrong content.
pub async fn damaged_content_is_corruption(backend: Arc<dyn StorageBackend>) {
    let store: Arc<dyn ArtifactStore> =
        Arc::new(GenericArtifactStore::with_chunk_size(backend.clone(), 4).unwrap());
    let reference = store
        .put(Bytes::from_static(b"0123456789"), PutOptions::default())
        .await
        .unwrap();
    let chunk_prefix = ArtifactKey::all_chunks_prefix();
    let page = backend.scan(&chunk_prefix, None, 10).await.unwrap();
    let (key, original) = page.entries[1].clone();
    assert_eq!(original, Bytes::from_static(b"4567"));

    let mut flipped = original.to_vec();
    flipped[2] ^= 0x01;
    for damaged in [Some(Bytes::from(flipped)), Some(original.slice(..3)), None] {
        match &damaged {
            Some(value) => backend.set(&key, value.clone()).await.unwrap(),
            None => assert!(backend.delete(&key).await.unwrap()),
        }
        let err = store.get(&reference.hash).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{damaged:?}: {err}");
        let reader = store.open(&reference.hash).await.unwrap().expect("stored");
        let items: Vec<_> = reader.chunks.collect().await;
        let last = items.last().expect("at least one item");
        assert_eq!(
            last.as_ref().unwrap_err().kind(),
            ErrorKind::Corruption,
            "{damaged:?}"
        );
        assert_eq!(store.stat(&reference.hash).await.unwrap().unwrap().size, 10);
    }
    backend.set(&key, original).await.unwrap();
    let artifact = store.get(&reference.hash).await.unwrap().expect("stored");
    assert_eq!(artifact.content, Bytes::from_static(b"0123456789"));

    let record_key = ArtifactKey::Record {
        hash: &reference.hash,
    }
    .key()
    .unwrap();
    let record = backend.get(&record_key).await.unwrap().unwrap();
    let mut bad_version = record.to_vec();
    bad_version[0] = 99;
    backend
        .set(&record_key, Bytes::from(bad_version))
        .await
        .unwrap();
    for err in [
        store.get(&reference.hash).await.unwrap_err(),
        store.stat(&reference.hash).await.unwrap_err(),
        store.release(&reference.hash).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    }
}

/// Expands to one `#[tokio::test]` per case of the artifacts suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn ArtifactStore>, Arc<dyn ArtifactStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! artifacts_suite {
    ($factory:path) => {
        $crate::__store_cases!(store artifacts, $factory;
            put_get_round_trips,
            empty_content_round_trips,
            identical_content_is_deduplicated_and_counted,
            chunked_content_round_trips,
            streamed_put_matches_whole_put,
            failing_stream_stores_nothing,
            list_pages_in_hash_order,
            bad_input_is_rejected_and_changes_nothing,
            concurrent_puts_count_every_reference,
        );
        $crate::__store_cases!(pair artifacts, $factory; tenants_are_isolated);
    };
}

/// Runs [`artifacts_suite!`](crate::artifacts_suite) on `GenericArtifactStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! artifacts_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(artifacts, artifacts_suite, ArtifactStore, GenericArtifactStore, $backend;
            store_and_backend: [];
            backend: [large_artifact_never_needs_a_large_value, concurrent_puts_store_one_copy, damaged_content_is_corruption]);
    };
}
