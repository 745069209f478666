//! Tenant isolation of every table, found in the catalog rather than listed by hand, so a
//! table added by a later migration is attacked too (`rls.rs` goes deeper on `kv_store`).
//!
//! - Every table with a `tenant_id` column forces row-level security with the four tenant
//!   policies, or (the event partitions) grants `cairn_app` nothing, so all access goes
//!   through the parent's policies; `cairn_app` has no access to any other table.
//! - Tenant B's data, written through the stores, is attacked with SQL sent directly as
//!   `cairn_app`: with tenant A set nothing of B's is visible, updatable, movable or
//!   deletable, and no row can be inserted as B; with no tenant set nothing is visible; B's
//!   rows are byte-identical afterwards.
//! - 100 tenants writing 100 rows each at once through one pool each read back exactly their
//!   own rows.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use cairn_core::{Key, StorageBackend, StorageBackendExt, TenantId};
use cairn_postgres::{
    PostgresAgentStateStore, PostgresArtifactStore, PostgresBackend, PostgresEpisodicStore,
    PostgresEventLogStore, PostgresGraphStore, PostgresHookHistoryStore, PostgresProceduralStore,
    PostgresSessionStore, PostgresVectorStore, PostgresWorkflowStore,
};
use cairn_stores::agent_state::AgentStateStore;
use cairn_stores::episodic::{EpisodicStore, Role, Turn};
use cairn_stores::event_log::{Event, EventLogStore, EventQuery};
use cairn_stores::graph::{EntityInput, GraphStore, RelationshipInput};
use cairn_stores::hooks::{HookExecution, HookHistoryStore};
use cairn_stores::sessions::SessionStore;
use cairn_stores::vectors::{Metric, VectorStore};
use cairn_stores::{ArtifactStore, ProceduralStore, Procedure, PutOptions, WorkflowStore};
use serde_json::json;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// A table of the schema as the catalog describes it.
#[derive(Debug)]
struct Table {
    name: String,
    tenant_scoped: bool,
    /// Row-level security enabled and forced.
    forced: bool,
    /// `cairn_app` has some data privilege on it.
    app_access: bool,
    /// Its columns that an INSERT may name (not generated, not identity ALWAYS).
    columns: Vec<String>,
    /// `command letter -> (USING, WITH CHECK)` of each policy, as SQL text.
    policies: BTreeMap<String, (Option<String>, Option<String>)>,
}

