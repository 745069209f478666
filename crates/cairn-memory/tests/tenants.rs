//! `MemoryBackend::tenants`: every tenant holding a key, in byte order.

use cairn_core::{Bytes, Key, StorageBackend, TenantId};
use cairn_memory::MemoryBackend;

#[tokio::test]
async fn lists_tenants_with_keys_in_byte_order() {
    let backend = MemoryBackend::new();
    assert!(backend.tenants().is_empty());
    for tenant in ["b", "a.x", "c"] {
        backend
            .tenant(&TenantId::new(tenant).unwrap())
            .set(&Key::new("k").unwrap(), Bytes::from_static(b"v"))
            .await
            .unwrap();
    }
    backend
        .tenant(&TenantId::new("c").unwrap())
        .clear()
        .await
        .unwrap();
    let names: Vec<String> = backend.tenants().iter().map(|t| t.to_string()).collect();
    assert_eq!(names, ["a.x", "b"]);
}
