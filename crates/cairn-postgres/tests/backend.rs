//! PostgreSQL-specific behaviour of `PostgresBackend` beyond the shared conformance suite:
//! the data role, isolation enforcement, timeouts, cancellation, and batch details.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::{ErrorKind, Key, StorageBackend, WriteBatch};
use cairn_postgres::{PostgresBackend, PostgresConfig};
use common::TempDatabase;
use tokio_postgres::Client;

fn key(k: &str) -> Key {
    Key::new(k).unwrap()
}

/// Opens a superuser transaction that holds the row lock of `tenant`/`key` until it ends.
async fn lock_row(admin: &Client, tenant: &str, key: &str) {
    admin.batch_execute("BEGIN").await.unwrap();
    let locked = admin
        .query(
            "SELECT 1 FROM kv_store WHERE tenant_id = $1 AND key = $2 FOR UPDATE",
            &[&tenant, &key],
        )
        .await
        .unwrap();
    assert_eq!(locked.len(), 1);
}

#[tokio::test]
async fn data_flows_as_a_role_that_row_level_security_applies_to() {
    let db = TempDatabase::create().await;
    let backend = PostgresBackend::connect(common::test_config(&db.url))
        .await
        .unwrap();
    // A trigger records who really writes each row, and a restrictive policy (always true)
    // who really reads it, as seen by the server.
    let admin = common::client(&db.url).await;
    admin
        .batch_execute(
            "CREATE TABLE write_audit (op text, who text, session_who text, tenant text,
                                       superuser bool, bypassrls bool, owns_table bool);
             GRANT INSERT ON write_audit TO PUBLIC;
             CREATE FUNCTION audit(op text) RETURNS void LANGUAGE sql AS $$
                 INSERT INTO write_audit
                 SELECT op, current_user, session_user, current_setting('app.tenant_id', true),
                        rolsuper, rolbypassrls,
                        pg_has_role(current_user,
                                    (SELECT relowner FROM pg_class
                                     WHERE oid = 'kv_store'::regclass), 'MEMBER')
                 FROM pg_roles WHERE rolname = current_user
             $$;
             CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM audit('write');
                 RETURN NEW;
             END $$;
             CREATE TRIGGER audit BEFORE INSERT OR UPDATE ON kv_store
                 FOR EACH ROW EXECUTE FUNCTION audit_write();
             CREATE FUNCTION audit_read() RETURNS bool LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM audit('read');
                 RETURN true;
             END $$;
             CREATE POLICY audit_reads ON kv_store AS RESTRICTIVE FOR SELECT
                 USING (audit_read());",
        )
        .await
        .unwrap();

    let tenant = common::random_tenant();
    let scoped = backend.tenant(&tenant);
    scoped
        .set(&key("k"), Bytes::from_static(b"v"))
        .await
        .unwrap();
    scoped
        .set_batch(vec![(key("a"), Bytes::new()), (key("b"), Bytes::new())])
        .await
        .unwrap();
    assert!(scoped.get(&key("k")).await.unwrap().is_some());
    assert_eq!(scoped.list_keys("").await.unwrap().len(), 3);
    assert_eq!(scoped.scan("", None, 10).await.unwrap().entries.len(), 3);

    let rows = admin
        .query(
            "SELECT op, who, session_who, tenant, superuser, bypassrls, owns_table
             FROM write_audit",
            &[],
        )
        .await
        .unwrap();
    let count = |op: &str| rows.iter().filter(|r| r.get::<_, &str>(0) == op).count();
    assert_eq!(count("write"), 3);
    assert!(count("read") >= 7, "every row read is audited");
    for row in rows {
        let (op, who, session_who, row_tenant): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(who, "cairn_app", "{op}");
        assert_eq!(
            session_who,
            common::url_user(&db.url),
            "the URL's user, switched with SET ROLE"
        );
        assert_eq!(
            row_tenant,
            tenant.as_str(),
            "tenant set inside the transaction"
        );
        assert!(!row.get::<_, bool>(4), "{op}: not a superuser");
        assert!(!row.get::<_, bool>(5), "{op}: no BYPASSRLS");
        assert!(
            !row.get::<_, bool>(6),
            "{op}: neither owner of kv_store nor in its role"
        );
    }

    // Between operations no pooled connection sits in an open transaction.
    let open: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'cairn'
               AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0);
}

