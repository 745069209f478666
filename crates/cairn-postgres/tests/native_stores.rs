//! The PostgreSQL-native stores (needs `DATABASE_URL`): the same testkit suites as their
//! generic implementations, plus checks of what only the native schema does (HNSW index use,
//! partitions, nanosecond times, TTL in SQL).

mod common;

use std::sync::Arc;

use cairn_postgres::{
    PostgresAgentStateStore, PostgresBackend, PostgresEpisodicStore, PostgresEventLogStore,
    PostgresGraphStore, PostgresHookHistoryStore, PostgresSessionStore, PostgresVectorStore,
};
use cairn_stores::agent_state::AgentStateStore;
use cairn_stores::episodic::EpisodicStore;
use cairn_stores::event_log::{Event, EventLogStore, EventQuery, TypePattern};
use cairn_stores::graph::GraphStore;
use cairn_stores::hooks::HookHistoryStore;
use cairn_stores::sessions::SessionStore;
use cairn_stores::vectors::{Metric, SearchRequest, VectorRecord, VectorStore};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

/// Two stores built by `make` on two fresh tenants of one backend.
async fn pair<S: ?Sized>(make: fn(&PostgresBackend) -> Arc<S>) -> (Arc<S>, Arc<S>) {
    let backend = common::backend().await;
    let store = make(&backend.scoped(&common::random_tenant()));
    let other = make(&backend.scoped(&common::random_tenant()));
    (store, other)
}

async fn vector_stores() -> (Arc<dyn VectorStore>, Arc<dyn VectorStore>) {
    pair::<dyn VectorStore>(|b| Arc::new(PostgresVectorStore::new(b))).await
}

async fn event_stores() -> (Arc<dyn EventLogStore>, Arc<dyn EventLogStore>) {
    pair::<dyn EventLogStore>(|b| Arc::new(PostgresEventLogStore::new(b))).await
}

async fn episodic_stores() -> (Arc<dyn EpisodicStore>, Arc<dyn EpisodicStore>) {
    pair::<dyn EpisodicStore>(|b| Arc::new(PostgresEpisodicStore::new(b))).await
}

async fn agent_state_stores() -> (Arc<dyn AgentStateStore>, Arc<dyn AgentStateStore>) {
    pair::<dyn AgentStateStore>(|b| Arc::new(PostgresAgentStateStore::new(b))).await
}

async fn session_stores() -> (Arc<dyn SessionStore>, Arc<dyn SessionStore>) {
    pair::<dyn SessionStore>(|b| Arc::new(PostgresSessionStore::new(b))).await
}

async fn hook_stores() -> (Arc<dyn HookHistoryStore>, Arc<dyn HookHistoryStore>) {
    pair::<dyn HookHistoryStore>(|b| Arc::new(PostgresHookHistoryStore::new(b))).await
}

mod vectors {
    cairn_testkit::vectors_suite!(super::vector_stores);
}

mod event_log {
    cairn_testkit::event_log_suite!(super::event_stores);
}

mod episodic {
    cairn_testkit::episodic_suite!(super::episodic_stores);
}

mod agent_state {
    cairn_testkit::agent_state_suite!(super::agent_state_stores);
}

mod sessions {
    cairn_testkit::sessions_suite!(super::session_stores);
}

mod hooks {
    cairn_testkit::hooks_suite!(super::hook_stores);
}

async fn graph_stores() -> (Arc<dyn GraphStore>, Arc<dyn GraphStore>) {
    pair::<dyn GraphStore>(|b| Arc::new(PostgresGraphStore::new(b))).await
}

mod graph {
    cairn_testkit::graph_suite!(super::graph_stores);
}

/// A deterministic pseudo-random unit-scale vector.
fn pseudo_random(seed: u64, dimension: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..dimension)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// A backend on a database of its own where `enable_sort = off`, so the planner prices an
/// exact scan of a small collection as it would for a large one (see the tests below).
async fn sort_averse_backend() -> (common::TempDatabase, PostgresBackend) {
    let database = common::TempDatabase::create().await;
    common::client(&common::database_url())
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET enable_sort = off",
            database.name
        ))
        .await
        .unwrap();
    let backend = PostgresBackend::connect(common::test_config(&database.url))
        .await
        .unwrap();
    (database, backend)
}

/// A 3072-dimension collection is searched through the HNSW index on its `halfvec`
/// expression, not by a sequential scan, and the hits are re-ranked exactly.
///
/// pgvector's cost model rightly prefers an exact scan of a small collection (a few dozen
/// rows here; the index wins from some thousands of 3072-dimension rows, too many to insert in
/// a test). So the test runs in a database of its own with `enable_sort = off`, which makes
/// the planner price an exact scan as it would for a large collection: the plan must then be
/// the index scan, which shows the statement matches the index (expression, operator class,
/// partial-index predicate) and how a large collection is searched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_of_3072_dimensions_uses_the_halfvec_hnsw_index() {
    let (_database, backend) = sort_averse_backend().await;
    let store = PostgresVectorStore::new(&backend.scoped(&common::random_tenant()));
    store
        .create_collection("wide", 3072, Metric::Cosine)
        .await
        .unwrap();
    let records: Vec<VectorRecord> = (0..40)
        .map(|i| VectorRecord {
            id: format!("v{i:02}"),
            vector: pseudo_random(i, 3072),
            metadata: json!({ "even": i % 2 == 0 })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    store.upsert_batch("wide", records).await.unwrap();

    let mut request = SearchRequest::new(pseudo_random(7, 3072), 5);
    request.filter = json!({"even": false})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let plan = store
        .explain_search("wide", request.clone())
        .await
        .unwrap()
        .iter()
        .map(|line| line.split("'[").next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.contains("vector_embeddings_3072_cosine_hnsw"),
        "the plan does not use the HNSW index:\n{plan}"
    );
    assert!(
        !plan.contains("Seq Scan"),
        "the plan scans a table sequentially:\n{plan}"
    );

    let hits = store.search("wide", request).await.unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].id, "v07");
    assert!((hits[0].score - 1.0).abs() < 1e-5, "{}", hits[0].score);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits.iter().all(|h| h.metadata["even"] == json!(false)));
}

