//! Conformance cases for [`EventLogStore`].
//!
//! [`event_log_suite!`](crate::event_log_suite) takes a factory returning two stores on two
//! fresh, distinct tenants; every case but the isolation one uses only the first.

use std::sync::Arc;

use cairn_core::{ErrorKind, StorageBackend};
use cairn_stores::event_log::keys::EventStream;
use cairn_stores::event_log::{
    Event, EventCursor, EventLogStore, EventQuery, EventRecord, TypePattern,
};
use cairn_stores::stream::TimeStream;
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::probe::{all_keys, expect_kind, flip_byte};

const T0: OffsetDateTime = datetime!(2026-05-10 08:00 UTC);

fn sec(n: i64) -> OffsetDateTime {
    T0 + Duration::seconds(n)
}

fn pattern(text: &str) -> Option<TypePattern> {
    Some(TypePattern::parse(text).unwrap())
}

fn payload_ns(records: &[EventRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r.payload["n"].as_i64().expect("payload has n"))
        .collect()
}

async fn query(store: &Arc<dyn EventLogStore>, query: EventQuery) -> Vec<EventRecord> {
    store.query(&query).await.unwrap()
}

async fn all(store: &Arc<dyn EventLogStore>) -> Vec<EventRecord> {
    query(store, EventQuery::default()).await
}

/// Events come back ordered by time whatever the append order; equal times keep append
/// order (by id).
pub async fn query_orders_by_time_then_id(store: Arc<dyn EventLogStore>) {
    for (n, at) in [(3, 30), (1, 10), (2, 20)] {
        let event = Event::new("step", json!({ "n": n })).at(sec(at));
        store.append(event).await.unwrap();
    }
    let tied: Vec<Event> = (4..=6)
        .map(|n| Event::new("step", json!({ "n": n })).at(sec(40)))
        .collect();
    let records = store.append_batch(tied).await.unwrap();
    assert_eq!(payload_ns(&records), [4, 5, 6]);
    assert!(records[0].id < records[1].id && records[1].id < records[2].id);
    let got = all(&store).await;
    assert_eq!(payload_ns(&got), [1, 2, 3, 4, 5, 6]);
    assert_eq!(got[3..], records[..]);
    assert_eq!(got[0].event_type, "step");
    assert_eq!(got[0].at, sec(10));
    assert_eq!(got[0].correlation_id, None);
    let now = store.append(Event::new("step", json!({"n": 7}))).await;
    assert!(now.unwrap().at > sec(40));
}

/// Exact types and `prefix.*` patterns; `a.*` matches `a.b` but neither `a` nor `ab.c`.
pub async fn type_filters_exact_and_prefix(store: Arc<dyn EventLogStore>) {
    let types = [
        "tool.call.started",
        "tool.call.finished",
        "tool.result",
        "toolbox.open",
        "tool",
        "ab.c",
        "a.b",
        "a",
        "a.b.c.d",
    ];
    let events = types
        .iter()
        .enumerate()
        .map(|(n, t)| Event::new(*t, json!({ "n": n })).at(sec(n as i64)))
        .collect();
    store.append_batch(events).await.unwrap();
    let matching = |text: &str| {
        let store = store.clone();
        let event_type = pattern(text);
        async move {
            let q = EventQuery {
                event_type,
                ..EventQuery::default()
            };
            payload_ns(&query(&store, q).await)
        }
    };
    assert_eq!(matching("tool.*").await, [0, 1, 2]);
    assert_eq!(matching("tool.call.*").await, [0, 1]);
    assert_eq!(matching("tool.result").await, [2]);
    assert_eq!(matching("tool").await, [4]);
    assert_eq!(matching("a.*").await, [6, 8]);
    assert_eq!(matching("a.b.*").await, [8]);
    assert_eq!(matching("a").await, [7]);
    assert_eq!(matching("ab.*").await, [5]);
    assert!(matching("tool.call.started.*").await.is_empty());
    assert!(matching("nothing.*").await.is_empty());
    assert!(TypePattern::parse("a.*").unwrap().matches("a.b"));
    assert!(!TypePattern::parse("a.*").unwrap().matches("ab.c"));
    assert_eq!(TypePattern::parse("a.b.*").unwrap().to_string(), "a.b.*");
}

