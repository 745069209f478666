//! With the `postgres` feature, components placed on PostgreSQL get the native stores where
//! `cairn-postgres` has one, and the generic stores elsewhere (needs `DATABASE_URL`).

#![cfg(feature = "postgres")]

use cairn_core::{Bytes, TenantId};
use cairn_registry::{Storage, from_toml};
use cairn_stores::episodic::{Role, Turn};
use cairn_stores::event_log::{Event, EventQuery};
use cairn_stores::graph::{EntityInput, RelationshipInput, TraverseRequest};
use cairn_stores::hooks::{HookExecution, HookQuery};
use cairn_stores::vectors::{Metadata, Metric, SearchRequest};
use cairn_stores::workflow::Transition;
use cairn_stores::{Procedure, PutOptions, WorkflowStatus};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_on_postgres_are_native() {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run `cargo xtask test`, or point it at a PostgreSQL 18 server",
    );
    let config = from_toml(&format!(
        r#"
        [storage]
        backend = "memory"
        [storage.postgres]
        url = "{url}"
        pool_size = 2
        [storage.vector_embeddings]
        backend = "postgres"
        [storage.event_log]
        backend = "postgres"
        [storage.episodic_memory]
        backend = "postgres"
        [storage.agent_state]
        backend = "postgres"
        [storage.sessions]
        backend = "postgres"
        [storage.hook_history]
        backend = "postgres"
        [storage.procedural_memory]
        backend = "postgres"
        [storage.workflow_state]
        backend = "postgres"
        [storage.artifacts]
        backend = "postgres"
        [storage.semantic_graph]
        backend = "postgres"
        "#
    ))
    .unwrap();
    let storage = Storage::open(&config).await.unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let tenant = storage.tenant(&TenantId::new(format!("registry-{nanos}")).unwrap());

    let vectors = tenant.vectors();
    assert!(
        format!("{vectors:?}").starts_with("PostgresVectorStore"),
        "{vectors:?}"
    );
    vectors.create_collection("c", 2, Metric::L2).await.unwrap();
    vectors
        .upsert("c", "a", vec![1.0, 0.0], Metadata::new())
        .await
        .unwrap();
    let hits = vectors
        .search("c", SearchRequest::new(vec![1.0, 0.0], 1))
        .await
        .unwrap();
    assert_eq!(hits[0].id, "a");

    let events = tenant.events();
    assert!(
        format!("{events:?}").starts_with("PostgresEventLogStore"),
        "{events:?}"
    );
    let record = events.append(Event::new("a.b", json!({}))).await.unwrap();
    assert_eq!(
        events.query(&EventQuery::default()).await.unwrap(),
        [record]
    );

    let sessions = tenant.sessions();
    assert!(
        format!("{sessions:?}").starts_with("PostgresSessionStore"),
        "{sessions:?}"
    );
    assert!(sessions.list(None, 10).await.unwrap().items.is_empty());
    assert_eq!(sessions.purge_expired().await.unwrap(), 0);

    let hooks = tenant.hooks();
    assert!(
        format!("{hooks:?}").starts_with("PostgresHookHistoryStore"),
        "{hooks:?}"
    );
    let execution = hooks
        .record(HookExecution {
            hook_name: "h".into(),
            input: json!({}),
            output: None,
            error: None,
            duration: std::time::Duration::from_millis(3),
            at: None,
        })
        .await
        .unwrap();
    assert_eq!(
        hooks.query(&HookQuery::default()).await.unwrap(),
        [execution]
    );

    let episodic = tenant.episodic();
    assert!(
        format!("{episodic:?}").starts_with("PostgresEpisodicStore"),
        "{episodic:?}"
    );
    let turn = episodic
        .append("s", Turn::new(Role::User, "hi"))
        .await
        .unwrap();
    assert_eq!(turn.seq, 1);
    assert_eq!(episodic.count("s").await.unwrap(), 1);

    let agents = tenant.agent_state();
    assert!(
        format!("{agents:?}").starts_with("PostgresAgentStateStore"),
        "{agents:?}"
    );
    let saved = agents.save("a", &json!({"n": 1}), Some(0)).await.unwrap();
    assert_eq!(agents.load_latest("a").await.unwrap().unwrap().info, saved);

    let graph = tenant.graph();
    assert!(
        format!("{graph:?}").starts_with("PostgresGraphStore"),
        "{graph:?}"
    );
    for id in ["a", "b"] {
        graph
            .upsert_entity(EntityInput::new(id, "node", id))
            .await
            .unwrap();
    }
    graph
        .upsert_relationship(RelationshipInput::new("ab", "a", "next", "b"))
        .await
        .unwrap();
    let hits = graph
        .traverse("a", TraverseRequest::outgoing(3))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].entity.id, "b");

    let procedural = tenant.procedural();
    assert!(
        format!("{procedural:?}").starts_with("PostgresProceduralStore"),
        "{procedural:?}"
    );
    procedural
        .upsert_procedure(Procedure {
            id: "p".into(),
            name: "P".into(),
            category: "c".into(),
            description: String::new(),
            content: json!([]),
            metadata: serde_json::Map::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        procedural.record_outcome("p", true).await.unwrap().uses(),
        1
    );

    let workflows = tenant.workflows();
    assert!(
        format!("{workflows:?}").starts_with("PostgresWorkflowStore"),
        "{workflows:?}"
    );
    let workflow = workflows.create(None, "job", json!({})).await.unwrap();
    let started = workflows
        .transition(&workflow.id, Transition::Start)
        .await
        .unwrap();
    assert_eq!(started.status, WorkflowStatus::Running);

    let artifacts = tenant.artifacts();
    assert!(
        format!("{artifacts:?}").starts_with("PostgresArtifactStore"),
        "{artifacts:?}"
    );
    let stored = artifacts
        .put(Bytes::from_static(b"hello"), PutOptions::default())
        .await
        .unwrap();
    let read = artifacts.get(&stored.hash).await.unwrap().unwrap();
    assert_eq!(read.content, Bytes::from_static(b"hello"));

    // Not placed on PostgreSQL: the generic store over the memory backend.
    let memory_only = Storage::open(&from_toml("[storage]\nbackend = \"memory\"").unwrap())
        .await
        .unwrap();
    let graph = memory_only.tenant(&TenantId::new("t").unwrap()).graph();
    assert!(format!("{graph:?}").starts_with("Generic"), "{graph:?}");
}