/// An indexed dimension (384) gives the same hits as the exact answer for each metric, with
/// a filter, and honours `ef_search`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_384_search_matches_exact_order() {
    let backend = common::backend().await;
    let store = PostgresVectorStore::new(&backend.scoped(&common::random_tenant()));
    let vectors: Vec<Vec<f32>> = (0..60).map(|i| pseudo_random(100 + i, 384)).collect();
    for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
        let name = format!("{metric:?}");
        store.create_collection(&name, 384, metric).await.unwrap();
        let records = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| VectorRecord {
                id: format!("v{i:02}"),
                vector: v.clone(),
                metadata: json!({ "group": i % 3 })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        store.upsert_batch(&name, records).await.unwrap();
        let query = pseudo_random(999, 384);
        let mut request = SearchRequest::new(query.clone(), 4);
        request.filter = json!({"group": 1}).as_object().cloned().unwrap_or_default();
        request.ef_search = Some(200);
        let hits = store.search(&name, request).await.unwrap();
        let mut exact: Vec<(f32, String)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 1)
            .map(|(i, v)| {
                let dot: f32 = v.iter().zip(&query).map(|(a, b)| a * b).sum();
                let norm = |x: &[f32]| x.iter().map(|a| a * a).sum::<f32>().sqrt();
                let l2 = v
                    .iter()
                    .zip(&query)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                let rank = match metric {
                    Metric::Cosine => -dot / (norm(v) * norm(&query)),
                    Metric::L2 => l2,
                    Metric::Dot => -dot,
                };
                (rank, format!("v{i:02}"))
            })
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let want: Vec<&str> = exact.iter().take(4).map(|(_, id)| id.as_str()).collect();
        let got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(got, want, "{metric:?}");
        assert_eq!(store.count(&name).await.unwrap(), 60);
    }
    let mut bad = SearchRequest::new(pseudo_random(1, 384), 1);
    bad.ef_search = Some(0);
    let err = store.search("Cosine", bad).await.unwrap_err();
    assert_eq!(err.kind(), cairn_core::ErrorKind::InvalidInput);
}

