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
    let database = common::TempDatabase::create().await;
    common::client(&common::database_url())
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET enable_sort = off",
            database.name
        ))
        .await
        .unwrap();
    let backend = cairn_postgres::PostgresBackend::connect(common::test_config(&database.url))
        .await
        .unwrap();
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

/// The tables of the episodic and agent-state stores under attack by SQL sent directly as
/// `cairn_app`: with tenant A set, B's rows cannot be read, updated, moved or deleted, and
/// rows cannot be inserted as B; with no tenant set nothing is visible. B's data stays intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn episodic_and_agent_state_tables_keep_tenants_apart() {
    use cairn_stores::episodic::{Role, Turn, TurnPage};
    use tokio_postgres::error::SqlState;

    const INSERTS: [(&str, &str); 4] = [
        (
            "episodic_sessions",
            "INSERT INTO episodic_sessions (tenant_id, session_id, last_seq) VALUES ($1, 'x', 1)",
        ),
        (
            "episodic_turns",
            "INSERT INTO episodic_turns (tenant_id, session_id, seq, role, content, at, at_ns) \
             VALUES ($1, 'x', 1, 'user', '', now(), 0)",
        ),
        (
            "agent_state_heads",
            "INSERT INTO agent_state_heads (tenant_id, agent_id, latest) VALUES ($1, 'x', 1)",
        ),
        (
            "agent_state_snapshots",
            "INSERT INTO agent_state_snapshots (tenant_id, agent_id, version, checksum, size, \
             payload) VALUES ($1, 'x', 1, '', 0, '')",
        ),
    ];
    let backend = common::backend().await;
    let (a, b) = (common::random_tenant(), common::random_tenant());
    let turns = PostgresEpisodicStore::new(&backend.scoped(&b));
    let agents = PostgresAgentStateStore::new(&backend.scoped(&b));
    for _ in 0..2 {
        turns
            .append("s", Turn::new(Role::User, "secret"))
            .await
            .unwrap();
    }
    agents.save("a", &json!("secret"), None).await.unwrap();

    let attacker = common::client(&common::with_user(&common::database_url(), "cairn_app")).await;
    let (a, b) = (a.as_str(), b.as_str());
    for (table, insert) in INSERTS {
        let count = format!("SELECT count(*) FROM {table}");
        let without_tenant: i64 = attacker.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(without_tenant, 0, "{table}: visible without a tenant");

        attacker.batch_execute("BEGIN").await.unwrap();
        attacker
            .execute("SELECT set_config('app.tenant_id', $1, true)", &[&a])
            .await
            .unwrap();
        let seen: i64 = attacker.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(seen, 0, "{table}: A sees B's rows");
        let moved = attacker
            .execute(
                &format!("UPDATE {table} SET tenant_id = $1 WHERE tenant_id = $2"),
                &[&a, &b],
            )
            .await
            .unwrap();
        assert_eq!(moved, 0, "{table}: A moved B's rows");
        let deleted = attacker
            .execute(&format!("DELETE FROM {table} WHERE tenant_id = $1"), &[&b])
            .await
            .unwrap();
        assert_eq!(deleted, 0, "{table}: A deleted B's rows");
        let planted = attacker.execute(insert, &[&b]).await.unwrap_err();
        assert_eq!(
            planted.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}: {planted}"
        );
        attacker.batch_execute("ROLLBACK").await.unwrap();
    }

    assert_eq!(turns.count("s").await.unwrap(), 2);
    let read = turns.read("s", TurnPage::first(10)).await.unwrap();
    assert!(read.iter().all(|t| t.content == "secret"));
    let latest = agents.load_latest("a").await.unwrap().unwrap();
    assert_eq!((latest.info.version, latest.state), (1, json!("secret")));
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

