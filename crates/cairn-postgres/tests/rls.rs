//! Row-level security seen from an attacker's seat: SQL sent directly as the application role
//! `cairn_app`, bypassing the backend, must still never reach another tenant's rows.
//!
//! Each test writes tenant B's data through the backend, attacks it as `cairn_app` with tenant
//! A set for the transaction, then checks through B's own handle that nothing changed.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cairn_core::{Key, StorageBackend};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

struct Tenants {
    a: Arc<dyn StorageBackend>,
    b: Arc<dyn StorageBackend>,
    /// A direct connection as `cairn_app`.
    attacker: Client,
}

const B_DATA: [(&str, &[u8]); 2] = [("secret/1", b"b-one"), ("secret/2", b"b-two")];

async fn setup() -> Tenants {
    let backend = common::backend().await;
    let a = backend.tenant(&common::random_tenant());
    let b = backend.tenant(&common::random_tenant());
    a.set(&key("mine"), Bytes::from_static(b"a-value"))
        .await
        .unwrap();
    for (k, v) in B_DATA {
        b.set(&key(k), Bytes::from_static(v)).await.unwrap();
    }
    let attacker = common::client(&common::with_user(&common::database_url(), "cairn_app")).await;
    let role: String = attacker
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "cairn_app");
    Tenants { a, b, attacker }
}

fn key(k: &str) -> Key {
    Key::new(k).unwrap()
}

/// Opens a transaction on `client` with `tenant` set the way the backend sets it.
async fn begin_as(client: &Client, tenant: &str) {
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("SELECT set_config('app.tenant_id', $1, true)", &[&tenant])
        .await
        .unwrap();
}

async fn assert_b_unchanged(t: &Tenants) {
    let keys: Vec<Key> = B_DATA.iter().map(|(k, _)| key(k)).collect();
    assert_eq!(t.b.list_keys("").await.unwrap(), keys);
    for (k, v) in B_DATA {
        assert_eq!(t.b.get(&key(k)).await.unwrap().as_deref(), Some(v), "{k}");
    }
}

fn assert_insufficient_privilege(result: Result<u64, tokio_postgres::Error>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{what}: {err}"
    );
}