/// The plan of `request` on `collection`, without the query vector's literal.
async fn plan_of(store: &PostgresVectorStore, collection: &str, request: SearchRequest) -> String {
    store
        .explain_search(collection, request)
        .await
        .unwrap()
        .iter()
        .map(|line| line.split("'[").next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Records `v00`, `v01`, … of `dimension` pseudo-random components.
fn records(count: u64, dimension: usize) -> Vec<VectorRecord> {
    (0..count)
        .map(|i| VectorRecord {
            id: format!("v{i:02}"),
            vector: pseudo_random(i, dimension),
            metadata: Default::default(),
        })
        .collect()
}

/// Dimensions without a table of their own get one on first use, with the index their size
/// allows: 5 an HNSW index on the vector, 2500 one on its `halfvec`, 4500 none (exact scan).
/// As in the 3072 test, `enable_sort = off` in a database of its own makes the planner price
/// the exact scan as for a large collection, so an index, where there is one, must be used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dimension_gets_a_table_with_the_index_its_size_allows() {
    let (database, backend) = sort_averse_backend().await;
    let store = PostgresVectorStore::new(&backend.scoped(&common::random_tenant()));
    let owner = common::client(&database.url).await;
    for (dimension, metric, index) in [
        (5, Metric::Cosine, Some("vector_embeddings_5_cosine_hnsw")),
        (2500, Metric::L2, Some("vector_embeddings_2500_l2_hnsw")),
        (4500, Metric::Dot, None),
    ] {
        let table = format!("vector_embeddings_{dimension}");
        let before: Option<String> = owner
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .unwrap()
            .get(0);
        assert_eq!(before, None, "{table} exists before its first collection");
        let name = format!("d{dimension}");
        store
            .create_collection(&name, dimension, metric)
            .await
            .unwrap();
        store
            .upsert_batch(&name, records(30, dimension))
            .await
            .unwrap();
        let request = SearchRequest::new(pseudo_random(11, dimension), 3);
        let plan = plan_of(&store, &name, request.clone()).await;
        match index {
            Some(index) => {
                assert!(plan.contains(index), "{table}: no {index} in\n{plan}");
                assert!(!plan.contains("Seq Scan"), "{table}:\n{plan}");
            }
            None => assert!(!plan.contains("hnsw"), "{table}:\n{plan}"),
        }
        let hits = store.search(&name, request).await.unwrap();
        assert_eq!(
            hits[0].id, "v11",
            "{table}: the query's own vector comes first"
        );
        assert_eq!(store.count(&name).await.unwrap(), 30);
        let forced: bool = owner
            .query_one(
                "SELECT relforcerowsecurity FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert!(forced, "{table} does not force row-level security");
    }
}

/// Sixteen tenants creating the first collections of a new dimension at once all succeed,
/// and one table serves them all, each seeing only its own vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_collections_of_a_dimension_share_one_new_table() {
    let database = common::TempDatabase::create().await;
    let backend = cairn_postgres::PostgresBackend::connect(common::test_config(&database.url))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|n| {
            let store = PostgresVectorStore::new(&backend.scoped(&common::random_tenant()));
            tokio::spawn(async move {
                store.create_collection("c", 77, Metric::L2).await?;
                store.upsert_batch("c", records(n + 1, 77)).await?;
                let count = store.count("c").await?;
                let hits = store
                    .search("c", SearchRequest::new(pseudo_random(0, 77), 100))
                    .await?;
                Ok::<_, cairn_core::Error>((n + 1, count, hits.len()))
            })
        })
        .collect();
    for task in tasks {
        let (written, count, found) = task.await.unwrap().unwrap();
        assert_eq!((count, found as u64), (written, written));
    }
    let tables: i64 = common::client(&database.url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'vector_embeddings_77'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
}

/// Which partition of `events` holds the event `id` (read as the superuser, from outside the
/// store).
async fn partition_of(id: uuid::Uuid) -> String {
    let client = common::client(&common::database_url()).await;
    let row = client
        .query_one(
            "SELECT tableoid::regclass::text FROM events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    row.get(0)
}

/// A back-dated (2001) and a far-future (2999) event land in the DEFAULT partition, an event
/// of now in the current month's partition, and queries find each where it belongs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_dated_and_future_events_land_in_the_default_partition() {
    let backend = common::backend().await;
    let store = PostgresEventLogStore::new(&backend.scoped(&common::random_tenant()));
    let old = store
        .append(
            Event::new("audit.old", json!({"n": 1}))
                .at(datetime!(2001-03-04 05:06:07.123456789 UTC)),
        )
        .await
        .unwrap();
    let future = store
        .append(Event::new("audit.future", json!({"n": 3})).at(datetime!(2999-01-01 0:00 UTC)))
        .await
        .unwrap();
    let now = store
        .append(Event::new("audit.now", json!({"n": 2})))
        .await
        .unwrap();
    assert_eq!(partition_of(old.id).await, "events_default");
    assert_eq!(partition_of(future.id).await, "events_default");
    let today = OffsetDateTime::now_utc();
    assert_eq!(
        partition_of(now.id).await,
        format!("events_y{:04}m{:02}", today.year(), u8::from(today.month()))
    );

    let in_2001 = EventQuery {
        from: Some(datetime!(2001-01-01 0:00 UTC)),
        to: Some(datetime!(2002-01-01 0:00 UTC)),
        ..EventQuery::default()
    };
    assert_eq!(
        store.query(&in_2001).await.unwrap(),
        std::slice::from_ref(&old)
    );
    let audits = EventQuery {
        event_type: Some(TypePattern::parse("audit.*").unwrap()),
        ..EventQuery::default()
    };
    let all = store.query(&audits).await.unwrap();
    assert_eq!(all, [old.clone(), now.clone(), future.clone()]);
    assert_eq!(
        all[0].at,
        datetime!(2001-03-04 05:06:07.123456789 UTC),
        "nanoseconds survive"
    );
    assert_eq!(
        store
            .drop_before(datetime!(2500-01-01 0:00 UTC))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.query(&audits).await.unwrap(), [future]);
    assert!(
        store
            .query(&EventQuery {
                to: Some(datetime!(2500-01-01 0:00 UTC)),
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

/// A query with a time range reads only the partitions that can hold it: one of 2001 only
/// the DEFAULT partition, one of this month this month's partition (and the DEFAULT one,
/// which may hold any month), never next month's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_range_queries_read_only_their_partitions() {
    let backend = common::backend().await;
    let store = PostgresEventLogStore::new(&backend.scoped(&common::random_tenant()));
    store.append(Event::new("now", json!(1))).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let this_month = format!("events_y{:04}m{:02}", now.year(), u8::from(now.month()));
    let next = now + time::Duration::days(31);
    let next_month = format!("events_y{:04}m{:02}", next.year(), u8::from(next.month()));
    let plan = |from, to| {
        let store = &store;
        async move {
            let query = EventQuery {
                from: Some(from),
                to: Some(to),
                ..EventQuery::default()
            };
            store.explain_query(&query).await.unwrap().join("\n")
        }
    };
    let old = plan(
        datetime!(2001-03-01 0:00 UTC),
        datetime!(2001-04-01 0:00 UTC),
    )
    .await;
    assert!(old.contains("events_default"), "{old}");
    assert!(!old.contains("events_y"), "{old}");
    let current = plan(now - time::Duration::seconds(1), now).await;
    assert!(current.contains(&this_month), "{current}");
    assert!(!current.contains(&next_month), "{current}");
}

/// A random month in 1100..2000 (so runs on a long-lived database do not meet each other's
/// rows) given a partition of its own: its start, the next month's start and the partition.
async fn old_month_partition(
    owner: &tokio_postgres::Client,
) -> (OffsetDateTime, OffsetDateTime, String) {
    let seed = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(common::unique())
    };
    let year = 1100 + (seed % 900) as i32;
    let month = time::Month::try_from(1 + (seed / 900 % 12) as u8).unwrap();
    let start = time::Date::from_calendar_date(year, month, 1)
        .unwrap()
        .midnight()
        .assume_utc();
    let end = start + time::Duration::days(31);
    let end = time::Date::from_calendar_date(end.year(), end.month(), 1)
        .unwrap()
        .midnight()
        .assume_utc();
    let partition = format!("events_y{year:04}m{:02}", u8::from(month));
    let created: bool = owner
        .query_one("SELECT cairn_ensure_event_partition($1)", &[&start])
        .await
        .unwrap()
        .get(0);
    assert!(created, "{partition} already existed");
    (start, end, partition)
}

async fn table_exists(owner: &tokio_postgres::Client, name: &str) -> bool {
    owner
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

/// While another transaction holds a lock on `events`, retention still deletes the tenant's
/// rows and returns, leaving the empty partition (its lock is waited for at most 2 s); once
/// the lock is gone, the next retention drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_leaves_a_locked_partition_for_the_next_call() {
    let backend = common::backend().await;
    let store = PostgresEventLogStore::new(&backend.scoped(&common::random_tenant()));
    let owner = common::client(&common::database_url()).await;
    let (start, end, partition) = old_month_partition(&owner).await;
    store
        .append(Event::new("old", json!(1)).at(start))
        .await
        .unwrap();
    let blocker = common::client(&common::database_url()).await;
    blocker
        .batch_execute("BEGIN; SELECT 1 FROM events LIMIT 0")
        .await
        .unwrap();
    let dropped = tokio::time::timeout(std::time::Duration::from_secs(60), store.drop_before(end))
        .await
        .expect("retention waited for the lock without bound")
        .unwrap();
    assert_eq!(dropped, 1);
    assert!(
        table_exists(&owner, &partition).await,
        "dropped under a lock"
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.drop_before(end).await.unwrap(), 0);
    assert!(
        !table_exists(&owner, &partition).await,
        "left after the lock went"
    );
}

/// Two retention calls that both find the same empty past partition and queue for the lock
/// on `events` both succeed: the first drops it, the second finds it gone. (Called directly:
/// through the stores, the second call's tenant DELETE would queue behind the first's lock
/// request and list the partitions only after the drop.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retention_calls_drop_a_partition_once() {
    let owner = common::client(&common::database_url()).await;
    let (_, end, partition) = old_month_partition(&owner).await;
    let blocker = common::client(&common::database_url()).await;
    blocker
        .batch_execute("BEGIN; SELECT 1 FROM events LIMIT 0")
        .await
        .unwrap();
    let call = move || async move {
        let client = common::client(&common::database_url()).await;
        client
            .query_one("SELECT cairn_drop_event_partitions_before($1)", &[&end])
            .await
            .map(|row| row.get::<_, i32>(0))
    };
    let calls = tokio::spawn(async move { tokio::join!(call(), call()) });
    // Release the blocker once both calls wait for the lock (or after 1.5 s at most, well
    // inside the function's 2 s lock timeout).
    for _ in 0..30 {
        let waiting: i64 = owner
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass \
                 AND NOT granted",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let (first, second) = calls.await.unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first + second >= 1, "dropped {first} + {second}");
    assert!(
        !table_exists(&owner, &partition).await,
        "empty partition kept"
    );
}

/// Retention drops a month's partition only when no tenant has rows in it: A's retention
/// deletes A's rows and keeps the partition for B's; B's retention then drops it. The month is
/// random (in 1100..2000) so runs on a long-lived database do not meet each other's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_a_partition_once_no_tenant_has_rows_in_it() {
    let backend = common::backend().await;
    let a = PostgresEventLogStore::new(&backend.scoped(&common::random_tenant()));
    let b = PostgresEventLogStore::new(&backend.scoped(&common::random_tenant()));
    let owner = common::client(&common::database_url()).await;
    let (start, end, partition) = old_month_partition(&owner).await;
    let exists = |name: String| {
        let owner = &owner;
        async move { table_exists(owner, &name).await }
    };
    let in_month = |n: i64| Event::new("old", json!(n)).at(start + time::Duration::hours(n));
    let a_events = a
        .append_batch((0..3).map(in_month).collect())
        .await
        .unwrap();
    b.append_batch((0..2).map(in_month).collect())
        .await
        .unwrap();
    assert_eq!(partition_of(a_events[0].id).await, partition);

    assert_eq!(a.drop_before(end).await.unwrap(), 3);
    assert!(
        exists(partition.clone()).await,
        "dropped with B's rows in it"
    );
    let month_query = EventQuery {
        from: Some(start),
        to: Some(end),
        ..EventQuery::default()
    };
    assert_eq!(b.query(&month_query).await.unwrap().len(), 2);
    assert!(a.query(&month_query).await.unwrap().is_empty());

    assert_eq!(b.drop_before(end).await.unwrap(), 2);
    assert!(!exists(partition).await, "empty past partition kept");
    let today = OffsetDateTime::now_utc();
    let current = format!("events_y{:04}m{:02}", today.year(), u8::from(today.month()));
    assert!(
        exists(current).await,
        "the current month's partition is never dropped"
    );
}

/// Damaging a stored snapshot behind the store's back (as the superuser) makes every load
/// fail with `Corruption`: a flipped payload byte, a changed checksum or size, a payload that
/// is not JSON, and a latest version whose row is gone. Restoring the row heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_agent_snapshots_are_corruption() {
    let backend = common::backend().await;
    let tenant = common::random_tenant();
    let store = PostgresAgentStateStore::new(&backend.scoped(&tenant));
    let state = json!({"goal": "ship", "n": 42});
    store.save("a", &state, None).await.unwrap();
    let admin = common::client(&common::database_url()).await;
    let tenant = tenant.as_str();
    let damage = |statement: &'static str| {
        let admin = &admin;
        async move {
            admin
                .execute(
                    &format!("{statement} WHERE tenant_id = $1 AND agent_id = 'a'"),
                    &[&tenant],
                )
                .await
                .unwrap();
        }
    };
    let expect_corruption = || async {
        let latest = store.load_latest("a").await.unwrap_err();
        assert_eq!(latest.kind(), cairn_core::ErrorKind::Corruption, "{latest}");
        let v1 = store.load_version("a", 1).await.unwrap_err();
        assert_eq!(v1.kind(), cairn_core::ErrorKind::Corruption, "{v1}");
    };
    let original: Vec<u8> = admin
        .query_one(
            "SELECT payload FROM agent_state_snapshots WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);

    damage(
        "UPDATE agent_state_snapshots SET payload = set_byte(payload, 3, get_byte(payload, 3) # 1)",
    )
    .await;
    expect_corruption().await;
    damage("UPDATE agent_state_snapshots SET payload = payload || '\\x20'::bytea").await;
    expect_corruption().await;
    // Size and checksum agree with the damaged payload, which is not JSON.
    damage(
        "UPDATE agent_state_snapshots SET payload = '\\x7b'::bytea, size = 1, \
         checksum = encode(sha256('\\x7b'::bytea), 'hex')",
    )
    .await;
    expect_corruption().await;
    admin
        .execute(
            "UPDATE agent_state_snapshots SET payload = $2, size = $3, checksum = repeat('0', 64) \
             WHERE tenant_id = $1",
            &[&tenant, &original, &(original.len() as i64)],
        )
        .await
        .unwrap();
    expect_corruption().await;
    let restored = cairn_stores::agent_state::sha256_hex(&original);
    admin
        .execute(
            "UPDATE agent_state_snapshots SET checksum = $2 WHERE tenant_id = $1",
            &[&tenant, &restored],
        )
        .await
        .unwrap();
    assert_eq!(store.load_latest("a").await.unwrap().unwrap().state, state);

    damage("DELETE FROM agent_state_snapshots").await;
    let missing = store.load_latest("a").await.unwrap_err();
    assert_eq!(
        missing.kind(),
        cairn_core::ErrorKind::Corruption,
        "{missing}"
    );
    assert!(store.load_version("a", 1).await.unwrap().is_none());
}

/// `touch` renews in SQL by the stored time to live exactly, nanoseconds and multi-century
/// ttls included, and a renewal past the year 9999 is `InvalidInput` that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_renews_exactly_and_refuses_expiries_past_9999() {
    let backend = common::backend().await;
    let store = PostgresSessionStore::new(&backend.scoped(&common::random_tenant()));
    let ttl = time::Duration::days(365 * 3000) + time::Duration::nanoseconds(123_456_789);
    store.create(Some("long"), ttl, json!({})).await.unwrap();
    let before = OffsetDateTime::now_utc();
    let touched = store.touch("long").await.unwrap();
    let after = OffsetDateTime::now_utc();
    assert_eq!(touched.ttl, ttl);
    let renewed_at = touched.expires_at - ttl;
    assert!(
        before <= renewed_at && renewed_at <= after,
        "{before} <= {renewed_at} <= {after}"
    );
    assert_eq!(store.get("long").await.unwrap(), Some(touched));

    let edge = datetime!(9999-12-31 23:59:59.999 UTC) - OffsetDateTime::now_utc();
    let created = store.create(Some("edge"), edge, json!({})).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let err = store.touch("edge").await.unwrap_err();
    assert_eq!(err.kind(), cairn_core::ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.get("edge").await.unwrap(), Some(created));
}

