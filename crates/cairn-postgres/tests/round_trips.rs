//! Counts network round trips per operation: the backend talks to the server through a local
//! proxy that holds every server reply back for [`DELAY`], so an operation's duration is
//! about its round-trip count times the delay.
//!
//! This checks a structural property (`BEGIN`, tenant setting, statement and `COMMIT` are
//! pipelined into one round trip), not speed: each bound allows one extra whole round trip of
//! slack, the minimum of several runs is used, and a non-pipelined transaction on a raw
//! tokio-postgres connection through the same proxy is measured alongside as the baseline.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::{Key, StorageBackend, WriteBatch};
use cairn_postgres::PostgresBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Added to every server-to-client transfer.
const DELAY: Duration = Duration::from_millis(50);
/// Runs per measurement; the fastest counts.
const RUNS: usize = 5;

/// Forwards local connections to `target`, delaying each chunk from the server by [`DELAY`]
/// (chunks keep their spacing, so pipelined replies are not delayed one after another).
async fn start_delay_proxy(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(proxy(inbound, target));
        }
    });
    address
}

async fn proxy(inbound: TcpStream, target: SocketAddr) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
        let _ = to_server.shutdown().await;
    });
    let (chunks, mut delayed) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            if chunks
                .send((Instant::now() + DELAY, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    while let Some((due, chunk)) = delayed.recv().await {
        tokio::time::sleep_until(due.into()).await;
        if to_client.write_all(&chunk).await.is_err() {
            break;
        }
    }
}

async fn fastest<F, Fut>(mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        op().await;
        best = best.min(start.elapsed());
    }
    best
}

fn round_trips(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() / DELAY.as_secs_f64()
}

/// `DATABASE_URL` reached through a new delay proxy, and a backend with one connection on it.
async fn proxied_backend() -> (String, PostgresBackend) {
    let url = common::database_url();
    let driver: tokio_postgres::Config = url.parse().unwrap();
    let host = match &driver.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the round-trip test needs a TCP DATABASE_URL, got {other:?}"),
    };
    let port = driver.get_ports().first().copied().unwrap_or(5432);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = start_delay_proxy(target).await;
    let proxied = common::with_host(&url, &proxy.to_string());
    let mut config = common::test_config(&proxied);
    config.pool_size = 1;
    let backend = PostgresBackend::connect(config).await.unwrap();
    (proxied, backend)
}

