//! Copies between the native PostgreSQL stores and the generic stores over PostgreSQL's
//! key-value table, in both directions (needs `DATABASE_URL`): the portable records of each
//! component mean the same to both implementations.

mod common;

use std::sync::Arc;

use cairn_core::StorageBackend;
use cairn_postgres::{
    PostgresAgentStateStore, PostgresArtifactStore, PostgresBackend, PostgresEpisodicStore,
    PostgresEventLogStore, PostgresGraphStore, PostgresHookHistoryStore, PostgresProceduralStore,
    PostgresSessionStore, PostgresVectorStore, PostgresWorkflowStore,
};
use cairn_stores::event_log::Event;
use cairn_stores::portable::copy;
use cairn_stores::{
    AgentStateStore, ArtifactStore, EpisodicStore, EventLogStore, GenericAgentStateStore,
    GenericArtifactStore, GenericEpisodicStore, GenericEventLogStore, GenericGraphStore,
    GenericHookHistoryStore, GenericProceduralStore, GenericSessionStore, GenericVectorStore,
    GenericWorkflowStore, GraphStore, HookHistoryStore, ProceduralStore, SessionStore, VectorStore,
    WorkflowStore,
};
use cairn_testkit::portable::{self, Portable};
use serde_json::json;
use time::macros::datetime;

/// A handle on a fresh tenant of the shared test database.
async fn fresh_tenant() -> PostgresBackend {
    common::backend().await.scoped(&common::random_tenant())
}