/// Hook records keep nanosecond times and durations beyond `i64` nanoseconds exactly, and
/// statistics count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_times_and_huge_durations_round_trip() {
    use cairn_stores::hooks::{HookExecution, HookQuery};
    let backend = common::backend().await;
    let store = PostgresHookHistoryStore::new(&backend.scoped(&common::random_tenant()));
    let huge = std::time::Duration::new(u64::MAX, 999_999_999);
    let record = store
        .record(HookExecution {
            hook_name: "h".into(),
            input: json!({"a": 1}),
            output: Some(json!(null)),
            error: Some("boom".into()),
            duration: huge,
            at: Some(datetime!(1969-12-31 23:59:59.123456789 UTC)),
        })
        .await
        .unwrap();
    let found = store.query(&HookQuery::default()).await.unwrap();
    assert_eq!(found, [record]);
    assert_eq!(found[0].duration, huge);
    let stats = store.stats("h", None, None).await.unwrap();
    assert_eq!((stats.count, stats.failures), (1, 1));
    let millis = huge.as_nanos() as f64 / 1e6;
    assert_eq!(
        (stats.mean_ms, stats.p50_ms, stats.p95_ms),
        (Some(millis), Some(millis), Some(millis))
    );
}

// ---------------------------------------------------------------------------------------
// Procedural memory, workflow state and artifacts (migration 0006).

async fn procedural_stores() -> (
    Arc<dyn cairn_stores::ProceduralStore>,
    Arc<dyn cairn_stores::ProceduralStore>,
) {
    pair::<dyn cairn_stores::ProceduralStore>(|b| {
        Arc::new(cairn_postgres::PostgresProceduralStore::new(b))
    })
    .await
}

async fn workflow_stores() -> (
    Arc<dyn cairn_stores::WorkflowStore>,
    Arc<dyn cairn_stores::WorkflowStore>,
) {
    pair::<dyn cairn_stores::WorkflowStore>(|b| {
        Arc::new(cairn_postgres::PostgresWorkflowStore::new(b))
    })
    .await
}

