//! Cases for [`MigratingBackend`]: each takes an empty `old` and `new` tenant handle of the
//! same tenant (any two backends) and panics when a phase routes a read or write wrongly, a
//! merge loses or repeats entries, or a live writer's data does not all reach the new side.
//! [`migrating_suite!`](crate::migrating_suite) wires them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_core::migrating::{MigratingBackend, MigrationPhase};
use cairn_core::{Bytes, ErrorKind, Key, StorageBackend, StorageBackendExt};

fn key(k: &str) -> Key {
    Key::new(k).expect("valid key")
}

fn migrating(old: &Arc<dyn StorageBackend>, new: &Arc<dyn StorageBackend>) -> MigratingBackend {
    MigratingBackend::new(Arc::clone(old), Arc::clone(new)).expect("same tenant")
}

/// Each phase reads and writes the sides the module docs name: a key planted on one side
/// only is seen exactly where it should be, and writes land on the sides they should.
pub async fn phases_route_reads_and_writes(
    old: Arc<dyn StorageBackend>,
    new: Arc<dyn StorageBackend>,
) {
    let m = migrating(&old, &new);
    old.set(&key("only-old"), Bytes::from_static(b"o"))
        .await
        .unwrap();
    new.set(&key("only-new"), Bytes::from_static(b"n"))
        .await
        .unwrap();
    old.set(&key("both"), Bytes::from_static(b"old"))
        .await
        .unwrap();
    new.set(&key("both"), Bytes::from_static(b"new"))
        .await
        .unwrap();
    // (phase, sees only-old, sees only-new, value of both, writes reach old)
    let expectations = [
        (MigrationPhase::DualWrite, true, false, "old", true),
        (MigrationPhase::ReadNewFallback, true, true, "new", true),
        (MigrationPhase::ReadNew, false, true, "new", true),
        (MigrationPhase::NewOnly, false, true, "new", false),
    ];
    for (phase, sees_old, sees_new, both, writes_old) in expectations {
        m.set_phase(phase).unwrap();
        assert_eq!(m.phase(), phase);
        assert_eq!(
            m.exists(&key("only-old")).await.unwrap(),
            sees_old,
            "{phase:?}"
        );
        assert_eq!(
            m.exists(&key("only-new")).await.unwrap(),
            sees_new,
            "{phase:?}"
        );
        assert_eq!(
            m.get(&key("both")).await.unwrap().as_deref(),
            Some(both.as_bytes()),
            "{phase:?}"
        );
        let got = m
            .get_batch(&[key("only-old"), key("only-new"), key("both")])
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(Option::is_some).collect::<Vec<_>>(),
            [sees_old, sees_new, true],
            "{phase:?}"
        );
        let listed = m.list_keys("only-").await.unwrap();
        let expected: Vec<Key> = [("only-new", sees_new), ("only-old", sees_old)]
            .into_iter()
            .filter(|(_, seen)| *seen)
            .map(|(k, _)| key(k))
            .collect();
        assert_eq!(listed, expected, "{phase:?}");

        let written = key(&format!("written-{phase:?}"));
        m.set(&written, Bytes::from_static(b"w")).await.unwrap();
        assert!(new.exists(&written).await.unwrap(), "{phase:?}: new side");
        assert_eq!(
            old.exists(&written).await.unwrap(),
            writes_old,
            "{phase:?}: old side"
        );
    }
    let err = m.set_phase(MigrationPhase::ReadNew).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(m.phase(), MigrationPhase::NewOnly);
}

/// In `ReadNewFallback`, scans page through the union of both sides in key order, the new
/// side's value winning, without gaps or repeats, whatever the page size.
pub async fn fallback_scans_merge_both_sides(
    old: Arc<dyn StorageBackend>,
    new: Arc<dyn StorageBackend>,
) {
    let mut expected = BTreeMap::new();
    for n in 0..40u32 {
        let k = key(&format!("k/{n:02}"));
        match n % 3 {
            0 => {
                old.set(&k, Bytes::from(format!("old{n}"))).await.unwrap();
                expected.insert(k, Bytes::from(format!("old{n}")));
            }
            1 => {
                new.set(&k, Bytes::from(format!("new{n}"))).await.unwrap();
                expected.insert(k, Bytes::from(format!("new{n}")));
            }
            _ => {
                old.set(&k, Bytes::from_static(b"stale")).await.unwrap();
                new.set(&k, Bytes::from(format!("new{n}"))).await.unwrap();
                expected.insert(k, Bytes::from(format!("new{n}")));
            }
        }
    }
    let expected: Vec<(Key, Bytes)> = expected.into_iter().collect();
    let m = migrating(&old, &new);
    m.set_phase(MigrationPhase::ReadNewFallback).unwrap();
    for page_size in [1, 3, 7, 40, 100] {
        assert_eq!(
            m.scan_all("k/", page_size).await.unwrap(),
            expected,
            "page size {page_size}"
        );
    }
    let keys: Vec<Key> = expected.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(m.list_keys("k/").await.unwrap(), keys);
}