#[tokio::test]
async fn each_operation_takes_one_round_trip_and_checked_batches_two() {
    let (proxied, backend) = proxied_backend().await;
    let scoped = backend.tenant(&common::random_tenant());
    let k = Key::new("k").unwrap();
    scoped.set(&k, Bytes::from_static(b"v")).await.unwrap();

    let get = fastest(|| async {
        scoped.get(&k).await.unwrap();
    })
    .await;
    let set = fastest(|| async {
        scoped.set(&k, Bytes::from_static(b"w")).await.unwrap();
    })
    .await;
    let set_batch = fastest(|| async {
        let entries = (0..100)
            .map(|i| {
                (
                    Key::new(format!("b/{i}")).unwrap(),
                    Bytes::from_static(b"x"),
                )
            })
            .collect();
        scoped.set_batch(entries).await.unwrap();
    })
    .await;
    let scan = fastest(|| async {
        scoped.scan("b/", None, 50).await.unwrap();
    })
    .await;
    let batch = fastest(|| async {
        let batch = WriteBatch::new()
            .put(Key::new("b/1").unwrap(), Bytes::from_static(b"y"))
            .delete(Key::new("b/2").unwrap());
        scoped.write_batch(batch).await.unwrap();
    })
    .await;
    let checked_batch = fastest(|| async {
        // Read-modify-write: one round trip for the read, two for the checked batch.
        let current = scoped.get(&k).await.unwrap();
        let batch = WriteBatch::new()
            .check(k.clone(), current)
            .put(k.clone(), Bytes::from_static(b"z"))
            .delete(Key::new("b/0").unwrap());
        scoped.write_batch(batch).await.unwrap();
    })
    .await;

    // Baseline in the same run: the same transaction awaited statement by statement.
    let raw = common::client(&proxied).await;
    let begin = raw.prepare("BEGIN").await.unwrap();
    let tenant = raw
        .prepare("SELECT set_config('app.tenant_id', $1, true)")
        .await
        .unwrap();
    let select = raw
        .prepare("SELECT value FROM kv_store WHERE tenant_id = $1 AND key = $2")
        .await
        .unwrap();
    let commit = raw.prepare("COMMIT").await.unwrap();
    let tenant_id = scoped.tenant_id().as_str();
    let sequential = fastest(|| async {
        raw.execute(&begin, &[]).await.unwrap();
        raw.execute(&tenant, &[&tenant_id]).await.unwrap();
        raw.query_opt(&select, &[&tenant_id, &"k"]).await.unwrap();
        raw.execute(&commit, &[]).await.unwrap();
    })
    .await;

    eprintln!(
        "round trips at {DELAY:?} per reply: get {:.2}, set {:.2}, set_batch(100) {:.2}, \
         scan {:.2}, write_batch {:.2}, get + checked write_batch {:.2}; \
         baseline sequential transaction {:.2}",
        round_trips(get),
        round_trips(set),
        round_trips(set_batch),
        round_trips(scan),
        round_trips(batch),
        round_trips(checked_batch),
        round_trips(sequential),
    );
    assert!(sequential >= DELAY * 4, "the proxy must delay every reply");
    for (name, elapsed) in [
        ("get", get),
        ("set", set),
        ("set_batch", set_batch),
        ("write_batch without checks", batch),
        ("scan", scan),
    ] {
        assert!(
            elapsed < DELAY * 2,
            "{name} took {:.2} round trips; its statements are not pipelined",
            round_trips(elapsed)
        );
    }
    assert!(
        checked_batch < DELAY * 4,
        "get + checked write_batch took {:.2} round trips, expected 3",
        round_trips(checked_batch)
    );
}

/// The writes of the procedural, workflow and artifact stores take one round trip each: an
/// outcome, a definition upsert, a workflow creation and move (lock and update pipelined), a
/// put of new or of stored content up to 8 MiB (transaction opened by the first statement),
/// and a release (lock, free or decrement pipelined).
#[tokio::test]
async fn procedural_workflow_and_artifact_writes_take_one_round_trip() {
    use cairn_stores::workflow::Transition;
    use cairn_stores::{ArtifactStore, ProceduralStore, PutOptions, WorkflowStore};
    use std::sync::atomic::{AtomicU64, Ordering};

    let (_, backend) = proxied_backend().await;
    let scoped = backend.scoped(&common::random_tenant());
    let procedures = cairn_postgres::PostgresProceduralStore::new(&scoped);
    let workflows = cairn_postgres::PostgresWorkflowStore::new(&scoped);
    let artifacts = cairn_postgres::PostgresArtifactStore::new(&scoped);
    let procedure = cairn_stores::Procedure {
        id: "p".into(),
        name: "P".into(),
        category: "c".into(),
        description: String::new(),
        content: serde_json::json!([]),
        metadata: serde_json::Map::new(),
    };
    procedures
        .upsert_procedure(procedure.clone())
        .await
        .unwrap();
    let next = AtomicU64::new(0);
    let fresh = || next.fetch_add(1, Ordering::Relaxed);

    let upsert = fastest(|| async {
        procedures
            .upsert_procedure(procedure.clone())
            .await
            .unwrap();
    })
    .await;
    let outcome = fastest(|| async {
        procedures.record_outcome("p", true).await.unwrap();
    })
    .await;
    let create = fastest(|| async {
        workflows
            .create(Some(&format!("w{}", fresh())), "job", serde_json::json!(1))
            .await
            .unwrap();
    })
    .await;
    let start = AtomicU64::new(0);
    let transition = fastest(|| async {
        let id = format!("w{}", start.fetch_add(1, Ordering::Relaxed));
        workflows.transition(&id, Transition::Start).await.unwrap();
    })
    .await;
    let put_new = fastest(|| async {
        let content = Bytes::from(format!("artifact {}", fresh()));
        artifacts.put(content, PutOptions::default()).await.unwrap();
    })
    .await;
    artifacts
        .put(Bytes::from_static(b"artifact 0"), PutOptions::default())
        .await
        .unwrap();
    let put_stored = fastest(|| async {
        let content = Bytes::from_static(b"artifact 0");
        artifacts.put(content, PutOptions::default()).await.unwrap();
    })
    .await;
    let stored = cairn_stores::artifacts::chunking::content_hash(b"artifact 0");
    let release = fastest(|| async {
        artifacts.release(&stored).await.unwrap();
    })
    .await;

    eprintln!(
        "round trips at {DELAY:?} per reply: procedure upsert {:.2}, outcome {:.2}, workflow \
         create {:.2}, transition {:.2}, artifact put (new) {:.2}, put (stored) {:.2}, \
         release {:.2}",
        round_trips(upsert),
        round_trips(outcome),
        round_trips(create),
        round_trips(transition),
        round_trips(put_new),
        round_trips(put_stored),
        round_trips(release),
    );
    for (name, elapsed) in [
        ("procedure upsert", upsert),
        ("record_outcome", outcome),
        ("workflow create", create),
        ("workflow transition", transition),
        ("artifact put of new content", put_new),
        ("artifact put of stored content", put_stored),
        ("artifact release", release),
    ] {
        assert!(
            elapsed < DELAY * 2,
            "{name} took {:.2} round trips; its statements are not pipelined",
            round_trips(elapsed)
        );
    }
}