async fn artifact_stores() -> (
    Arc<dyn cairn_stores::ArtifactStore>,
    Arc<dyn cairn_stores::ArtifactStore>,
) {
    pair::<dyn cairn_stores::ArtifactStore>(|b| {
        Arc::new(cairn_postgres::PostgresArtifactStore::new(b))
    })
    .await
}

mod procedural {
    cairn_testkit::procedural_suite!(super::procedural_stores);
}

mod workflow {
    cairn_testkit::workflow_suite!(super::workflow_stores);
}

mod artifacts {
    cairn_testkit::artifacts_suite!(super::artifact_stores);
}

/// A procedure of category `c` with id `id`.
fn procedure(id: &str) -> cairn_stores::Procedure {
    cairn_stores::Procedure {
        id: id.to_owned(),
        name: format!("Procedure {id}"),
        category: "c".to_owned(),
        description: String::new(),
        content: json!(["step"]),
        metadata: serde_json::Map::new(),
    }
}

/// 100 outcomes recorded at once, on a pool of 8 connections, are 100 increments of the row
/// (read back by the superuser as well as through the store); a counter at `bigint`'s maximum
/// refuses one more with `InvalidInput` and keeps its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_outcomes_are_counted_exactly() {
    use cairn_stores::ProceduralStore;
    let mut config = common::test_config(&common::database_url());
    config.pool_size = 8;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let tenant = common::random_tenant();
    let store = Arc::new(cairn_postgres::PostgresProceduralStore::new(
        &backend.scoped(&tenant),
    ));
    store.upsert_procedure(procedure("hot")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let store = store.clone();
        tasks.spawn(async move { store.record_outcome("hot", i % 4 != 0).await.unwrap() });
    }
    let mut seen: Vec<u64> = tasks.join_all().await.iter().map(|s| s.uses()).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<u64>>(),
        "each outcome saw its own count"
    );
    let stats = store.get("hot").await.unwrap().unwrap().stats;
    assert_eq!((stats.successes, stats.failures), (75, 25));
    let admin = common::client(&common::database_url()).await;
    let row = admin
        .query_one(
            "SELECT successes, failures, uses::bigint FROM procedures \
             WHERE tenant_id = $1 AND id = 'hot'",
            &[&tenant.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (75, 25, 100)
    );

    admin
        .execute(
            "UPDATE procedures SET successes = 9223372036854775807 \
             WHERE tenant_id = $1 AND id = 'hot'",
            &[&tenant.as_str()],
        )
        .await
        .unwrap();
    let err = store.record_outcome("hot", true).await.unwrap_err();
    assert_eq!(err.kind(), cairn_core::ErrorKind::InvalidInput, "{err}");
    let kept = store.get("hot").await.unwrap().unwrap().stats;
    assert_eq!(
        (kept.successes, kept.failures),
        (i64::MAX as u64, 25),
        "nothing changed"
    );
    let failure = store.record_outcome("hot", false).await.unwrap();
    assert_eq!(failure.failures, 26);
    // A rate of (2^63 - 1) / (2^63 + 25) still ranks below a perfect one and above 3/4.
    store.upsert_procedure(procedure("perfect")).await.unwrap();
    store.record_outcome("perfect", true).await.unwrap();
    store.upsert_procedure(procedure("most")).await.unwrap();
    for success in [true, true, true, false] {
        store.record_outcome("most", success).await.unwrap();
    }
    let ranked: Vec<String> = store
        .top_by_success_rate(Some("c"), 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.procedure.id)
        .collect();
    assert_eq!(ranked, ["perfect", "hot", "most"]);
}

/// Twenty concurrent starts of one pending workflow: exactly one applies, every other is
/// `InvalidInput` (judged against `running`), none is lost silently; the table's CHECK
/// constraints refuse a status without the fields it implies, even from the superuser.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_have_one_winner_and_the_table_checks_statuses() {
    use cairn_stores::workflow::Transition;
    use cairn_stores::{WorkflowStatus, WorkflowStore};
    let backend = common::backend().await;
    let tenant = common::random_tenant();
    let store = Arc::new(cairn_postgres::PostgresWorkflowStore::new(
        &backend.scoped(&tenant),
    ));
    store.create(Some("w"), "job", json!({})).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.spawn(async move { store.transition("w", Transition::Start).await });
    }
    let (mut won, mut refused) = (0, 0);
    for result in tasks.join_all().await {
        match result {
            Ok(workflow) => {
                assert_eq!(workflow.status, WorkflowStatus::Running);
                won += 1;
            }
            Err(err) => {
                assert_eq!(err.kind(), cairn_core::ErrorKind::InvalidInput, "{err}");
                refused += 1;
            }
        }
    }
    assert_eq!((won, refused), (1, 19));
    let running = store.get("w").await.unwrap().unwrap();
    assert!(running.started_at.is_some());

    let admin = common::client(&common::database_url()).await;
    for damage in [
        "UPDATE workflows SET status = 'completed'",
        "UPDATE workflows SET status = 'failed', finished_at = now(), finished_ns = 0",
        "UPDATE workflows SET status = 'bogus'",
        "UPDATE workflows SET error = 'e'",
    ] {
        let err = admin
            .execute(
                &format!("{damage} WHERE tenant_id = $1 AND id = 'w'"),
                &[&tenant.as_str()],
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
            "{damage}: {err}"
        );
    }
    assert_eq!(store.get("w").await.unwrap(), Some(running));
}

/// Deterministic content of `len` bytes.
fn content_of(len: usize, seed: u8) -> bytes::Bytes {
    let mut state = u64::from(seed) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// `(refcount, chunk rows)` of `hash` in `tenant`, read by the superuser.
async fn artifact_rows(
    admin: &tokio_postgres::Client,
    tenant: &cairn_core::TenantId,
    hash: &str,
) -> Option<(i64, i64)> {
    let row = admin
        .query_opt(
            "SELECT a.refcount, (SELECT count(*) FROM artifact_chunks c \
                 WHERE c.tenant_id = a.tenant_id AND c.blob_id = a.blob_id) \
             FROM artifacts a WHERE a.tenant_id = $1 AND a.content_hash = $2",
            &[&tenant.as_str(), &hash],
        )
        .await
        .unwrap()?;
    Some((row.get(0), row.get(1)))
}

/// Chunk rows of `tenant`, whichever blob they belong to.
async fn chunk_rows(admin: &tokio_postgres::Client, tenant: &cairn_core::TenantId) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM artifact_chunks WHERE tenant_id = $1",
            &[&tenant.as_str()],
        )
        .await
        .unwrap()
        .get(0)
}