/// The correlation filter, alone and combined with a type pattern and a time range.
pub async fn correlation_filter_combines_with_type_and_time(store: Arc<dyn EventLogStore>) {
    let events = [
        ("run.start", "r1", 0),
        ("tool.call", "r1", 1),
        ("tool.call", "r2", 2),
        ("tool.done", "r1", 3),
        ("run.end", "r1", 4),
    ];
    for (n, (event_type, corr, at)) in events.into_iter().enumerate() {
        let event = Event::new(event_type, json!({ "n": n }))
            .correlated(corr)
            .at(sec(at));
        store.append(event).await.unwrap();
    }
    store
        .append(Event::new("tool.call", json!({"n": 5})).at(sec(5)))
        .await
        .unwrap();
    let r1 = |event_type, from, to| EventQuery {
        correlation_id: Some("r1".into()),
        event_type,
        from,
        to,
        ..EventQuery::default()
    };
    assert_eq!(
        payload_ns(&query(&store, r1(None, None, None)).await),
        [0, 1, 3, 4]
    );
    let tools = pattern("tool.*");
    assert_eq!(
        payload_ns(&query(&store, r1(tools.clone(), None, None)).await),
        [1, 3]
    );
    let window = r1(tools, Some(sec(2)), Some(sec(4)));
    assert_eq!(payload_ns(&query(&store, window).await), [3]);
    let calls = EventQuery {
        event_type: pattern("tool.call"),
        ..EventQuery::default()
    };
    assert_eq!(payload_ns(&query(&store, calls).await), [1, 2, 5]);
    let unknown = EventQuery {
        correlation_id: Some("r9".into()),
        ..EventQuery::default()
    };
    assert!(query(&store, unknown).await.is_empty());
    let got = query(&store, r1(None, None, None)).await;
    assert!(
        got.iter()
            .all(|r| r.correlation_id.as_deref() == Some("r1"))
    );
}