/// Row-level security on `sessions` and `hook_executions`, attacked with SQL sent directly as
/// `cairn_app`: with tenant A set, B's rows cannot be read, updated or deleted, and a row
/// cannot be inserted as B; with no tenant set nothing is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_hook_rows_are_held_by_row_level_security() {
    use cairn_stores::hooks::HookExecution;
    use tokio_postgres::error::SqlState;
    let backend = common::backend().await;
    let (a, b) = (common::random_tenant(), common::random_tenant());
    let b_backend = backend.scoped(&b);
    let sessions = PostgresSessionStore::new(&b_backend);
    let hooks = PostgresHookHistoryStore::new(&b_backend);
    sessions
        .create(Some("s"), time::Duration::minutes(5), json!("b"))
        .await
        .unwrap();
    hooks
        .record(HookExecution {
            hook_name: "h".into(),
            input: json!("b"),
            output: None,
            error: None,
            duration: std::time::Duration::from_millis(1),
            at: None,
        })
        .await
        .unwrap();
    let attacker = common::client(&common::with_user(&common::database_url(), "cairn_app")).await;
    let b = b.as_str();
    for table in ["sessions", "hook_executions"] {
        let count: i64 = attacker
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 0, "{table} with no tenant set");
        attacker.batch_execute("BEGIN").await.unwrap();
        attacker
            .execute(
                "SELECT set_config('app.tenant_id', $1, true)",
                &[&a.as_str()],
            )
            .await
            .unwrap();
        let seen: i64 = attacker
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                &[&b],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, 0, "{table}: select");
        let updated = attacker
            .execute(
                &format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1"),
                &[&b],
            )
            .await
            .unwrap();
        assert_eq!(updated, 0, "{table}: update");
        let deleted = attacker
            .execute(&format!("DELETE FROM {table} WHERE tenant_id = $1"), &[&b])
            .await
            .unwrap();
        assert_eq!(deleted, 0, "{table}: delete");
        attacker.batch_execute("COMMIT").await.unwrap();
    }
    attacker.batch_execute("BEGIN").await.unwrap();
    attacker
        .execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&a.as_str()],
        )
        .await
        .unwrap();
    let err = attacker
        .execute(
            "INSERT INTO sessions (tenant_id, id, created_at, created_ns, expires_at, expires_ns, \
             ttl_us, ttl_ns, data) VALUES ($1, 'x', now(), 0, now() + interval '1 hour', 0, 1, 0, \
             '{}')",
            &[&b],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    attacker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(sessions.get("s").await.unwrap().unwrap().data, json!("b"));
    let mine = hooks.stats("h", None, None).await.unwrap();
    assert_eq!(mine.count, 1);
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

/// The graph tables under attack by SQL sent directly as `cairn_app`: with tenant A set, B's
/// entities and relationships cannot be read, updated, moved or deleted, and rows cannot be
/// inserted as B; with no tenant set nothing is visible. B's graph stays intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_tables_keep_tenants_apart() {
    use cairn_stores::graph::TraverseRequest;
    use tokio_postgres::error::SqlState;

    const INSERTS: [(&str, &str); 2] = [
        (
            "graph_entities",
            "INSERT INTO graph_entities (tenant_id, id, version, entity_type, name, properties, \
             valid_from, valid_from_ns, recorded_at, recorded_ns) \
             VALUES ($1, 'x', 1, 't', 'x', '{}', now(), 0, now(), 0)",
        ),
        (
            "graph_relationships",
            "INSERT INTO graph_relationships (tenant_id, id, version, from_id, to_id, \
             relation_type, properties, valid_from, valid_from_ns, recorded_at, recorded_ns) \
             VALUES ($1, 'x', 1, 'a', 'b', 't', '{}', now(), 0, now(), 0)",
        ),
    ];
    let backend = common::backend().await;
    let (a, b) = (common::random_tenant(), common::random_tenant());
    let graph = PostgresGraphStore::new(&backend.scoped(&b));
    let ids = ["a".to_owned(), "b".to_owned()];
    graph_of(&graph, &ids, &[("ab".into(), "a".into(), "b".into())]).await;

    let attacker = common::client(&common::with_user(&common::database_url(), "cairn_app")).await;
    let (a, b) = (a.as_str(), b.as_str());
    for (table, insert) in INSERTS {
        let count = format!("SELECT count(*) FROM {table}");
        let without_tenant: i64 = attacker.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(without_tenant, 0, "{table}: visible without a tenant");

        attacker.batch_execute("BEGIN").await.unwrap();
        attacker
            .execute("SELECT set_config('app.tenant_id', $1, true)", &[&a])
            .await
            .unwrap();
        let seen: i64 = attacker.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(seen, 0, "{table}: A sees B's rows");
        let moved = attacker
            .execute(
                &format!("UPDATE {table} SET tenant_id = $1 WHERE tenant_id = $2"),
                &[&a, &b],
            )
            .await
            .unwrap();
        assert_eq!(moved, 0, "{table}: A moved B's rows");
        let deleted = attacker
            .execute(&format!("DELETE FROM {table} WHERE tenant_id = $1"), &[&b])
            .await
            .unwrap();
        assert_eq!(deleted, 0, "{table}: A deleted B's rows");
        let planted = attacker.execute(insert, &[&b]).await.unwrap_err();
        assert_eq!(
            planted.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}: {planted}"
        );
        attacker.batch_execute("ROLLBACK").await.unwrap();
    }

    assert_eq!(graph.entity_history("a").await.unwrap().len(), 1);
    let hits = graph
        .traverse("a", TraverseRequest::outgoing(2))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].relationships, ["ab"]);
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