#[tokio::test]
async fn tenant_a_cannot_read_or_list_tenant_b() {
    let t = setup().await;
    let b = t.b.tenant_id().as_str();
    begin_as(&t.attacker, t.a.tenant_id().as_str()).await;
    let by_tenant: i64 = t
        .attacker
        .query_one("SELECT count(*) FROM kv_store WHERE tenant_id = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_tenant, 0);
    let by_key: i64 = t
        .attacker
        .query_one(
            "SELECT count(*) FROM kv_store WHERE key LIKE 'secret/%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_key, 0);
    let visible: Vec<(String, String)> = t
        .attacker
        .query("SELECT tenant_id::text, key::text FROM kv_store", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        visible,
        vec![(t.a.tenant_id().to_string(), "mine".to_owned())]
    );
    t.attacker.batch_execute("COMMIT").await.unwrap();
    assert_b_unchanged(&t).await;
}

#[tokio::test]
async fn tenant_a_cannot_update_or_delete_tenant_b() {
    let t = setup().await;
    let b = t.b.tenant_id().as_str();
    begin_as(&t.attacker, t.a.tenant_id().as_str()).await;
    let updated = t
        .attacker
        .execute(
            "UPDATE kv_store SET value = 'pwned' WHERE tenant_id = $1",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!(updated, 0);
    let updated_all = t
        .attacker
        .execute(
            "UPDATE kv_store SET value = 'pwned' WHERE key LIKE 'secret/%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(updated_all, 0);
    let deleted = t
        .attacker
        .execute("DELETE FROM kv_store WHERE tenant_id = $1", &[&b])
        .await
        .unwrap();
    assert_eq!(deleted, 0);
    let deleted_all = t
        .attacker
        .execute("DELETE FROM kv_store WHERE key <> 'mine'", &[])
        .await
        .unwrap();
    assert_eq!(deleted_all, 0);
    t.attacker.batch_execute("COMMIT").await.unwrap();
    assert_b_unchanged(&t).await;
    assert_eq!(
        t.a.get(&key("mine")).await.unwrap().as_deref(),
        Some(&b"a-value"[..])
    );
}

#[tokio::test]
async fn tenant_a_cannot_insert_or_move_rows_into_tenant_b() {
    let t = setup().await;
    let a = t.a.tenant_id().as_str();
    let b = t.b.tenant_id().as_str();

    begin_as(&t.attacker, a).await;
    let planted = t
        .attacker
        .execute(
            "INSERT INTO kv_store (tenant_id, key, value) VALUES ($1, 'planted', 'x')",
            &[&b],
        )
        .await;
    assert_insufficient_privilege(planted, "insert a row for tenant B");
    t.attacker.batch_execute("ROLLBACK").await.unwrap();

    begin_as(&t.attacker, a).await;
    let overwrite = t
        .attacker
        .execute(
            "INSERT INTO kv_store (tenant_id, key, value) VALUES ($1, 'secret/1', 'x') \
             ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value",
            &[&b],
        )
        .await;
    assert_insufficient_privilege(overwrite, "upsert over tenant B's row");
    t.attacker.batch_execute("ROLLBACK").await.unwrap();

    begin_as(&t.attacker, a).await;
    let moved = t
        .attacker
        .execute(
            "UPDATE kv_store SET tenant_id = $1 WHERE tenant_id = $2",
            &[&b, &a],
        )
        .await;
    assert_insufficient_privilege(moved, "move tenant A's row to tenant B");
    t.attacker.batch_execute("ROLLBACK").await.unwrap();

    assert_b_unchanged(&t).await;
    assert_eq!(t.a.list_keys("").await.unwrap(), vec![key("mine")]);
}

#[tokio::test]
async fn without_a_tenant_nothing_is_visible_or_writable() {
    let t = setup().await;
    let b = t.b.tenant_id().as_str();
    let total: i64 = t
        .attacker
        .query_one("SELECT count(*) FROM kv_store", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 0, "no tenant set: no row is visible");
    let deleted = t
        .attacker
        .execute("DELETE FROM kv_store", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 0);
    let planted = t
        .attacker
        .execute(
            "INSERT INTO kv_store (tenant_id, key, value) VALUES ($1, 'planted', 'x')",
            &[&b],
        )
        .await;
    assert_insufficient_privilege(planted, "insert with no tenant set");
    assert_b_unchanged(&t).await;
}

#[tokio::test]
async fn tenant_setting_does_not_outlive_its_transaction() {
    let t = setup().await;
    let b = t.b.tenant_id().as_str();
    begin_as(&t.attacker, b).await;
    let inside: i64 = t
        .attacker
        .query_one("SELECT count(*) FROM kv_store", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        inside,
        B_DATA.len() as i64,
        "the policy admits the tenant that is set"
    );
    t.attacker.batch_execute("COMMIT").await.unwrap();
    let after: i64 = t
        .attacker
        .query_one("SELECT count(*) FROM kv_store", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 0, "the tenant was transaction-local");
}

#[tokio::test]
async fn app_role_cannot_switch_off_row_level_security() {
    let t = setup().await;
    for attack in [
        "ALTER TABLE kv_store DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE kv_store NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY kv_store_tenant_select ON kv_store",
        "CREATE POLICY open_door ON kv_store FOR SELECT USING (true)",
        "TRUNCATE kv_store",
        "SET ROLE pg_read_all_data",
        "SELECT count(*) FROM cairn_schema_migrations",
    ] {
        let result = t.attacker.execute(attack, &[]).await;
        let err = result.expect_err(attack);
        assert!(
            err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{attack}: {err}"
        );
    }
    assert_b_unchanged(&t).await;
}
