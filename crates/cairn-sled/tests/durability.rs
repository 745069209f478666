//! Reopening keeps data in every mode after an explicit flush. Crashes without a flush are the
//! subject of `tests/crash.rs`.

use std::path::Path;

use cairn_core::{Bytes, Key, StorageBackend, TenantId, WriteBatch};
use cairn_sled::{SledBackend, SledConfig, SledMode};

const RECORDS: u32 = 200;

fn config(path: &Path, mode: SledMode) -> SledConfig {
    let mut config = SledConfig::new(path);
    config.mode = mode;
    config.cache_capacity_mb = 16;
    config
}

fn key(i: u32) -> Key {
    Key::new(format!("record/{i:05}")).unwrap()
}

fn value(i: u32) -> Bytes {
    Bytes::from(format!("value-{i}-").repeat(10))
}

async fn write_records(storage: &SledBackend) {
    let tenant = storage.tenant(&TenantId::new("acme").unwrap());
    for i in 0..RECORDS {
        tenant.set(&key(i), value(i)).await.unwrap();
    }
    let batch = WriteBatch::new()
        .put(Key::new("batch/a").unwrap(), &b"a"[..])
        .put(Key::new("batch/b").unwrap(), &b"b"[..]);
    tenant.write_batch(batch).await.unwrap();
}

async fn assert_records(storage: &SledBackend) {
    let tenant = storage.tenant(&TenantId::new("acme").unwrap());
    for i in 0..RECORDS {
        assert_eq!(
            tenant.get(&key(i)).await.unwrap(),
            Some(value(i)),
            "record {i}"
        );
    }
    assert_eq!(tenant.list_keys("batch/").await.unwrap().len(), 2);
    assert!(storage.list_keys("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_keeps_flushed_data_across_reopen() {
    for mode in [SledMode::Fast, SledMode::Balanced, SledMode::Safe] {
        let dir = tempfile::tempdir().unwrap();
        let storage = SledBackend::open(config(dir.path(), mode)).await.unwrap();
        write_records(&storage).await;
        storage.flush().await.unwrap();
        drop(storage);
        let reopened = SledBackend::open(config(dir.path(), mode)).await.unwrap();
        assert_records(&reopened).await;
    }
}