#[tokio::test]
async fn a_role_that_bypasses_rls_is_refused_unless_enforcement_is_off() {
    let url = common::database_url();
    let mut config = common::test_config(&url);
    // The URL's own user, a superuser: no SET ROLE happens and RLS would not apply.
    config.app_role = common::url_user(&url);
    let err = PostgresBackend::connect(config.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("superuser"), "{err}");

    // Explicitly accepted: works, and the queries still keep tenants apart.
    config.enforce_tenant_isolation = false;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let one = backend.tenant(&common::random_tenant());
    let two = backend.tenant(&common::random_tenant());
    one.set(&key("k"), Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(two.get(&key("k")).await.unwrap(), None);
    assert!(two.list_keys("").await.unwrap().is_empty());
}

#[tokio::test]
async fn connecting_as_the_app_role_itself_works_and_it_cannot_escalate() {
    let url = common::with_user(&common::database_url(), "cairn_app");
    let mut config = common::test_config(&url);
    config.auto_migrate = false;
    let backend = PostgresBackend::connect(config.clone()).await.unwrap();
    let scoped = backend.tenant(&common::random_tenant());
    scoped
        .set(&key("k"), Bytes::from_static(b"v"))
        .await
        .unwrap();
    assert_eq!(
        scoped.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );

    config.app_role = common::url_user(&common::database_url());
    let err = PostgresBackend::connect(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[tokio::test]
async fn a_slow_statement_is_a_timeout() {
    let mut config = common::test_config(&common::database_url());
    config.statement_timeout_ms = 300;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let scoped = backend.tenant(&common::random_tenant());
    scoped
        .set(&key("k"), Bytes::from_static(b"v"))
        .await
        .unwrap();

    let admin = common::client(&common::database_url()).await;
    lock_row(&admin, scoped.tenant_id().as_str(), "k").await;
    let err = scoped
        .set(&key("k"), Bytes::from_static(b"w"))
        .await
        .unwrap_err();
    admin.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    assert_eq!(
        scoped.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn waiting_too_long_for_a_pooled_connection_is_a_retryable_timeout() {
    let mut config = common::test_config(&common::database_url());
    config.pool_size = 1;
    config.acquire_timeout_ms = 300;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let scoped = backend.tenant(&common::random_tenant());
    scoped
        .set(&key("k"), Bytes::from_static(b"v"))
        .await
        .unwrap();

    let admin = common::client(&common::database_url()).await;
    lock_row(&admin, scoped.tenant_id().as_str(), "k").await;
    let blocked = tokio::spawn({
        let scoped = Arc::clone(&scoped);
        async move { scoped.set(&key("k"), Bytes::from_static(b"w")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = scoped.get(&key("other")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    admin.batch_execute("ROLLBACK").await.unwrap();
    blocked.await.unwrap().unwrap();
    assert_eq!(
        scoped.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"w"[..])
    );
}

#[tokio::test]
async fn a_cancelled_batch_writes_nothing_and_does_not_poison_the_pool() {
    let db = TempDatabase::create().await;
    let mut config = common::test_config(&db.url);
    config.pool_size = 1;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let scoped = backend.tenant(&common::random_tenant());
    scoped
        .set(&key("k"), Bytes::from_static(b"v1"))
        .await
        .unwrap();

    let admin = common::client(&db.url).await;
    lock_row(&admin, scoped.tenant_id().as_str(), "k").await;
    // The batch's check blocks on the lock; give up on it while its transaction is open.
    let batch = WriteBatch::new()
        .check(key("k"), Some(Bytes::from_static(b"v1")))
        .put(key("k"), Bytes::from_static(b"v2"))
        .put(key("other"), Bytes::from_static(b"x"));
    let cancelled =
        tokio::time::timeout(Duration::from_millis(300), scoped.write_batch(batch)).await;
    assert!(cancelled.is_err(), "the batch should still be waiting");
    admin.batch_execute("COMMIT").await.unwrap();

    // The only pooled connection was discarded, not handed on mid-transaction.
    assert_eq!(
        scoped.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(scoped.get(&key("other")).await.unwrap(), None);
    scoped
        .set(&key("k"), Bytes::from_static(b"v3"))
        .await
        .unwrap();
    assert_eq!(
        scoped.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v3"[..])
    );
    assert_eq!(scoped.get(&key("other")).await.unwrap(), None);
}

#[tokio::test]
async fn check_only_absence_leaves_no_trace_and_no_false_conflicts() {
    let backend = common::backend().await;
    let scoped = backend.tenant(&common::random_tenant());
    // Eight batches check the same absent guard key at once; none writes it, so all succeed.
    let tasks = (0..8).map(|i| {
        let scoped = Arc::clone(&scoped);
        tokio::spawn(async move {
            let batch = WriteBatch::new()
                .check(key("guard"), None)
                .put(key(&format!("w/{i}")), Bytes::from(vec![i as u8]));
            scoped.write_batch(batch).await
        })
    });
    for result in futures::future::join_all(tasks).await {
        result.unwrap().unwrap();
    }
    assert!(!scoped.exists(&key("guard")).await.unwrap());
    assert_eq!(scoped.list_keys("w/").await.unwrap().len(), 8);

    // A failed batch rolls back its placeholders too.
    let batch = WriteBatch::new()
        .check(key("absent-1"), None)
        .check(key("missing"), Some(Bytes::from_static(b"x")))
        .put(key("absent-1"), Bytes::from_static(b"y"));
    let err = scoped.write_batch(batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(scoped.list_keys("absent").await.unwrap(), Vec::<Key>::new());
}

#[tokio::test]
async fn checked_batches_never_lose_a_concurrent_increment() {
    let backend = common::backend().await;
    let scoped = backend.tenant(&common::random_tenant());
    let counter = key("counter");
    scoped
        .set(&counter, Bytes::from(0u64.to_be_bytes().to_vec()))
        .await
        .unwrap();
    let tasks = (0..16u64).map(|i| {
        let scoped = Arc::clone(&scoped);
        let counter = counter.clone();
        tokio::spawn(async move {
            loop {
                let current = scoped.get(&counter).await.unwrap().unwrap();
                let n = u64::from_be_bytes(current.as_ref().try_into().unwrap());
                // The check and both puts commit together or not at all.
                let batch = WriteBatch::new()
                    .check(counter.clone(), Some(current))
                    .put(counter.clone(), Bytes::from((n + 1).to_be_bytes().to_vec()))
                    .put(
                        key(&format!("log/{n:04}")),
                        Bytes::from(i.to_be_bytes().to_vec()),
                    );
                match scoped.write_batch(batch).await {
                    Ok(()) => return,
                    Err(e) if e.kind() == ErrorKind::Conflict => continue,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let end = scoped.get(&counter).await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(end.as_ref().try_into().unwrap()), 16);
    // Exactly one log entry per increment: no two batches committed from the same value.
    assert_eq!(scoped.list_keys("log/").await.unwrap().len(), 16);
}

#[tokio::test]
async fn contradictory_checks_conflict_without_writing() {
    let backend = common::backend().await;
    let scoped = backend.tenant(&common::random_tenant());
    let batch = WriteBatch::new()
        .check(key("k"), None)
        .check(key("k"), Some(Bytes::new()))
        .put(key("k"), Bytes::from_static(b"v"));
    let err = scoped.write_batch(batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(scoped.get(&key("k")).await.unwrap(), None);
    // Repeating the same check is fine.
    let batch = WriteBatch::new()
        .check(key("k"), None)
        .check(key("k"), None)
        .put(key("k"), Bytes::from_static(b"v"));
    scoped.write_batch(batch).await.unwrap();
}

#[tokio::test]
async fn prefixes_without_an_upper_bound_still_scan_correctly() {
    let backend = common::backend().await;
    let scoped = backend.tenant(&common::random_tenant());
    let top = '\u{10FFFF}';
    let keys = [format!("{top}a"), format!("{top}{top}"), "z".to_owned()];
    for k in &keys {
        scoped.set(&key(k), Bytes::from_static(b"v")).await.unwrap();
    }
    let prefix = top.to_string();
    assert_eq!(
        scoped.list_keys(&prefix).await.unwrap(),
        vec![key(&keys[0]), key(&keys[1])]
    );
    let first = scoped.scan(&prefix, None, 1).await.unwrap();
    assert_eq!(first.entries.len(), 1);
    assert_eq!(first.next_after, Some(key(&keys[0])));
    let second = scoped
        .scan(&prefix, first.next_after.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(second.entries[0].0, key(&keys[1]));
    assert_eq!(second.next_after, None);
}

#[tokio::test]
async fn a_batch_beyond_one_statement_is_rejected_before_sending() {
    let backend = common::backend().await;
    let scoped = backend.tenant(&common::random_tenant());
    // Fifteen maximal values share one buffer here but would be 1 GB on the wire.
    let big = Bytes::from(vec![7u8; cairn_core::MAX_VALUE_BYTES]);
    let entries: Vec<(Key, Bytes)> = (0..15)
        .map(|i| (key(&format!("big/{i}")), big.clone()))
        .collect();
    let err = scoped.set_batch(entries).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let batch = (0..15).fold(WriteBatch::new(), |batch, i| {
        batch.put(key(&format!("big/{i}")), big.clone())
    });
    let err = scoped.write_batch(batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(scoped.list_keys("").await.unwrap().is_empty());
}

#[tokio::test]
async fn debug_hides_the_password_and_characteristics_are_complete() {
    let url = common::database_url();
    let driver: tokio_postgres::Config = url.parse().unwrap();
    // Use the URL's own password if it has one; else add one, which a server that does not
    // ask for passwords (the test server trusts local connections) ignores.
    let (url, password) = match driver.get_password() {
        Some(password) => (url.clone(), String::from_utf8_lossy(password).into_owned()),
        None => {
            let user = driver.get_user().expect("DATABASE_URL names a user");
            (
                common::with_user(&url, &format!("{user}:hunter2")),
                "hunter2".to_owned(),
            )
        }
    };
    let config = common::test_config(&url);
    assert!(!format!("{config:?}").contains(&password));
    let backend = PostgresBackend::connect(config).await.unwrap();
    let debug = format!("{backend:?}");
    assert!(!debug.contains(&password), "{debug}");
    let scoped = backend.tenant(&common::random_tenant());
    assert!(!format!("{scoped:?}").contains(&password));

    let c = scoped.characteristics();
    assert!(c.persistent && c.durable_on_ack && c.shared_across_processes);
    assert!(c.atomic_batches && c.conditional_writes && c.ordered_scans);
    assert!(c.engine_enforced_tenancy);
    assert_eq!(c.max_key_bytes, cairn_core::MAX_KEY_BYTES);
    assert_eq!(c.max_value_bytes, cairn_core::MAX_VALUE_BYTES);
    assert_eq!(c.max_batch_ops, cairn_core::MAX_BATCH_OPS);
    assert_eq!(c.max_scan_limit, cairn_core::MAX_SCAN_LIMIT);
    assert_eq!(
        scoped.backend_type(),
        cairn_core::StorageBackendType::Postgres
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let mut config = PostgresConfig::new("postgresql://postgres@127.0.0.1:1/postgres");
    config.connect_timeout_ms = 1_000;
    let err = PostgresBackend::connect(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}
