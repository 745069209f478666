//! `SledBackend::tenants`: every tenant holding a key, in byte order, found by one seek per
//! tenant; tenants whose ids prefix each other stay apart.

use cairn_core::{Bytes, Key, StorageBackend, TenantId};
use cairn_sled::{SledBackend, SledConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_tenants_with_keys_in_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SledBackend::open(SledConfig::new(dir.path()))
        .await
        .unwrap();
    assert!(backend.tenants().await.unwrap().is_empty());
    for tenant in ["b", "ab", "a", "c"] {
        let scoped = backend.tenant(&TenantId::new(tenant).unwrap());
        for key in ["k1", "k2", "\u{10FFFF}"] {
            scoped
                .set(&Key::new(key).unwrap(), Bytes::from_static(b"v"))
                .await
                .unwrap();
        }
    }
    backend
        .tenant(&TenantId::new("c").unwrap())
        .clear()
        .await
        .unwrap();
    let names: Vec<String> = backend
        .tenants()
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(names, ["a", "ab", "b"]);
}