/// Four writers set, delete and swap their own keys without pause while the migration is
/// backfilled and moved through every phase; each checks its reads as it goes. At the end the
/// new side alone holds exactly what the writers' last writes say, including the data that
/// only the old side had before the migration started.
pub async fn live_writers_reach_the_new_side_through_every_phase(
    old: Arc<dyn StorageBackend>,
    new: Arc<dyn StorageBackend>,
) {
    const WRITERS: usize = 4;
    const KEYS: usize = 50;
    // Data written before the migration: only the old side has it.
    let before: Vec<(Key, Bytes)> = (0..300)
        .map(|n| (key(&format!("pre/{n:03}")), Bytes::from(format!("pre{n}"))))
        .collect();
    old.set_batch(before.clone()).await.unwrap();

    let m = Arc::new(migrating(&old, &new));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (m, stop) = (Arc::clone(&m), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut model: BTreeMap<Key, Bytes> = BTreeMap::new();
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) || round < 20 {
                    round += 1;
                    let n = (round as usize * 7 + w) % KEYS;
                    let k = key(&format!("w{w}/{n:02}"));
                    let value = Bytes::from(format!("{w}-{round}"));
                    match round % 5 {
                        0 => {
                            let existed = m.delete(&k).await.unwrap();
                            assert_eq!(existed, model.remove(&k).is_some(), "{k:?}");
                        }
                        1 => {
                            let current = model.get(&k).cloned();
                            m.compare_and_swap(&k, current, Some(value.clone()))
                                .await
                                .unwrap();
                            model.insert(k.clone(), value);
                        }
                        _ => {
                            m.set(&k, value.clone()).await.unwrap();
                            model.insert(k.clone(), value);
                        }
                    }
                    assert_eq!(
                        m.get(&k).await.unwrap(),
                        model.get(&k).cloned(),
                        "{k:?}: read after write in {:?}",
                        m.phase()
                    );
                    tokio::task::yield_now().await;
                }
                model
            })
        })
        .collect();

    let pause = || tokio::time::sleep(Duration::from_millis(30));
    pause().await;
    let report = m.backfill("", 64).await.unwrap();
    assert!(report.copied >= 300, "{report:?}");
    for phase in [
        MigrationPhase::ReadNewFallback,
        MigrationPhase::ReadNew,
        MigrationPhase::NewOnly,
    ] {
        pause().await;
        m.set_phase(phase).unwrap();
    }
    pause().await;
    stop.store(true, Ordering::SeqCst);
    let mut expected: BTreeMap<Key, Bytes> = before.into_iter().collect();
    for writer in writers {
        expected.extend(writer.await.unwrap());
    }
    let on_new: BTreeMap<Key, Bytes> = new.scan_all("", 1_000).await.unwrap().into_iter().collect();
    assert_eq!(on_new.len(), expected.len());
    assert_eq!(on_new, expected);
}

/// Backfill copies what only the old side has, never overwrites the new side, copies
/// nothing the second time, and is refused in `NewOnly`.
pub async fn backfill_copies_only_what_is_missing(
    old: Arc<dyn StorageBackend>,
    new: Arc<dyn StorageBackend>,
) {
    for n in 0..10u32 {
        old.set(&key(&format!("b/{n}")), Bytes::from(format!("old{n}")))
            .await
            .unwrap();
    }
    new.set(&key("b/3"), Bytes::from_static(b"newer"))
        .await
        .unwrap();
    let m = migrating(&old, &new);
    let first = m.backfill("b/", 4).await.unwrap();
    assert_eq!((first.scanned, first.copied), (10, 9));
    assert_eq!(
        new.get(&key("b/3")).await.unwrap().as_deref(),
        Some(&b"newer"[..])
    );
    assert_eq!(
        new.get(&key("b/7")).await.unwrap().as_deref(),
        Some(&b"old7"[..])
    );
    let second = m.backfill("b/", 4).await.unwrap();
    assert_eq!((second.scanned, second.copied), (10, 0));
    m.set_phase(MigrationPhase::NewOnly).unwrap();
    let err = m.backfill("b/", 4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// Expands to one `#[tokio::test]` per [`migrating`](crate::migrating) case. `$old` and `$new`
/// are paths to `async fn() -> Arc<dyn StorageBackend>` returning empty handles of one tenant.
#[macro_export]
macro_rules! migrating_suite {
    ($old:path, $new:path) => {
        $crate::migrating_suite!(@cases $old, $new;
            phases_route_reads_and_writes,
            fallback_scans_merge_both_sides,
            live_writers_reach_the_new_side_through_every_phase,
            backfill_copies_only_what_is_missing,
        );
    };
    (@cases $old:path, $new:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::migrating::$case($old().await, $new().await).await;
            }
        )+
    };
}
