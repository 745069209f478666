//! The migration runner against real, freshly created databases.

mod common;

use bytes::Bytes;
use cairn_core::{ErrorKind, Key, StorageBackend};
use cairn_postgres::{MigrationState, PostgresBackend, migrate_up, migration_status};
use common::TempDatabase;

#[tokio::test]
async fn fresh_database_migrates_and_a_second_up_is_a_no_op() {
    let db = TempDatabase::create().await;

    let before = migration_status(&db.url).await.unwrap();
    assert!(!before.is_empty());
    assert!(before.iter().all(|m| m.state == MigrationState::Pending));
    assert_eq!(before[0].version, 1);
    assert_eq!(before[0].name, "kv_store");
    assert_eq!(before[0].checksum.to_string().len(), 64);
    let admin = common::client(&db.url).await;
    let tracked: bool = admin
        .query_one(
            "SELECT to_regclass('cairn_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!tracked, "status must not create the tracking table");

    let first = migrate_up(&db.url).await.unwrap();
    assert_eq!(first.applied_now.len(), before.len());
    assert!(first.already_applied.is_empty());
    assert!(first.applied_now.iter().all(|m| m.applied_at().is_some()));

    let after = migration_status(&db.url).await.unwrap();
    assert!(
        after
            .iter()
            .all(|m| matches!(m.state, MigrationState::Applied { .. }))
    );
    assert_eq!(after, first.applied_now);

    let second = migrate_up(&db.url).await.unwrap();
    assert!(second.applied_now.is_empty());
    assert_eq!(second.already_applied, after);
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM cairn_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, before.len());

    // The migrated schema serves a backend that does not migrate itself.
    let mut config = common::test_config(&db.url);
    config.auto_migrate = false;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let key = Key::new("k").unwrap();
    backend.set(&key, Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(backend.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn concurrent_ups_both_succeed_and_apply_once() {
    let db = TempDatabase::create().await;
    let (one, two) = tokio::join!(migrate_up(&db.url), migrate_up(&db.url));
    let (one, two) = (one.unwrap(), two.unwrap());
    let migrations = migration_status(&db.url).await.unwrap().len();
    assert_eq!(one.applied_now.len() + two.applied_now.len(), migrations);
    assert_eq!(
        one.already_applied.len() + two.already_applied.len(),
        migrations
    );
    // Backends starting together with auto_migrate all come up.
    let starts = (0..3).map(|_| PostgresBackend::connect(common::test_config(&db.url)));
    for started in futures::future::join_all(starts).await {
        started.unwrap();
    }
    let rows: i64 = common::client(&db.url)
        .await
        .query_one("SELECT count(*) FROM cairn_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, migrations);
}

#[tokio::test]
async fn two_databases_on_one_cluster_migrate_at_once() {
    let (one, two) = tokio::join!(TempDatabase::create(), TempDatabase::create());
    let (a, b) = tokio::join!(migrate_up(&one.url), migrate_up(&two.url));
    assert!(!a.unwrap().applied_now.is_empty());
    assert!(!b.unwrap().applied_now.is_empty());
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let db = TempDatabase::create().await;
    migrate_up(&db.url).await.unwrap();
    let embedded = migration_status(&db.url).await.unwrap()[0]
        .checksum
        .to_string();
    // Simulate editing 0001 after it was applied: the recorded checksum no longer matches.
    common::client(&db.url)
        .await
        .execute(
            "UPDATE cairn_schema_migrations SET checksum = decode(repeat('ab', 32), 'hex') \
             WHERE version = 1",
            &[],
        )
        .await
        .unwrap();

    let err = migrate_up(&db.url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    let text = err.to_string();
    assert!(text.contains("0001_kv_store.sql"), "{text}");
    assert!(text.contains(&"ab".repeat(32)), "{text}");
    assert!(text.contains(&embedded), "{text}");

    let status = migration_status(&db.url).await.unwrap();
    match &status[0].state {
        MigrationState::Modified { recorded, .. } => {
            assert_eq!(recorded.to_string(), "ab".repeat(32));
        }
        other => panic!("expected Modified, got {other:?}"),
    }
    let err = PostgresBackend::connect(common::test_config(&db.url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
}

#[tokio::test]
async fn an_unmigrated_database_without_auto_migrate_fails_clearly() {
    let db = TempDatabase::create().await;
    let mut config = common::test_config(&db.url);
    config.auto_migrate = false;
    let err = PostgresBackend::connect(config).await.unwrap_err();
    assert!(err.to_string().contains("migrations"), "{err}");
}

#[tokio::test]
async fn a_missing_database_is_a_config_error() {
    let url = common::with_database(&common::database_url(), "cairn_no_such_database");
    let err = migrate_up(&url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}