/// Two tenants storing identical content each get their own row, chunks and reference count:
/// no deduplication across tenants, and releasing in one leaves the other intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_content_in_two_tenants_is_stored_twice() {
    use cairn_stores::{ArtifactStore, PutOptions};
    let backend = common::backend().await;
    let (a, b) = (common::random_tenant(), common::random_tenant());
    let in_a = cairn_postgres::PostgresArtifactStore::new(&backend.scoped(&a));
    let in_b = cairn_postgres::PostgresArtifactStore::new(&backend.scoped(&b));
    let content = content_of(3 << 20, 1);
    let first = in_a
        .put(content.clone(), PutOptions::default())
        .await
        .unwrap();
    in_a.put(content.clone(), PutOptions::default())
        .await
        .unwrap();
    let theirs = in_b
        .put(content.clone(), PutOptions::with_content_type("text/plain"))
        .await
        .unwrap();
    assert_eq!(first.hash, theirs.hash);
    assert_eq!(theirs.refcount, 1);
    let admin = common::client(&common::database_url()).await;
    assert_eq!(artifact_rows(&admin, &a, &first.hash).await, Some((2, 3)));
    assert_eq!(artifact_rows(&admin, &b, &first.hash).await, Some((1, 3)));
    assert_eq!(in_b.release(&first.hash).await.unwrap(), 0);
    assert_eq!(artifact_rows(&admin, &b, &first.hash).await, None);
    assert_eq!(chunk_rows(&admin, &b).await, 0);
    let mine = in_a.get(&first.hash).await.unwrap().unwrap();
    assert!(mine.content == content, "A's content is intact");
    assert_eq!(mine.info.refcount, 2);
}

/// An artifact of several MiB, streamed in odd-sized pieces, is stored as several chunk rows of
/// at most one chunk each and read back in chunks; releasing it deletes them all. A put whose
/// stream fails after megabytes rolls back: no row and no chunk stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_artifacts_are_stored_in_chunk_rows() {
    use cairn_stores::artifacts::DEFAULT_CHUNK_SIZE;
    use cairn_stores::{ArtifactStore, PutOptions};
    use futures::StreamExt;
    let backend = common::backend().await;
    let tenant = common::random_tenant();
    let store = cairn_postgres::PostgresArtifactStore::new(&backend.scoped(&tenant));
    let content = content_of(10 * DEFAULT_CHUNK_SIZE + 12_345, 2);
    let pieces: Vec<cairn_core::Result<bytes::Bytes>> = content
        .chunks(777_777)
        .map(|piece| Ok(bytes::Bytes::copy_from_slice(piece)))
        .collect();
    let stored = store
        .put_stream(futures::stream::iter(pieces).boxed(), PutOptions::default())
        .await
        .unwrap();
    let admin = common::client(&common::database_url()).await;
    assert_eq!(
        artifact_rows(&admin, &tenant, &stored.hash).await,
        Some((1, 11))
    );
    let largest: i32 = admin
        .query_one(
            "SELECT max(length(data)) FROM artifact_chunks WHERE tenant_id = $1",
            &[&tenant.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(largest as usize, DEFAULT_CHUNK_SIZE);
    let reader = store.open(&stored.hash).await.unwrap().unwrap();
    let chunks: Vec<bytes::Bytes> = reader.chunks.map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks.len(), 11);
    assert!(chunks.concat() == content.as_ref(), "chunks reassemble");
    assert_eq!(store.release(&stored.hash).await.unwrap(), 0);
    assert_eq!(chunk_rows(&admin, &tenant).await, 0);

    let failing: Vec<cairn_core::Result<bytes::Bytes>> = vec![
        Ok(content.slice(..9 << 20)),
        Err(cairn_core::Error::new(
            cairn_core::ErrorKind::Unavailable,
            "upstream went away",
        )),
    ];
    let err = store
        .put_stream(
            futures::stream::iter(failing).boxed(),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cairn_core::ErrorKind::Unavailable);
    assert_eq!(chunk_rows(&admin, &tenant).await, 0, "the put rolled back");
    assert!(store.list(None, 10).await.unwrap().items.is_empty());
}