/// Every ordinary and partitioned table of the schema.
async fn tables(owner: &Client) -> Vec<Table> {
    let rows = owner
        .query(
            "SELECT c.relname::text, c.relrowsecurity AND c.relforcerowsecurity,
                    has_table_privilege('cairn_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE'),
                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                            AND a.attgenerated = '' AND a.attidentity <> 'a'
                          ORDER BY a.attnum),
                    ARRAY(SELECT p.polcmd::text FROM pg_policy p WHERE p.polrelid = c.oid
                          ORDER BY p.polcmd),
                    ARRAY(SELECT pg_get_expr(p.polqual, c.oid) FROM pg_policy p
                          WHERE p.polrelid = c.oid ORDER BY p.polcmd),
                    ARRAY(SELECT pg_get_expr(p.polwithcheck, c.oid) FROM pg_policy p
                          WHERE p.polrelid = c.oid ORDER BY p.polcmd)
             FROM pg_class c
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let columns: Vec<String> = row.get(3);
            let commands: Vec<String> = row.get(4);
            let quals: Vec<Option<String>> = row.get(5);
            let checks: Vec<Option<String>> = row.get(6);
            Table {
                name: row.get(0),
                tenant_scoped: columns.iter().any(|c| c == "tenant_id"),
                forced: row.get(1),
                app_access: row.get(2),
                columns,
                policies: commands
                    .into_iter()
                    .zip(quals.into_iter().zip(checks))
                    .collect(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_forces_the_four_tenant_policies() {
    let owner = common::client(&common::database_url()).await;
    let tables = tables(&owner).await;
    let tenant_check = "(tenant_id = current_setting('app.tenant_id'::text, true))";
    let mut policed = 0;
    for table in &tables {
        let name = &table.name;
        if !table.tenant_scoped {
            assert!(
                !table.app_access,
                "{name}: cairn_app may touch a shared table"
            );
            continue;
        }
        assert!(
            table.forced,
            "{name}: row-level security not enabled and forced"
        );
        if !table.app_access {
            // A partition: reached only through its parent.
            assert!(table.policies.is_empty(), "{name}: {:?}", table.policies);
            continue;
        }
        let expected: BTreeMap<String, (Option<String>, Option<String>)> = [
            // SELECT, INSERT, UPDATE, DELETE as pg_policy.polcmd letters.
            ("a", (None, Some(tenant_check))),
            ("d", (Some(tenant_check), None)),
            ("r", (Some(tenant_check), None)),
            ("w", (Some(tenant_check), Some(tenant_check))),
        ]
        .into_iter()
        .map(|(cmd, (using, check))| {
            (
                cmd.to_owned(),
                (using.map(str::to_owned), check.map(str::to_owned)),
            )
        })
        .collect();
        assert_eq!(table.policies, expected, "{name}");
        policed += 1;
    }
    assert!(
        policed >= 10,
        "only {policed} tenant tables found: {tables:?}"
    );
}

/// Writes tenant `b`'s data into every table a store writes to.
async fn seed(backend: &PostgresBackend, b: &TenantId) {
    let scoped = backend.scoped(b);
    scoped
        .set(&Key::new("secret").unwrap(), Bytes::from_static(b"b-value"))
        .await
        .unwrap();
    let vectors = PostgresVectorStore::new(&scoped);
    vectors
        .create_collection("secret", 384, Metric::Cosine)
        .await
        .unwrap();
    vectors
        .upsert("secret", "v", vec![0.5; 384], Default::default())
        .await
        .unwrap();
    PostgresEventLogStore::new(&scoped)
        .append(Event::new("secret", json!("b")))
        .await
        .unwrap();
    PostgresSessionStore::new(&scoped)
        .create(Some("s"), time::Duration::hours(1), json!("b"))
        .await
        .unwrap();
    PostgresHookHistoryStore::new(&scoped)
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
    PostgresEpisodicStore::new(&scoped)
        .append("s", Turn::new(Role::User, "secret"))
        .await
        .unwrap();
    PostgresAgentStateStore::new(&scoped)
        .save("agent", &json!("secret"), None)
        .await
        .unwrap();
    PostgresProceduralStore::new(&scoped)
        .upsert_procedure(Procedure {
            id: "p".into(),
            name: "secret".into(),
            category: "c".into(),
            description: String::new(),
            content: json!(["step"]),
            metadata: serde_json::Map::new(),
        })
        .await
        .unwrap();
    PostgresWorkflowStore::new(&scoped)
        .create(Some("w"), "secret", json!("b"))
        .await
        .unwrap();
    PostgresArtifactStore::new(&scoped)
        .put(Bytes::from_static(b"secret"), PutOptions::default())
        .await
        .unwrap();
    let graph = PostgresGraphStore::new(&scoped);
    for id in ["x", "y"] {
        graph
            .upsert_entity(EntityInput::new(id, "secret", id))
            .await
            .unwrap();
    }
    graph
        .upsert_relationship(RelationshipInput::new("xy", "x", "knows", "y"))
        .await
        .unwrap();
}

/// Tenant `b`'s rows of `table`, as JSON text, read by the owner.
async fn rows_of(owner: &Client, table: &str, b: &str) -> Vec<String> {
    owner
        .query(
            &format!("SELECT to_jsonb(t)::text FROM {table} t WHERE tenant_id = $1 ORDER BY 1"),
            &[&b],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Runs `statement` in a transaction of its own with `tenant` set (none when `None`), rolled
/// back afterwards: the affected row count, or the error.
async fn attempt(
    attacker: &Client,
    tenant: Option<&str>,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    attacker.batch_execute("BEGIN").await.unwrap();
    if let Some(tenant) = tenant {
        attacker
            .execute("SELECT set_config('app.tenant_id', $1, true)", &[&tenant])
            .await
            .unwrap();
    }
    let result = attacker.execute(statement, params).await;
    attacker.batch_execute("ROLLBACK").await.unwrap();
    result
}

/// The number of rows `SELECT count(*) FROM table` shows to `tenant`.
async fn visible(attacker: &Client, tenant: Option<&str>, table: &str) -> i64 {
    attacker.batch_execute("BEGIN").await.unwrap();
    if let Some(tenant) = tenant {
        attacker
            .execute("SELECT set_config('app.tenant_id', $1, true)", &[&tenant])
            .await
            .unwrap();
    }
    let count = attacker
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    attacker.batch_execute("ROLLBACK").await.unwrap();
    count
}

fn assert_refused(result: Result<u64, tokio_postgres::Error>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{what}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_table_lets_tenant_a_reach_tenant_b() {
    let backend = common::backend().await;
    let (a, b) = (common::random_tenant(), common::random_tenant());
    seed(&backend, &b).await;
    let owner = common::client(&common::database_url()).await;
    let attacker = common::client(&common::with_user(&common::database_url(), "cairn_app")).await;
    let (a, b) = (a.as_str(), b.as_str());
    let tables = tables(&owner).await;
    let mut attacked = Vec::new();
    for table in tables.iter().filter(|t| t.tenant_scoped) {
        let name = table.name.as_str();
        let before = rows_of(&owner, name, b).await;
        if !table.app_access {
            let read = attempt(&attacker, Some(b), &format!("DELETE FROM {name}"), &[]).await;
            assert_refused(read, &format!("{name}: a partition reached directly"));
            continue;
        }
        // Vector tables of dimensions the seed does not use may be empty of B's rows; every
        // other table must hold some, or the attacks below would prove nothing.
        let seeded = !name.starts_with("vector_embeddings_") || name == "vector_embeddings_384";
        assert!(!seeded || !before.is_empty(), "{name}: no rows of B seeded");
        assert_eq!(visible(&attacker, None, name).await, 0, "{name}: no tenant");
        assert_eq!(visible(&attacker, Some(a), name).await, 0, "{name}: as A");
        assert_eq!(
            visible(&attacker, Some(b), name).await,
            i64::try_from(before.len()).unwrap(),
            "{name}: B sees its own rows"
        );
        for (statement, what) in [
            (format!("UPDATE {name} SET tenant_id = tenant_id"), "update"),
            (format!("UPDATE {name} SET tenant_id = '{a}'"), "move"),
            (format!("DELETE FROM {name}"), "delete"),
        ] {
            for tenant in [None, Some(a)] {
                let changed = attempt(&attacker, tenant, &statement, &[]).await.unwrap();
                assert_eq!(changed, 0, "{name}: {what} with tenant {tenant:?}");
            }
        }
        if let Some(row) = before.first() {
            // A copy of one of B's rows, inserted while A (or nobody) is set.
            let columns = table.columns.join(", ");
            let plant = format!(
                "INSERT INTO {name} ({columns}) SELECT {columns} \
                 FROM jsonb_populate_record(NULL::{name}, $1::text::jsonb)"
            );
            for tenant in [None, Some(a)] {
                let planted = attempt(&attacker, tenant, &plant, &[row]).await;
                assert_refused(planted, &format!("{name}: insert as B, tenant {tenant:?}"));
            }
        }
        assert_eq!(
            rows_of(&owner, name, b).await,
            before,
            "{name}: B's rows changed"
        );
        attacked.push(name);
    }
    assert!(attacked.contains(&"events"), "{attacked:?}");
    assert!(attacked.len() >= 10, "{attacked:?}");
}

/// 100 tenants write 100 key-value rows and 100 events each, all at once through one pool of
/// 8 connections, checking each write's neighbours as they go; then each reads back exactly
/// its own 100 + 100, with its own values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tenants_writing_at_once_see_only_their_own_rows() {
    const TENANTS: usize = 100;
    const ROWS: usize = 100;
    let mut config = common::test_config(&common::database_url());
    config.pool_size = 8;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let tasks: Vec<_> = (0..TENANTS)
        .map(|_| {
            let tenant = common::random_tenant();
            let scoped = backend.scoped(&tenant);
            tokio::spawn(async move {
                let kv: Arc<dyn StorageBackend> = Arc::new(scoped.clone());
                let events = PostgresEventLogStore::new(&scoped);
                let mine = tenant.as_str().to_owned();
                for n in 0..ROWS {
                    let key = Key::new(format!("row/{n:03}")).unwrap();
                    kv.set(&key, Bytes::from(format!("{mine}/{n}")))
                        .await
                        .unwrap();
                    events
                        .append(Event::new("row", json!({"tenant": mine, "n": n})))
                        .await
                        .unwrap();
                    // Another tenant's task may have written the same key a moment ago.
                    let earlier = Key::new(format!("row/{:03}", n / 2)).unwrap();
                    let value = kv.get(&earlier).await.unwrap().unwrap();
                    assert_eq!(value, Bytes::from(format!("{mine}/{}", n / 2)));
                }
                let entries = kv.scan_all("row/", 1_000).await.unwrap();
                let expected: Vec<(Key, Bytes)> = (0..ROWS)
                    .map(|n| {
                        (
                            Key::new(format!("row/{n:03}")).unwrap(),
                            Bytes::from(format!("{mine}/{n}")),
                        )
                    })
                    .collect();
                assert_eq!(entries, expected, "{mine}: key-value rows");
                let query = EventQuery {
                    limit: 1_000,
                    ..EventQuery::default()
                };
                let read = events.query(&query).await.unwrap();
                assert_eq!(read.len(), ROWS, "{mine}: events");
                assert!(
                    read.iter().all(|e| e.payload["tenant"] == json!(mine)),
                    "{mine}: another tenant's event"
                );
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// `PostgresBackend::tenants` finds a tenant whatever table holds its rows (here one with
/// only a session, one with only a key), and refuses, rather than answering partially, when
/// the URL's user is held by row-level security.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_listed_from_every_table_by_a_privileged_user_only() {
    let backend = common::backend().await;
    let (with_session, with_key) = (common::random_tenant(), common::random_tenant());
    PostgresSessionStore::new(&backend.scoped(&with_session))
        .create(Some("s"), time::Duration::hours(1), json!(1))
        .await
        .unwrap();
    backend
        .scoped(&with_key)
        .set(&Key::new("k").unwrap(), Bytes::from_static(b"v"))
        .await
        .unwrap();
    let tenants = backend.tenants().await.unwrap();
    assert!(tenants.contains(&with_session), "{tenants:?}");
    assert!(tenants.contains(&with_key), "{tenants:?}");
    assert!(
        tenants.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeats"
    );

    let mut config = common::test_config(&common::with_user(&common::database_url(), "cairn_app"));
    config.auto_migrate = false;
    let as_app = PostgresBackend::connect(config).await.unwrap();
    let err = as_app.tenants().await.unwrap_err();
    assert_eq!(
        err.kind(),
        cairn_core::ErrorKind::PermissionDenied,
        "{err:?}"
    );
}
