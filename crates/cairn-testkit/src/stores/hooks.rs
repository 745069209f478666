//! Conformance cases for [`HookHistoryStore`].
//!
//! [`hooks_suite!`](crate::hooks_suite) takes a factory returning two stores on two fresh,
//! distinct tenants; every case but the isolation one uses only the first.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::{ErrorKind, StorageBackend};
use cairn_stores::hooks::keys::HookStream;
use cairn_stores::hooks::{
    HookCursor, HookExecution, HookHistoryStore, HookQuery, HookRecord, HookStats,
};
use cairn_stores::stream::TimeStream;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

use super::probe::{all_keys, expect_kind, flip_byte};

const T0: OffsetDateTime = datetime!(2026-07-01 00:00 UTC);

fn sec(n: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(n)
}

fn run(hook: &str, n: i64, millis: u64) -> HookExecution {
    HookExecution {
        hook_name: hook.into(),
        input: json!({ "n": n }),
        output: Some(json!({ "ok": n })),
        error: None,
        duration: Duration::from_millis(millis),
        at: Some(sec(n)),
    }
}

fn failed(hook: &str, n: i64, millis: u64) -> HookExecution {
    HookExecution {
        output: None,
        error: Some(format!("failure {n}")),
        ..run(hook, n, millis)
    }
}

fn ns(records: &[HookRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r.input["n"].as_i64().expect("input has n"))
        .collect()
}

async fn query(store: &Arc<dyn HookHistoryStore>, query: HookQuery) -> Vec<HookRecord> {
    store.query(&query).await.unwrap()
}

fn of(hook: &str) -> HookQuery {
    HookQuery {
        hook_name: Some(hook.into()),
        ..HookQuery::default()
    }
}

/// `lint` runs 20 times (10, 20, ..., 200 ms at seconds 0..=19), failing at 2, 7 and 11.
async fn record_lint_runs(store: &Arc<dyn HookHistoryStore>) {
    for n in 0..20 {
        let millis = 10 * (n as u64 + 1);
        let execution = if [2, 7, 11].contains(&n) {
            failed("lint", n, millis)
        } else {
            run("lint", n, millis)
        };
        store.record(execution).await.unwrap();
    }
}

/// Records come back exactly as recorded, per hook or for all hooks, in time order.
pub async fn record_and_query_in_time_order(store: Arc<dyn HookHistoryStore>) {
    let recorded = store.record(failed("fmt", 5, 12)).await.unwrap();
    assert_eq!(recorded.hook_name, "fmt");
    assert_eq!(recorded.error.as_deref(), Some("failure 5"));
    assert_eq!(recorded.output, None);
    assert_eq!(recorded.duration, Duration::from_millis(12));
    assert_eq!(recorded.at, sec(5));
    for (hook, n) in [("lint", 3), ("fmt", 1), ("lint", 4), ("test", 2)] {
        store.record(run(hook, n, 1)).await.unwrap();
    }
    assert_eq!(
        ns(&query(&store, HookQuery::default()).await),
        [1, 2, 3, 4, 5]
    );
    let fmt = query(&store, of("fmt")).await;
    assert_eq!(ns(&fmt), [1, 5]);
    assert_eq!(fmt[1], recorded);
    assert_eq!(fmt[0].output, Some(json!({"ok": 1})));
    assert_eq!(ns(&query(&store, of("lint")).await), [3, 4]);
    assert!(query(&store, of("missing")).await.is_empty());
    let mut now = run("now", 0, 1);
    now.at = None;
    assert!(store.record(now).await.unwrap().at > sec(5));
}