/// Bytes damaged by direct SQL (as the superuser) read as `Corruption`, never as content: a
/// flipped byte, a shortened chunk, a missing chunk row, and a row whose size disagrees with
/// its chunks. Restoring the bytes heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_artifact_rows_are_corruption() {
    use cairn_stores::{ArtifactStore, PutOptions};
    use futures::StreamExt;
    let backend = common::backend().await;
    let tenant = common::random_tenant();
    let store = cairn_postgres::PostgresArtifactStore::with_chunk_size(&backend.scoped(&tenant), 4)
        .unwrap();
    let stored = store
        .put(
            bytes::Bytes::from_static(b"0123456789"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let admin = common::client(&common::database_url()).await;
    let t = tenant.as_str();
    let original: Vec<u8> = admin
        .query_one(
            "SELECT data FROM artifact_chunks WHERE tenant_id = $1 AND seq = 1",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(original, b"4567");
    let expect_corruption = || async {
        let err = store.get(&stored.hash).await.unwrap_err();
        assert_eq!(err.kind(), cairn_core::ErrorKind::Corruption, "{err}");
        let reader = store.open(&stored.hash).await.unwrap().unwrap();
        let items: Vec<_> = reader.chunks.collect().await;
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), cairn_core::ErrorKind::Corruption, "{last}");
    };
    for damage in [
        "UPDATE artifact_chunks SET data = set_byte(data, 2, get_byte(data, 2) # 1)",
        "UPDATE artifact_chunks SET data = substring(data FROM 1 FOR 3)",
    ] {
        admin
            .execute(&format!("{damage} WHERE tenant_id = $1 AND seq = 1"), &[&t])
            .await
            .unwrap();
        expect_corruption().await;
        admin
            .execute(
                "UPDATE artifact_chunks SET data = $2 WHERE tenant_id = $1 AND seq = 1",
                &[&t, &original],
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store.get(&stored.hash).await.unwrap().unwrap().content,
        bytes::Bytes::from_static(b"0123456789")
    );
    admin
        .execute("UPDATE artifacts SET size = 9 WHERE tenant_id = $1", &[&t])
        .await
        .unwrap();
    expect_corruption().await;
    admin
        .execute(
            "UPDATE artifacts SET size = 10, chunks = 4 WHERE tenant_id = $1",
            &[&t],
        )
        .await
        .unwrap();
    let kinds = [
        store.get(&stored.hash).await.unwrap_err().kind(),
        store.open(&stored.hash).await.unwrap_err().kind(),
        store.stat(&stored.hash).await.unwrap_err().kind(),
        store.list(None, 10).await.unwrap_err().kind(),
    ];
    assert_eq!(kinds, [cairn_core::ErrorKind::Corruption; 4]);
    admin
        .execute(
            "UPDATE artifacts SET chunks = 3 WHERE tenant_id = $1",
            &[&t],
        )
        .await
        .unwrap();
    admin
        .execute(
            "DELETE FROM artifact_chunks WHERE tenant_id = $1 AND seq = 2",
            &[&t],
        )
        .await
        .unwrap();
    expect_corruption().await;
}

/// `text` and `jsonb` cannot hold NUL characters: a procedure, a workflow error or artifact
/// metadata holding one is `InvalidInput` and changes nothing (the artifact's chunks roll back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_invalid_input_and_change_nothing() {
    use cairn_stores::workflow::Transition;
    use cairn_stores::{ArtifactStore, ProceduralStore, PutOptions, WorkflowStatus, WorkflowStore};
    let backend = common::backend().await;
    let tenant = common::random_tenant();
    let scoped = backend.scoped(&tenant);
    let invalid = cairn_core::ErrorKind::InvalidInput;

    let procedures = cairn_postgres::PostgresProceduralStore::new(&scoped);
    let bad = cairn_stores::Procedure {
        description: "a\0b".into(),
        ..procedure("p")
    };
    assert_eq!(
        procedures.upsert_procedure(bad).await.unwrap_err().kind(),
        invalid
    );
    let bad = cairn_stores::Procedure {
        content: json!({"k": "a\u{0}b"}),
        ..procedure("p")
    };
    assert_eq!(
        procedures.upsert_procedure(bad).await.unwrap_err().kind(),
        invalid
    );
    assert_eq!(procedures.get("p").await.unwrap(), None);

    let workflows = cairn_postgres::PostgresWorkflowStore::new(&scoped);
    workflows.create(Some("w"), "job", json!(1)).await.unwrap();
    workflows.transition("w", Transition::Start).await.unwrap();
    let failed = workflows
        .transition(
            "w",
            Transition::Fail {
                error: "disk\0full".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(failed.kind(), invalid, "{failed}");
    let still = workflows.get("w").await.unwrap().unwrap();
    assert_eq!((still.status, still.error), (WorkflowStatus::Running, None));

    let artifacts = cairn_postgres::PostgresArtifactStore::new(&scoped);
    let mut options = PutOptions::default();
    options.metadata.insert("note".into(), json!("a\u{0}b"));
    let err = artifacts
        .put(content_of(3 << 20, 3), options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), invalid, "{err}");
    let admin = common::client(&common::database_url()).await;
    assert_eq!(chunk_rows(&admin, &tenant).await, 0);
    assert!(artifacts.list(None, 10).await.unwrap().items.is_empty());
}

/// A graph of `ids` entities and `(id, from, to)` relationships of type `next`, all valid
/// from a year ago on.
async fn graph_of(store: &PostgresGraphStore, ids: &[String], links: &[(String, String, String)]) {
    use cairn_stores::graph::{EntityInput, RelationshipInput};
    let year_ago = OffsetDateTime::now_utc() - time::Duration::days(365);
    for id in ids {
        let input = EntityInput {
            valid_from: Some(year_ago),
            ..EntityInput::new(id.as_str(), "node", id.as_str())
        };
        store.upsert_entity(input).await.unwrap();
    }
    for (id, from, to) in links {
        let input = RelationshipInput {
            valid_from: Some(year_ago),
            ..RelationshipInput::new(id.as_str(), from.as_str(), "next", to.as_str())
        };
        store.upsert_relationship(input).await.unwrap();
    }
}

/// An as-of read of an entity with many versions finds the one version on both axes through
/// the GiST index `(tenant_id, id, known_range, valid_range)`, not by walking its versions.
///
/// A table of a few hundred rows is cheapest to scan whole, so the test runs in a database of
/// its own with `enable_seqscan = off`, pricing a scan as for a large table: the planner then
/// chooses between the primary key (every version of the id) and the GiST index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_entity_read_uses_the_gist_index() {
    use cairn_stores::graph::{AsOf, EntityInput};
    let database = common::TempDatabase::create().await;
    let admin = common::client(&database.url).await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET enable_seqscan = off",
            database.name
        ))
        .await
        .unwrap();
    let backend = PostgresBackend::connect(common::test_config(&database.url))
        .await
        .unwrap();
    let store = PostgresGraphStore::new(&backend.scoped(&common::random_tenant()));
    let mut versions = Vec::new();
    for i in 0..300 {
        let input = EntityInput {
            properties: json!({ "n": i }).as_object().cloned().unwrap_or_default(),
            valid_from: Some(datetime!(2020-01-01 0:00 UTC)),
            ..EntityInput::new("busy", "counter", "Busy")
        };
        versions.push(store.upsert_entity(input).await.unwrap());
    }
    admin.batch_execute("ANALYZE graph_entities").await.unwrap();
    let as_of = AsOf {
        valid_at: datetime!(2024-06-01 0:00 UTC),
        known_at: versions[150].time.recorded_at,
    };
    let plan = store
        .explain_entity_as_of("busy", as_of)
        .await
        .unwrap()
        .join("\n");
    assert!(
        plan.contains("graph_entities_as_of_idx"),
        "the as-of read does not use the GiST index:\n{plan}"
    );
    let found = store
        .get_entity_as_of("busy", as_of)
        .await
        .unwrap()
        .expect("version 151 was known then");
    assert_eq!(
        (found.version, &found.properties),
        (151, &versions[150].properties)
    );
    assert_eq!(
        found.time.superseded_at,
        Some(versions[151].time.recorded_at)
    );
}

/// A ring of 40 entities with chords back to earlier ones, traversed both ways to depth 64:
/// the traversal terminates and lists every other entity exactly once, at its smallest depth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyclic_traversal_terminates_with_each_entity_once() {
    use cairn_stores::graph::{Direction, MAX_TRAVERSE_DEPTH, TraverseRequest};
    let backend = common::backend().await;
    let store = PostgresGraphStore::new(&backend.scoped(&common::random_tenant()));
    let ids: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
    let mut links = Vec::new();
    for i in 0..40 {
        let next = (i + 1) % 40;
        links.push((format!("r{i:02}"), ids[i].clone(), ids[next].clone()));
        if i % 5 == 4 {
            links.push((format!("c{i:02}"), ids[i].clone(), ids[i - 4].clone()));
        }
    }
    graph_of(&store, &ids, &links).await;
    for direction in [Direction::Outgoing, Direction::Incoming, Direction::Both] {
        let request = TraverseRequest {
            direction,
            ..TraverseRequest::outgoing(MAX_TRAVERSE_DEPTH)
        };
        let hits = store.traverse("n00", request).await.unwrap();
        let mut reached: Vec<&str> = hits.iter().map(|h| h.entity.id.as_str()).collect();
        assert_eq!(hits.len(), 39, "{direction:?}");
        reached.sort_unstable();
        reached.dedup();
        assert_eq!(
            reached.len(),
            39,
            "{direction:?}: an entity is listed twice"
        );
        assert!(
            !reached.contains(&"n00"),
            "{direction:?}: the start is listed"
        );
        assert!(hits.windows(2).all(|w| w[0].depth <= w[1].depth));
        for hit in &hits {
            assert_eq!(hit.path.len(), hit.depth + 1);
            assert_eq!(hit.relationships.len(), hit.depth);
        }
        let depth_of = |id: &str| hits.iter().find(|h| h.entity.id == id).map(|h| h.depth);
        match direction {
            // Only the ring leads forwards.
            Direction::Outgoing => assert_eq!(depth_of("n39"), Some(39)),
            // Backwards, n39 is one step away (r39) and the chords shorten the way.
            Direction::Incoming => {
                assert_eq!(depth_of("n39"), Some(1));
                assert_eq!(depth_of("n04"), Some(1));
            }
            Direction::Both => {
                assert_eq!(depth_of("n39"), Some(1));
                assert_eq!(depth_of("n20"), Some(8));
            }
        }
    }
}