/// For one component: a factory of the native store and one of the generic store over the
/// key-value table, each on a fresh tenant, and a test per direction.
macro_rules! both_ways {
    ($trait:ident, $native:ident, $generic:ident, $case:ident, $to_generic:ident, $to_native:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $to_generic() {
            portable::$case(native::<$native>().await, generic::<$generic>().await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $to_native() {
            portable::$case(generic::<$generic>().await, native::<$native>().await).await;
        }

        impl Native for $native {
            type Trait = dyn $trait;
            fn build(backend: &PostgresBackend) -> Portable<dyn $trait> {
                let store = Arc::new($native::new(backend));
                (store.clone(), store)
            }
        }

        impl Generic for $generic {
            type Trait = dyn $trait;
            fn build(backend: Arc<dyn StorageBackend>) -> Portable<dyn $trait> {
                let store = Arc::new($generic::new(backend));
                (store.clone(), store)
            }
        }
    };
}

/// A native PostgreSQL store.
trait Native {
    type Trait: ?Sized;
    fn build(backend: &PostgresBackend) -> Portable<Self::Trait>;
}

/// A generic store.
trait Generic {
    type Trait: ?Sized;
    fn build(backend: Arc<dyn StorageBackend>) -> Portable<Self::Trait>;
}

async fn native<S: Native>() -> Portable<S::Trait> {
    S::build(&fresh_tenant().await)
}

async fn generic<S: Generic>() -> Portable<S::Trait> {
    S::build(Arc::new(fresh_tenant().await))
}

both_ways!(
    SessionStore,
    PostgresSessionStore,
    GenericSessionStore,
    sessions_copy_faithfully,
    sessions_native_to_generic,
    sessions_generic_to_native
);
both_ways!(
    EpisodicStore,
    PostgresEpisodicStore,
    GenericEpisodicStore,
    episodic_copy_faithfully,
    episodic_native_to_generic,
    episodic_generic_to_native
);
both_ways!(
    AgentStateStore,
    PostgresAgentStateStore,
    GenericAgentStateStore,
    agent_state_copy_faithfully,
    agent_state_native_to_generic,
    agent_state_generic_to_native
);
both_ways!(
    EventLogStore,
    PostgresEventLogStore,
    GenericEventLogStore,
    event_log_copy_faithfully,
    event_log_native_to_generic,
    event_log_generic_to_native
);
both_ways!(
    HookHistoryStore,
    PostgresHookHistoryStore,
    GenericHookHistoryStore,
    hooks_copy_faithfully,
    hooks_native_to_generic,
    hooks_generic_to_native
);
both_ways!(
    ProceduralStore,
    PostgresProceduralStore,
    GenericProceduralStore,
    procedural_copy_faithfully,
    procedural_native_to_generic,
    procedural_generic_to_native
);
both_ways!(
    WorkflowStore,
    PostgresWorkflowStore,
    GenericWorkflowStore,
    workflow_copy_faithfully,
    workflow_native_to_generic,
    workflow_generic_to_native
);
both_ways!(
    GraphStore,
    PostgresGraphStore,
    GenericGraphStore,
    graph_copy_faithfully,
    graph_native_to_generic,
    graph_generic_to_native
);
both_ways!(
    VectorStore,
    PostgresVectorStore,
    GenericVectorStore,
    vectors_copy_faithfully,
    vectors_native_to_generic,
    vectors_generic_to_native
);
both_ways!(
    ArtifactStore,
    PostgresArtifactStore,
    GenericArtifactStore,
    artifacts_copy_faithfully,
    artifacts_native_to_generic,
    artifacts_generic_to_native
);

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

/// An import into the native event log goes through the partitioned table as an append does:
/// a back-dated event lands in the DEFAULT partition, an event of now in its month's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_events_land_in_their_partitions() {
    let (source, source_portable) = generic::<GenericEventLogStore>().await;
    let (_, target) = native::<PostgresEventLogStore>().await;
    let old = source
        .append(Event::new("audit.old", json!(1)).at(datetime!(2001-03-04 05:06:07.123456789 UTC)))
        .await
        .unwrap();
    let now = source
        .append(Event::new("audit.now", json!(2)))
        .await
        .unwrap();
    let copied = copy(source_portable.as_ref(), target.as_ref(), None, 10, |_| {
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(copied, 2);
    assert_eq!(partition_of(old.id).await, "events_default");
    assert_eq!(
        partition_of(now.id).await,
        format!(
            "events_y{:04}m{:02}",
            now.at.year(),
            u8::from(now.at.month())
        )
    );
}

/// A snapshot saved with nanoseconds (by an earlier version of the generic store) still
/// imports into a generic store, exactly; the PostgreSQL store, which keeps microseconds,
/// refuses it with `InvalidInput` and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nanosecond_snapshot_times_fit_generic_stores_only() {
    use cairn_stores::agent_state::SnapshotInfo;
    use cairn_stores::portable::{PortableStore, decode_portable, encode_portable};
    let source = GenericAgentStateStore::new(Arc::new(fresh_tenant().await));
    source.save("a", &json!({"k": 1}), None).await.unwrap();
    let page = source.export_page(None, 10).await.unwrap();
    let (mut info, payload): (SnapshotInfo, &[u8]) = decode_portable(&page.records[0]).unwrap();
    info.saved_at += time::Duration::nanoseconds(7);
    let record = encode_portable(&info, payload).unwrap();

    let generic = GenericAgentStateStore::new(Arc::new(fresh_tenant().await));
    generic.import(std::slice::from_ref(&record)).await.unwrap();
    let loaded = generic.load_version("a", 1).await.unwrap().unwrap();
    assert_eq!(loaded.info.saved_at, info.saved_at);

    let native = PostgresAgentStateStore::new(&fresh_tenant().await);
    let err = native.import(&[record]).await.unwrap_err();
    assert_eq!(err.kind(), cairn_core::ErrorKind::InvalidInput, "{err:?}");
    assert!(native.load_latest("a").await.unwrap().is_none());
}

/// An artifact larger than one chunk statement (about 8 MiB) imports into the native store
/// in several statements of one transaction and reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_artifacts_import_in_several_statements() {
    use cairn_stores::artifacts::PutOptions;
    let (source, source_portable) = generic::<GenericArtifactStore>().await;
    let (target, target_portable) = native::<PostgresArtifactStore>().await;
    let content: Vec<u8> = (0..(9u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
    let stored = source
        .put(content.clone().into(), PutOptions::default())
        .await
        .unwrap();
    let copied = copy(
        source_portable.as_ref(),
        target_portable.as_ref(),
        None,
        1,
        |_| Ok(()),
    )
    .await
    .unwrap();
    assert_eq!(copied, 1);
    let read = target.get(&stored.hash).await.unwrap().unwrap();
    assert_eq!(read.info, source.stat(&stored.hash).await.unwrap().unwrap());
    assert!(read.content == content, "content differs");
}

/// Vectors of a dimension no table exists for yet import into a fresh database: the import
/// creates the table before it prepares the statements that write into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_of_a_new_dimension_import_into_a_fresh_database() {
    use cairn_stores::vectors::Metric;
    let db = common::TempDatabase::create().await;
    let fresh = PostgresBackend::connect(common::test_config(&db.url))
        .await
        .unwrap();
    let target = PostgresVectorStore::new(&fresh.scoped(&common::random_tenant()));
    let (source, source_portable) = generic::<GenericVectorStore>().await;
    source
        .create_collection("notes", 16, Metric::L2)
        .await
        .unwrap();
    source
        .upsert("notes", "a", vec![0.5; 16], Default::default())
        .await
        .unwrap();
    let copied = copy(source_portable.as_ref(), &target, None, 10, |_| Ok(()))
        .await
        .unwrap();
    assert_eq!(copied, 2, "the collection and its vector");
    assert_eq!(
        target.get("notes", "a").await.unwrap().unwrap().vector,
        vec![0.5; 16]
    );
    drop(fresh);
}