/// The native graph store: a write (the id's lock and the write statement, pipelined), an
/// as-of read and a traversal of a 50-deep chain (one recursive statement) each take one
/// round trip. The graph is built directly, then read through the proxy.
#[tokio::test]
async fn graph_writes_reads_and_deep_traversals_take_one_round_trip() {
    use cairn_postgres::PostgresGraphStore;
    use cairn_stores::graph::{AsOf, EntityInput, GraphStore, RelationshipInput, TraverseRequest};

    let tenant = common::random_tenant();
    let direct = PostgresGraphStore::new(&common::backend().await.scoped(&tenant));
    let ids: Vec<String> = (0..=50).map(|i| format!("c{i:02}")).collect();
    for id in &ids {
        direct
            .upsert_entity(EntityInput::new(id.as_str(), "node", id.as_str()))
            .await
            .unwrap();
    }
    for pair in ids.windows(2) {
        let id = format!("{}-{}", pair[0], pair[1]);
        let input = RelationshipInput::new(id, pair[0].as_str(), "next", pair[1].as_str());
        direct.upsert_relationship(input).await.unwrap();
    }

    let (_, backend) = proxied_backend().await;
    let store = PostgresGraphStore::new(&backend.scoped(&tenant));
    store.get_entity("c00").await.unwrap();
    let write = fastest(|| async {
        store
            .upsert_entity(EntityInput::new("c00", "node", "again"))
            .await
            .unwrap();
    })
    .await;
    let as_of = fastest(|| async {
        let now = AsOf::valid_at(time::OffsetDateTime::now_utc());
        assert!(store.get_entity_as_of("c25", now).await.unwrap().is_some());
    })
    .await;
    let traverse = fastest(|| async {
        let hits = store
            .traverse("c00", TraverseRequest::outgoing(50))
            .await
            .unwrap();
        assert_eq!(hits.len(), 50);
    })
    .await;
    eprintln!(
        "graph round trips at {DELAY:?} per reply: upsert_entity {:.2}, get_entity_as_of {:.2}, \
         traverse(depth 50) {:.2}",
        round_trips(write),
        round_trips(as_of),
        round_trips(traverse),
    );
    for (name, elapsed) in [
        ("upsert_entity", write),
        ("get_entity_as_of", as_of),
        ("traverse to depth 50", traverse),
    ] {
        assert!(
            elapsed < DELAY * 2,
            "{name} took {:.2} round trips, expected 1",
            round_trips(elapsed)
        );
    }
}