/// A chain of 51 entities is traversed to depth 50 by one statement: a recursive CTE whose
/// plan is a `Recursive Union`, returning every entity with its full path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_chain_traverses_in_one_statement() {
    use cairn_stores::graph::TraverseRequest;
    let backend = common::backend().await;
    let store = PostgresGraphStore::new(&backend.scoped(&common::random_tenant()));
    let ids: Vec<String> = (0..=50).map(|i| format!("c{i:02}")).collect();
    let links: Vec<(String, String, String)> = (0..50)
        .map(|i| (format!("l{i:02}"), ids[i].clone(), ids[i + 1].clone()))
        .collect();
    graph_of(&store, &ids, &links).await;
    let plan = store
        .explain_traverse("c00", TraverseRequest::outgoing(50))
        .await
        .unwrap()
        .join("\n");
    assert!(plan.contains("Recursive Union"), "{plan}");
    let hits = store
        .traverse("c00", TraverseRequest::outgoing(50))
        .await
        .unwrap();
    assert_eq!(hits.len(), 50);
    let last = &hits[49];
    assert_eq!((last.entity.id.as_str(), last.depth), ("c50", 50));
    assert_eq!(last.path, ids);
    let rel_ids: Vec<String> = links.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(last.relationships, rel_ids);
    let shorter = store
        .traverse("c00", TraverseRequest::outgoing(49))
        .await
        .unwrap();
    assert_eq!(shorter.last().map(|h| h.entity.id.as_str()), Some("c49"));
}

/// As-of reads accept any instant `time` can hold, even outside the years 0..=9999 that
/// PostgreSQL is given: before year 0 nothing was valid or known; at the end of time (also
/// written with an offset that puts it in year 10000 in UTC) the open versions are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_reads_accept_instants_outside_the_stored_years() {
    use cairn_stores::graph::{AsOf, EntityInput, TraverseRequest};
    let backend = common::backend().await;
    let store = PostgresGraphStore::new(&backend.scoped(&common::random_tenant()));
    let created = store
        .upsert_entity(EntityInput {
            valid_from: Some(datetime!(0000-01-01 0:00 UTC)),
            ..EntityInput::new("old", "thing", "Old")
        })
        .await
        .unwrap();
    let past = datetime!(-9999-01-01 0:00 UTC);
    let end = datetime!(9999-12-31 23:00 -05:00);
    for (valid_at, known_at, found) in [(past, end, false), (end, past, false), (end, end, true)] {
        let as_of = AsOf { valid_at, known_at };
        let got = store.get_entity_as_of("old", as_of).await.unwrap();
        assert_eq!(got.as_ref(), found.then_some(&created), "{as_of:?}");
        let request = TraverseRequest {
            as_of: Some(as_of),
            ..TraverseRequest::outgoing(1)
        };
        assert!(store.traverse("old", request).await.unwrap().is_empty());
    }
    let err = store
        .upsert_entity(EntityInput {
            valid_from: Some(past),
            ..EntityInput::new("older", "thing", "Older")
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cairn_core::ErrorKind::InvalidInput, "{err}");
}

/// On a graph of 60 entities (some closed, so reached but not walked through) and 180
/// relationships of two types, the native traversal returns exactly what the generic store
/// over `kv_store` returns, paths and relationship ids included, for every direction, several
/// depths, a type filter and an as-of view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversals_match_the_generic_store() {
    use cairn_core::StorageBackend;
    use cairn_stores::GenericGraphStore;
    use cairn_stores::graph::{AsOf, Direction, EntityInput, RelationshipInput, TraverseRequest};
    let backend = common::backend().await;
    let native = PostgresGraphStore::new(&backend.scoped(&common::random_tenant()));
    let kv: Arc<dyn StorageBackend> = Arc::new(backend.clone()).tenant(&common::random_tenant());
    let generic = GenericGraphStore::new(kv);
    let stores: [&dyn GraphStore; 2] = [&native, &generic];
    let n = 60;
    let year_ago = OffsetDateTime::now_utc() - time::Duration::days(365);
    for store in stores {
        for g in 0..n {
            let input = EntityInput {
                valid_from: Some(year_ago),
                ..EntityInput::new(format!("n{g:02}"), "node", "n")
            };
            store.upsert_entity(input).await.unwrap();
        }
        for g in 0..n {
            for k in 0..3 {
                let to = (g * 7 + k * 13 + 1) % n;
                let input = RelationshipInput {
                    valid_from: Some(year_ago),
                    ..RelationshipInput::new(
                        format!("r{g:02}-{k}"),
                        format!("n{g:02}"),
                        if k == 1 { "b" } else { "a" },
                        format!("n{to:02}"),
                    )
                };
                store.upsert_relationship(input).await.unwrap();
            }
        }
        for g in (0..n).step_by(7) {
            let end = OffsetDateTime::now_utc() - time::Duration::days(1);
            store.close_entity(&format!("n{g:02}"), end).await.unwrap();
        }
    }
    let last_month = AsOf::valid_at(OffsetDateTime::now_utc() - time::Duration::days(30));
    for direction in [Direction::Outgoing, Direction::Incoming, Direction::Both] {
        for (depth, types, as_of) in [
            (1, None, None),
            (3, None, None),
            (64, None, None),
            (64, Some(vec!["a".to_owned()]), None),
            (64, None, Some(last_month)),
        ] {
            let request = TraverseRequest {
                max_depth: depth,
                relation_types: types,
                direction,
                as_of,
            };
            let [ours, theirs] = [&native as &dyn GraphStore, &generic].map(|store| {
                let request = request.clone();
                async move {
                    let hits = store.traverse("n01", request).await.unwrap();
                    // Everything but the recording times, which differ between the stores.
                    hits.into_iter()
                        .map(|h| {
                            (
                                h.entity.id,
                                h.entity.version,
                                h.depth,
                                h.path,
                                h.relationships,
                            )
                        })
                        .collect::<Vec<_>>()
                }
            });
            let (ours, theirs) = (ours.await, theirs.await);
            assert!(!ours.is_empty(), "{request:?}");
            assert_eq!(ours, theirs, "{request:?}");
        }
    }
}
