//! Helpers of the episodic, agent-state, workflow, event-log and hook-history suites:
//! error-kind assertions and damaging stored bytes through the backend.

use std::fmt::Debug;

use cairn_core::{Bytes, ErrorKind, Key, Result, StorageBackend};

/// Asserts that `result` failed with `kind`.
#[track_caller]
pub(crate) fn expect_kind<T: Debug>(result: Result<T>, kind: ErrorKind) {
    match result {
        Err(err) => assert_eq!(err.kind(), kind, "expected {kind:?}, got {err}"),
        Ok(value) => panic!("expected {kind:?}, got Ok({value:?})"),
    }
}

/// The stored value of `key`, which must exist.
pub(crate) async fn stored(backend: &dyn StorageBackend, key: &Key) -> Bytes {
    backend
        .get(key)
        .await
        .expect("read stored value")
        .unwrap_or_else(|| panic!("{key} is stored"))
}

/// Flips the lowest bit of byte `index` of `key`'s value; returns the original value.
pub(crate) async fn flip_byte(backend: &dyn StorageBackend, key: &Key, index: usize) -> Bytes {
    let original = stored(backend, key).await;
    let mut damaged = original.to_vec();
    damaged[index] ^= 0x01;
    backend
        .set(key, Bytes::from(damaged))
        .await
        .expect("write damaged value");
    original
}

/// The keys of every entry of the backend's tenant.
pub(crate) async fn all_keys(backend: &dyn StorageBackend) -> Vec<Key> {
    backend.list_keys("").await.expect("list keys")
}