/// Pages of 10 over 25 events via the cursor: 10, 10, 5, no gaps or repeats; the same
/// with a type filter and a time range.
pub async fn limit_and_cursor_page_without_gaps(store: Arc<dyn EventLogStore>) {
    let events = (0..25)
        .map(|n| {
            let kind = if n % 2 == 0 { "job.even" } else { "job.odd" };
            Event::new(kind, json!({ "n": n })).at(sec(n / 3))
        })
        .collect();
    store.append_batch(events).await.unwrap();
    let walk = |base: EventQuery| {
        let store = store.clone();
        async move {
            let mut pages = Vec::new();
            let mut after: Option<EventCursor> = None;
            loop {
                let q = EventQuery {
                    after,
                    ..base.clone()
                };
                let page = query(&store, q).await;
                if page.is_empty() {
                    return pages;
                }
                after = page.last().map(EventCursor::from);
                pages.push(payload_ns(&page));
            }
        }
    };
    let by10 = EventQuery {
        limit: 10,
        ..EventQuery::default()
    };
    let pages = walk(by10.clone()).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(pages.concat(), (0..25).collect::<Vec<_>>());
    let odd = walk(EventQuery {
        event_type: pattern("job.odd"),
        limit: 5,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        odd.concat(),
        (0..25).filter(|n| n % 2 == 1).collect::<Vec<_>>()
    );
    assert_eq!(odd.len(), 3);
    let window = walk(EventQuery {
        event_type: pattern("job.*"),
        from: Some(sec(2)),
        to: Some(sec(5)),
        limit: 4,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(window, [vec![6, 7, 8, 9], vec![10, 11, 12, 13], vec![14]]);
}

/// 40 concurrent appends (20 tasks × 2 correlated events) are all kept, with distinct ids,
/// and every index sees every event.
pub async fn concurrent_appends_are_all_kept(store: Arc<dyn EventLogStore>) {
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let event = |t: &str| Event::new(t, json!({ "n": n })).correlated(format!("c{n}"));
                store.append(event("conc.one")).await.unwrap();
                store.append_batch(vec![event("conc.two")]).await.unwrap();
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let everything = query(
        &store,
        EventQuery {
            limit: 100,
            ..EventQuery::default()
        },
    )
    .await;
    assert_eq!(everything.len(), 40);
    let mut ids: Vec<_> = everything.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    let by_prefix = EventQuery {
        event_type: pattern("conc.*"),
        limit: 100,
        ..EventQuery::default()
    };
    assert_eq!(query(&store, by_prefix).await.len(), 40);
    for n in [0, 7, 19] {
        let by_corr = EventQuery {
            correlation_id: Some(format!("c{n}")),
            ..EventQuery::default()
        };
        assert_eq!(payload_ns(&query(&store, by_corr).await), [n, n]);
    }
}

/// `from` is inclusive and `to` exclusive; `from == to` is empty.
pub async fn time_range_is_half_open(store: Arc<dyn EventLogStore>) {
    for n in 0..5 {
        let event = Event::new("tick", json!({ "n": n })).at(sec(n * 10));
        store.append(event).await.unwrap();
    }
    let range = |from, to| EventQuery {
        from,
        to,
        ..EventQuery::default()
    };
    let got = |q| {
        let store = store.clone();
        async move { payload_ns(&query(&store, q).await) }
    };
    assert_eq!(got(range(Some(sec(10)), Some(sec(30)))).await, [1, 2]);
    assert_eq!(got(range(Some(sec(11)), Some(sec(31)))).await, [2, 3]);
    assert_eq!(got(range(None, Some(sec(10)))).await, [0]);
    assert_eq!(got(range(Some(sec(40)), None)).await, [4]);
    assert!(got(range(Some(sec(20)), Some(sec(20)))).await.is_empty());
}

/// Events from 1900 and 2999 (and just before 1970) are stored and ordered by time.
pub async fn back_dated_and_far_future_events(store: Arc<dyn EventLogStore>) {
    let times = [
        (0, datetime!(2999-12-31 23:59:59.999999999 UTC)),
        (1, datetime!(1900-01-01 0:00 UTC)),
        (2, datetime!(1969-12-31 23:59:59.5 UTC)),
        (3, datetime!(1970-01-01 0:00 UTC)),
        (4, T0),
    ];
    for (n, at) in times {
        let event = Event::new("audit.replay", json!({ "n": n })).at(at);
        store.append(event).await.unwrap();
    }
    assert_eq!(payload_ns(&all(&store).await), [1, 2, 3, 4, 0]);
    let old = EventQuery {
        to: Some(datetime!(1970-01-01 0:00 UTC)),
        ..EventQuery::default()
    };
    assert_eq!(payload_ns(&query(&store, old).await), [1, 2]);
    let future = EventQuery {
        from: Some(datetime!(2100-01-01 0:00 UTC)),
        event_type: pattern("audit.*"),
        ..EventQuery::default()
    };
    let got = query(&store, future).await;
    assert_eq!(got[0].at, datetime!(2999-12-31 23:59:59.999999999 UTC));
}

/// `drop_before` removes older events from every view, reports the count, and later calls
/// remove nothing more.
pub async fn drop_before_removes_old_events(store: Arc<dyn EventLogStore>) {
    for n in 0..6 {
        let event = Event::new("task.done", json!({ "n": n }))
            .correlated(if n % 2 == 0 { "even" } else { "odd" })
            .at(sec(n * 60));
        store.append(event).await.unwrap();
    }
    assert_eq!(store.drop_before(sec(180)).await.unwrap(), 3);
    assert_eq!(payload_ns(&all(&store).await), [3, 4, 5]);
    let typed = EventQuery {
        event_type: pattern("task.*"),
        ..EventQuery::default()
    };
    assert_eq!(payload_ns(&query(&store, typed).await), [3, 4, 5]);
    let even = EventQuery {
        correlation_id: Some("even".into()),
        ..EventQuery::default()
    };
    assert_eq!(payload_ns(&query(&store, even).await), [4]);
    assert_eq!(store.drop_before(sec(180)).await.unwrap(), 0);
    assert_eq!(store.drop_before(sec(-1_000_000)).await.unwrap(), 0);
    assert_eq!(store.drop_before(sec(1_000_000)).await.unwrap(), 3);
    assert!(all(&store).await.is_empty());
}

/// Bad types, patterns, correlation ids, limits and ranges are `InvalidInput`; a batch with
/// one bad event writes nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn EventLogStore>) {
    let long = "a".repeat(257);
    for bad in [
        "",
        "a..b",
        ".a",
        "a.",
        "a b",
        "a.*",
        "*",
        "tab\t",
        long.as_str(),
    ] {
        expect_kind(
            store.append(Event::new(bad, json!(null))).await,
            ErrorKind::InvalidInput,
        );
    }
    for bad in ["a.*.b", "*", ".*", "a*", "a.**", "*.a", "", "a..*"] {
        expect_kind(TypePattern::parse(bad), ErrorKind::InvalidInput);
    }
    let batch = vec![
        Event::new("ok.one", json!(1)),
        Event::new("", json!(2)),
        Event::new("ok.three", json!(3)),
    ];
    expect_kind(store.append_batch(batch).await, ErrorKind::InvalidInput);
    let uncorrelated = Event::new("ok", json!(1)).correlated("");
    expect_kind(store.append(uncorrelated).await, ErrorKind::InvalidInput);
    let ancient = Event::new("ok", json!(1)).at(datetime!(-0001-01-01 0:00 UTC));
    expect_kind(store.append(ancient).await, ErrorKind::InvalidInput);
    let bad_queries = [
        EventQuery {
            limit: 0,
            ..EventQuery::default()
        },
        EventQuery {
            limit: cairn_core::MAX_SCAN_LIMIT + 1,
            ..EventQuery::default()
        },
        EventQuery {
            from: Some(sec(2)),
            to: Some(sec(1)),
            ..EventQuery::default()
        },
        EventQuery {
            event_type: Some(TypePattern::Exact("a.*.b".into())),
            ..EventQuery::default()
        },
        EventQuery {
            event_type: Some(TypePattern::Prefix("".into())),
            ..EventQuery::default()
        },
        EventQuery {
            correlation_id: Some(String::new()),
            ..EventQuery::default()
        },
    ];
    for q in bad_queries {
        expect_kind(store.query(&q).await, ErrorKind::InvalidInput);
    }
    assert!(all(&store).await.is_empty());
    assert!(store.append_batch(Vec::new()).await.unwrap().is_empty());
}

/// Two tenants never see each other's events, and retention in one leaves the other alone.
pub async fn tenants_are_isolated(store: Arc<dyn EventLogStore>, other: Arc<dyn EventLogStore>) {
    let mine = Event::new("x.y", json!({"n": 1}))
        .correlated("c")
        .at(sec(0));
    store.append(mine).await.unwrap();
    let theirs = Event::new("x.y", json!({"n": 2}))
        .correlated("c")
        .at(sec(0));
    other.append(theirs).await.unwrap();
    let by_corr = EventQuery {
        correlation_id: Some("c".into()),
        event_type: pattern("x.*"),
        ..EventQuery::default()
    };
    assert_eq!(payload_ns(&query(&store, by_corr.clone()).await), [1]);
    assert_eq!(payload_ns(&query(&other, by_corr).await), [2]);
    assert_eq!(other.drop_before(sec(10)).await.unwrap(), 1);
    assert_eq!(payload_ns(&all(&store).await), [1]);
    assert!(all(&other).await.is_empty());
}

/// A damaged stored event reads as `Corruption`, through the records and through an index;
/// retention over it fails rather than leave index entries behind; after dropping
/// everything no key of the store is left.
pub async fn damaged_events_are_corruption(
    store: Arc<dyn EventLogStore>,
    backend: Arc<dyn StorageBackend>,
) {
    let record = store
        .append(
            Event::new("a.b.c", json!({"n": 1}))
                .correlated("c")
                .at(sec(0)),
        )
        .await
        .unwrap();
    store
        .append(Event::new("a.x", json!({"n": 2})).at(sec(1)))
        .await
        .unwrap();
    let key = EventStream::All.entry(record.at, record.id).unwrap();
    let original = flip_byte(&*backend, &key, 0).await;
    expect_kind(
        store.query(&EventQuery::default()).await,
        ErrorKind::Corruption,
    );
    let by_type = EventQuery {
        event_type: pattern("a.*"),
        ..EventQuery::default()
    };
    expect_kind(store.query(&by_type).await, ErrorKind::Corruption);
    expect_kind(store.drop_before(sec(10)).await, ErrorKind::Corruption);
    backend.set(&key, original).await.unwrap();
    let index = EventStream::Correlation("c")
        .entry(record.at, record.id)
        .unwrap();
    let pointer = flip_byte(&*backend, &index, 0).await;
    let by_corr = EventQuery {
        correlation_id: Some("c".into()),
        ..EventQuery::default()
    };
    expect_kind(store.query(&by_corr).await, ErrorKind::Corruption);
    backend.set(&index, pointer).await.unwrap();
    assert_eq!(payload_ns(&store.query(&by_corr).await.unwrap()), [1]);
    // One record plus type, two prefixes and correlation; one record plus type and prefix.
    assert_eq!(all_keys(&*backend).await.len(), 5 + 3);
    assert_eq!(store.drop_before(sec(10)).await.unwrap(), 2);
    assert_eq!(all_keys(&*backend).await, []);
}

/// Expands to one `#[tokio::test]` per case of the event_log suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn EventLogStore>, Arc<dyn EventLogStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! event_log_suite {
    ($factory:path) => {
        $crate::__store_cases!(store event_log, $factory;
            query_orders_by_time_then_id,
            type_filters_exact_and_prefix,
            correlation_filter_combines_with_type_and_time,
            limit_and_cursor_page_without_gaps,
            concurrent_appends_are_all_kept,
            time_range_is_half_open,
            back_dated_and_far_future_events,
            drop_before_removes_old_events,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair event_log, $factory; tenants_are_isolated);
    };
}

/// Runs [`event_log_suite!`](crate::event_log_suite) on `GenericEventLogStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! event_log_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(event_log, event_log_suite, EventLogStore, GenericEventLogStore, $backend;
            store_and_backend: [damaged_events_are_corruption];
            backend: []);
    };
}
