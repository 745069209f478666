//! The migrating backend between two memory backends: its own cases, the whole key-value
//! conformance suite through it in every phase (it must behave as one backend throughout),
//! and a failing second side reported, not hidden.

use std::sync::Arc;

use cairn_core::migrating::{MigratingBackend, MigrationPhase};
use cairn_core::{Bytes, ErrorKind, Key, StorageBackend};
use cairn_memory::MemoryBackend;
use cairn_testkit::faulty::{FaultyBackend, Op};

async fn memory() -> Arc<dyn StorageBackend> {
    Arc::new(MemoryBackend::new())
}

cairn_testkit::migrating_suite!(memory, memory);

/// A migration between two fresh memory backends, in `phase`.
fn in_phase(phase: MigrationPhase) -> Arc<dyn StorageBackend> {
    let migrating = MigratingBackend::new(
        Arc::new(MemoryBackend::new()),
        Arc::new(MemoryBackend::new()),
    )
    .unwrap();
    migrating.set_phase(phase).unwrap();
    Arc::new(migrating)
}

mod dual_write {
    async fn backend() -> std::sync::Arc<dyn cairn_core::StorageBackend> {
        super::in_phase(cairn_core::migrating::MigrationPhase::DualWrite)
    }
    cairn_testkit::kv_suite!(backend);
}

mod read_new_fallback {
    async fn backend() -> std::sync::Arc<dyn cairn_core::StorageBackend> {
        super::in_phase(cairn_core::migrating::MigrationPhase::ReadNewFallback)
    }
    cairn_testkit::kv_suite!(backend);
}

mod read_new {
    async fn backend() -> std::sync::Arc<dyn cairn_core::StorageBackend> {
        super::in_phase(cairn_core::migrating::MigrationPhase::ReadNew)
    }
    cairn_testkit::kv_suite!(backend);
}

mod new_only {
    async fn backend() -> std::sync::Arc<dyn cairn_core::StorageBackend> {
        super::in_phase(cairn_core::migrating::MigrationPhase::NewOnly)
    }
    cairn_testkit::kv_suite!(backend);
}

/// A write the second side refuses returns that side's error, marked as such; the deciding
/// side keeps the write, and repeating the call once the second side recovers aligns both.
#[tokio::test]
async fn a_failing_second_side_is_reported() {
    let old: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
    let faulty = FaultyBackend::new(Arc::new(MemoryBackend::new()));
    let new: Arc<dyn StorageBackend> = Arc::new(faulty.clone());
    let migrating = MigratingBackend::new(Arc::clone(&old), Arc::clone(&new)).unwrap();
    let key = Key::new("k").unwrap();
    faulty.fail_retryable(Op::Set, 1);
    let err = migrating
        .set(&key, Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(
        err.context()
            .iter()
            .any(|(k, v)| *k == "migration_side" && v == "secondary"),
        "{err:?}"
    );
    assert_eq!(old.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(new.get(&key).await.unwrap(), None);
    migrating.set(&key, Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(new.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// Handles of different tenants cannot form a migration.
#[tokio::test]
async fn sides_of_different_tenants_are_refused() {
    let old: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
    let other = old.tenant(&cairn_core::TenantId::new("other").unwrap());
    let err = MigratingBackend::new(old, other).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// A delete that arrives while a backfill is copying its key waits for the copy and then
/// removes the key from both sides: the backfill never brings a deleted key back. The new
/// side's reads are slowed so that the delete lands in the middle of the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_backfill_is_not_undone() {
    let old: Arc<dyn StorageBackend> = Arc::new(MemoryBackend::new());
    let faulty = FaultyBackend::new(Arc::new(MemoryBackend::new()));
    faulty.delay(Op::GetBatch, std::time::Duration::from_millis(300));
    let new: Arc<dyn StorageBackend> = Arc::new(faulty.clone());
    let key = Key::new("x").unwrap();
    old.set(&key, Bytes::from_static(b"v")).await.unwrap();
    let migrating = Arc::new(MigratingBackend::new(Arc::clone(&old), Arc::clone(&new)).unwrap());
    let backfill = tokio::spawn({
        let migrating = Arc::clone(&migrating);
        async move { migrating.backfill("", 10).await }
    });
    while faulty.calls(Op::GetBatch) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(migrating.delete(&key).await.unwrap());
    assert_eq!(backfill.await.unwrap().unwrap().copied, 1);
    assert_eq!(old.get(&key).await.unwrap(), None);
    assert_eq!(
        new.get(&key).await.unwrap(),
        None,
        "the deleted key came back"
    );
}