/// Statistics with concrete numbers: count, failures, mean and nearest-rank p50/p95, for
/// all time and for a window.
pub async fn stats_have_concrete_numbers(store: Arc<dyn HookHistoryStore>) {
    record_lint_runs(&store).await;
    let mut fmt = run("fmt", 3, 0);
    fmt.duration = Duration::from_micros(7_500);
    store.record(fmt).await.unwrap();
    let all = store.stats("lint", None, None).await.unwrap();
    assert_eq!(
        all,
        HookStats {
            count: 20,
            failures: 3,
            mean_ms: Some(105.0),
            p50_ms: Some(100.0),
            p95_ms: Some(190.0),
        }
    );
    let window = store
        .stats("lint", Some(sec(5)), Some(sec(15)))
        .await
        .unwrap();
    assert_eq!(
        window,
        HookStats {
            count: 10,
            failures: 2,
            mean_ms: Some(105.0),
            p50_ms: Some(100.0),
            p95_ms: Some(150.0),
        }
    );
    let one = store.stats("fmt", None, None).await.unwrap();
    assert_eq!(
        (one.count, one.failures, one.mean_ms, one.p50_ms, one.p95_ms),
        (1, 0, Some(7.5), Some(7.5), Some(7.5))
    );
    let none = HookStats {
        count: 0,
        failures: 0,
        mean_ms: None,
        p50_ms: None,
        p95_ms: None,
    };
    assert_eq!(store.stats("other", None, None).await.unwrap(), none);
    let empty_window = store.stats("lint", Some(sec(30)), None).await.unwrap();
    assert_eq!(empty_window, none);
}

/// Pages of 7 over the 20 `lint` runs via the cursor (7, 7, 6), and a time window
/// `from <= at < to`.
pub async fn query_pages_by_cursor_and_time(store: Arc<dyn HookHistoryStore>) {
    record_lint_runs(&store).await;
    store.record(run("fmt", 4, 1)).await.unwrap();
    let mut pages = Vec::new();
    let mut after: Option<HookCursor> = None;
    loop {
        let page = query(
            &store,
            HookQuery {
                limit: 7,
                after,
                ..of("lint")
            },
        )
        .await;
        if page.is_empty() {
            break;
        }
        after = page.last().map(HookCursor::from);
        pages.push(ns(&page));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 6]);
    assert_eq!(pages.concat(), (0..20).collect::<Vec<_>>());
    let window = HookQuery {
        from: Some(sec(3)),
        to: Some(sec(6)),
        ..HookQuery::default()
    };
    assert_eq!(ns(&query(&store, window).await), [3, 4, 4, 5]);
    let lint_window = HookQuery {
        from: Some(sec(3)),
        to: Some(sec(6)),
        limit: 2,
        ..of("lint")
    };
    assert_eq!(ns(&query(&store, lint_window).await), [3, 4]);
}

/// `drop_before` removes older records from queries and statistics and reports the count.
pub async fn drop_before_removes_old_records(store: Arc<dyn HookHistoryStore>) {
    record_lint_runs(&store).await;
    store.record(run("fmt", 1, 5)).await.unwrap();
    store.record(run("fmt", 15, 5)).await.unwrap();
    assert_eq!(store.drop_before(sec(10)).await.unwrap(), 11);
    assert_eq!(
        ns(&query(&store, of("lint")).await),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(ns(&query(&store, of("fmt")).await), [15]);
    let stats = store.stats("lint", None, None).await.unwrap();
    assert_eq!((stats.count, stats.failures), (10, 1));
    assert_eq!(stats.mean_ms, Some(155.0));
    assert_eq!(store.drop_before(sec(10)).await.unwrap(), 0);
    assert_eq!(store.drop_before(sec(100)).await.unwrap(), 11);
    assert!(query(&store, HookQuery::default()).await.is_empty());
}

/// Bad hook names, limits and ranges are `InvalidInput` and record nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn HookHistoryStore>) {
    let long = "h".repeat(257);
    for bad in ["", long.as_str(), "nul\0"] {
        expect_kind(store.record(run(bad, 1, 1)).await, ErrorKind::InvalidInput);
        expect_kind(store.query(&of(bad)).await, ErrorKind::InvalidInput);
        expect_kind(store.stats(bad, None, None).await, ErrorKind::InvalidInput);
    }
    let mut ancient = run("h", 1, 1);
    ancient.at = Some(datetime!(-0001-01-01 0:00 UTC));
    expect_kind(store.record(ancient).await, ErrorKind::InvalidInput);
    for limit in [0, cairn_core::MAX_SCAN_LIMIT + 1] {
        let q = HookQuery {
            limit,
            ..HookQuery::default()
        };
        expect_kind(store.query(&q).await, ErrorKind::InvalidInput);
    }
    let reversed = HookQuery {
        from: Some(sec(2)),
        to: Some(sec(1)),
        ..HookQuery::default()
    };
    expect_kind(store.query(&reversed).await, ErrorKind::InvalidInput);
    expect_kind(
        store.stats("h", Some(sec(2)), Some(sec(1))).await,
        ErrorKind::InvalidInput,
    );
    assert!(query(&store, HookQuery::default()).await.is_empty());
}

