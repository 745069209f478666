//! The migration path: a dataset of every component copied memory → sled →
//! PostgreSQL → sled through `admin::copy`, each copy verified, and the final storage
//! answering every query (as-of graph reads, vector search...) exactly as the original.
//! Needs `DATABASE_URL` (run by `cargo xtask test`).

#![cfg(all(feature = "postgres", feature = "sled"))]

use cairn_core::TenantId;
use cairn_registry::admin::{self, CopyOptions, Quiet, Selection};
use cairn_registry::{Component, Storage, TenantStorage, from_toml};
use cairn_testkit::dataset::{self, Size, Stores};

fn stores(view: &TenantStorage) -> Stores {
    cairn_testkit::stores_of!(view)
}

async fn open(toml: &str) -> Storage {
    Storage::open(&from_toml(toml).unwrap()).await.unwrap()
}

fn sled_config(path: &std::path::Path, vectors: &str) -> String {
    format!(
        "[storage]\nbackend = \"sled\"\npath = \"{}\"\n{vectors}",
        path.display()
    )
}

/// Copies `from` into `to` for `tenants` and checks the verification of every section.
async fn copy_verified(from: &Storage, to: &Storage, tenants: &[TenantId]) {
    let selection = Selection {
        tenants: Some(tenants.to_vec()),
        components: Component::ALL.to_vec(),
    };
    let report = admin::copy(from, to, &selection, &CopyOptions::default(), &Quiet)
        .await
        .unwrap();
    assert_eq!(report.sections.len(), tenants.len() * Component::ALL.len());
    for section in &report.sections {
        assert!(section.matches(), "{section:?}");
    }
    assert!(report.records > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_to_sled_to_postgres_to_sled_answers_as_the_original() {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run `cargo xtask test`, or point it at a PostgreSQL 18 server",
    );
    let run = uuid_like();
    let big = TenantId::new(format!("copy-path-{run}")).unwrap();
    let small = TenantId::new(format!("copy-path-small-{run}")).unwrap();
    let tenants = [big.clone(), small.clone()];

    let memory = open("[storage]\nbackend = \"memory\"").await;
    let seeded_big = dataset::seed(&stores(&memory.tenant(&big)), Size::large())
        .await
        .unwrap();
    let seeded_small = dataset::seed(&stores(&memory.tenant(&small)), Size::small())
        .await
        .unwrap();
    let original_big = dataset::answers(&stores(&memory.tenant(&big)), &seeded_big)
        .await
        .unwrap();
    let original_small = dataset::answers(&stores(&memory.tenant(&small)), &seeded_small)
        .await
        .unwrap();
    let records = admin::stats(&memory, &Selection::all(), &Quiet)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.tenant == big)
        .map(|s| s.records)
        .sum::<u64>();
    assert!(records >= 10_000, "only {records} records");
    // The comparison means something only if most queries find data (as-of reads before a
    // version's valid time legitimately find none).
    let answered = original_big
        .iter()
        .filter(|(_, answer)| answer != "None" && answer != "[]")
        .count();
    assert!(
        answered * 2 > original_big.len(),
        "only {answered} of {} queries found data",
        original_big.len()
    );

    let first = tempfile::tempdir().unwrap();
    let sled = open(&sled_config(first.path(), "")).await;
    copy_verified(&memory, &sled, &tenants).await;
    drop(memory);

    let postgres = open(&format!(
        "[storage]\nbackend = \"postgres\"\n[storage.postgres]\nurl = \"{url}\"\npool_size = 4"
    ))
    .await;
    copy_verified(&sled, &postgres, &tenants).await;
    drop(sled);
    dataset::assert_same_answers(
        &original_big,
        &dataset::answers(&stores(&postgres.tenant(&big)), &seeded_big)
            .await
            .unwrap(),
    );

    let second = tempfile::tempdir().unwrap();
    let hnsw = format!(
        "[storage.vector_embeddings]\nbackend = \"hnsw\"\npath = \"{}\"",
        second.path().join("sled").display()
    );
    let last = open(&sled_config(second.path(), &hnsw)).await;
    copy_verified(&postgres, &last, &tenants).await;
    let last_big = dataset::answers(&stores(&last.tenant(&big)), &seeded_big)
        .await
        .unwrap();
    dataset::assert_same_answers(&original_big, &last_big);
    dataset::assert_same_answers(
        &original_small,
        &dataset::answers(&stores(&last.tenant(&small)), &seeded_small)
            .await
            .unwrap(),
    );
}

/// A run-unique suffix for tenant ids on a long-lived database.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}-{}", std::process::id())
}