/// Two tenants never see each other's history.
pub async fn tenants_are_isolated(
    store: Arc<dyn HookHistoryStore>,
    other: Arc<dyn HookHistoryStore>,
) {
    store.record(run("h", 1, 10)).await.unwrap();
    other.record(failed("h", 2, 30)).await.unwrap();
    assert_eq!(ns(&query(&store, of("h")).await), [1]);
    assert_eq!(ns(&query(&other, HookQuery::default()).await), [2]);
    let mine = store.stats("h", None, None).await.unwrap();
    assert_eq!(
        (mine.count, mine.failures, mine.mean_ms),
        (1, 0, Some(10.0))
    );
    assert_eq!(other.drop_before(sec(100)).await.unwrap(), 1);
    assert_eq!(ns(&query(&store, of("h")).await), [1]);
}

/// A damaged index entry or record is `Corruption`; once retention drops everything no key
/// of the store is left.
pub async fn damaged_history_is_corruption(
    store: Arc<dyn HookHistoryStore>,
    backend: Arc<dyn StorageBackend>,
) {
    let record = store.record(run("h", 1, 10)).await.unwrap();
    store.record(run("h", 2, 20)).await.unwrap();
    let index = HookStream::Hook("h").entry(record.at, record.id).unwrap();
    let original = flip_byte(&*backend, &index, 0).await;
    expect_kind(store.stats("h", None, None).await, ErrorKind::Corruption);
    expect_kind(store.query(&of("h")).await, ErrorKind::Corruption);
    backend.set(&index, original).await.unwrap();
    let primary = HookStream::All.entry(record.at, record.id).unwrap();
    let original = flip_byte(&*backend, &primary, 0).await;
    expect_kind(store.query(&of("h")).await, ErrorKind::Corruption);
    expect_kind(store.drop_before(sec(100)).await, ErrorKind::Corruption);
    backend.set(&primary, original).await.unwrap();
    assert_eq!(all_keys(&*backend).await.len(), 4);
    assert_eq!(store.drop_before(sec(100)).await.unwrap(), 2);
    assert_eq!(all_keys(&*backend).await, []);
}

/// Expands to one `#[tokio::test]` per case of the hooks suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn HookHistoryStore>, Arc<dyn HookHistoryStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! hooks_suite {
    ($factory:path) => {
        $crate::__store_cases!(store hooks, $factory;
            record_and_query_in_time_order,
            stats_have_concrete_numbers,
            query_pages_by_cursor_and_time,
            drop_before_removes_old_records,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair hooks, $factory; tenants_are_isolated);
    };
}

/// Runs [`hooks_suite!`](crate::hooks_suite) on `GenericHookHistoryStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! hooks_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(hooks, hooks_suite, HookHistoryStore, GenericHookHistoryStore, $backend;
            store_and_backend: [damaged_history_is_corruption];
            backend: []);
    };
}
