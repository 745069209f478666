//! Server faults, each on a throwaway server of the test's own (see `common::throwaway`): a
//! crash-restart under load, a pool exhausted by slow callers, and a connection killed inside
//! a transaction. Every failure must be a retryable `Unavailable` or `Timeout`, nothing may
//! hang past the configured timeouts, no acknowledged write may be lost, and the pool must
//! recover without help.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::{Error, ErrorKind, Key, StorageBackend, WriteBatch};
use cairn_postgres::{PostgresBackend, PostgresConfig};
use common::throwaway::{ThrowawayServer, wait_until};
use tokio_postgres::Client;

fn key(k: &str) -> Key {
    Key::new(k).unwrap()
}

/// Tasks reading and writing at once while the server restarts.
const TASKS: usize = 32;
/// How long the tasks run before the restart starts, and on after it has finished (each task
/// then stops at its first success after the restart, or at [`TASKS_LIMIT`]).
const BEFORE_RESTART: Duration = Duration::from_millis(700);
const AFTER_RESTART: Duration = Duration::from_millis(1_500);
/// When every task stops, recovered or not, counted from their start.
const TASKS_LIMIT: Duration = Duration::from_secs(30);
/// The whole restart test, server start and checks included.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Backend settings for the fault tests: short timeouts so a hang would show.
fn fault_config(server: &ThrowawayServer) -> PostgresConfig {
    let mut config = PostgresConfig::new(server.url());
    config.pool_size = 8;
    config.connect_timeout_ms = 1_000;
    config.acquire_timeout_ms = 2_000;
    config.statement_timeout_ms = 5_000;
    config
}

/// The longest one operation may take under `config`: waiting for a pool slot, opening a
/// connection (connect plus its setup), checking an idle one, and one statement.
fn operation_bound(config: &PostgresConfig) -> Duration {
    Duration::from_millis(
        config.acquire_timeout_ms * 2 + config.connect_timeout_ms * 2 + config.statement_timeout_ms,
    ) + Duration::from_secs(1)
}

/// What one task saw.
#[derive(Default)]
struct Tally {
    attempted: u64,
    succeeded: u64,
    unavailable: u64,
    timeouts: u64,
    /// Operations that outlived [`operation_bound`].
    hung: u64,
    /// Errors that were not retryable `Unavailable`/`Timeout`, or that showed the password.
    unexpected: Vec<String>,
    /// Reads of an acknowledged write that returned something else.
    wrong_reads: Vec<String>,
    /// Successful operations that started after the restart had finished.
    succeeded_after_restart: u64,
    /// Every acknowledged write: key and value.
    acknowledged: BTreeMap<String, Vec<u8>>,
}

impl Tally {
    fn failed(&mut self, err: &Error, password: &str) {
        let text = format!("{err} / {err:?}");
        let retryable_kind = matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout);
        if !err.is_retryable() || !retryable_kind || text.contains(password) {
            self.unexpected.push(text);
        } else if err.kind() == ErrorKind::Unavailable {
            self.unavailable += 1;
        } else {
            self.timeouts += 1;
        }
    }
}

/// One task: writes keys of its own (one `set`, then a read of an acknowledged key, every
/// fourth step a two-key `write_batch`), recording what was acknowledged, until `stop` is set
/// and it has succeeded since the restart (or [`TASKS_LIMIT`] has passed).
async fn hammer(
    scoped: Arc<dyn StorageBackend>,
    task: usize,
    bound: Duration,
    password: String,
    restarted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut step = 0u64;
    let give_up = Instant::now() + TASKS_LIMIT;
    while !(stop.load(Ordering::Acquire) && tally.succeeded_after_restart > 0)
        && Instant::now() < give_up
        && step < 1_000_000
    {
        step += 1;
        let after_restart = restarted.load(Ordering::Acquire);
        let name = format!("t{task:02}/{step:06}");
        let value = format!("task {task} step {step}").into_bytes();
        // What this step writes, if anything: (key, value) pairs acknowledged on success.
        let (writes, outcome): (Vec<(String, Vec<u8>)>, _) = match step % 4 {
            0 => {
                let pairs = vec![
                    (format!("{name}/a"), value.clone()),
                    (format!("{name}/b"), value.clone()),
                ];
                let batch = pairs.iter().fold(WriteBatch::new(), |batch, (k, v)| {
                    batch.put(key(k), Bytes::from(v.clone()))
                });
                let outcome = tokio::time::timeout(bound, scoped.write_batch(batch)).await;
                (pairs, outcome.map(|r| r.map(|()| None)))
            }
            2 if !tally.acknowledged.is_empty() => {
                // Read back an acknowledged key, spread over the ones written so far.
                let index = (step as usize * 7919) % tally.acknowledged.len();
                let (k, _) = tally.acknowledged.iter().nth(index).expect("in range");
                let k = k.clone();
                let outcome = tokio::time::timeout(bound, scoped.get(&key(&k))).await;
                (Vec::new(), outcome.map(|r| r.map(|v| Some((k, v)))))
            }
            _ => {
                let outcome = tokio::time::timeout(
                    bound,
                    scoped.set(&key(&name), Bytes::from(value.clone())),
                )
                .await;
                (vec![(name, value)], outcome.map(|r| r.map(|()| None)))
            }
        };
        tally.attempted += 1;
        match outcome {
            Err(_elapsed) => tally.hung += 1,
            Ok(Err(err)) => tally.failed(&err, &password),
            Ok(Ok(read)) => {
                tally.succeeded += 1;
                if after_restart {
                    tally.succeeded_after_restart += 1;
                }
                if let Some((k, got)) = read {
                    let expected = &tally.acknowledged[&k];
                    if got.as_deref() != Some(expected.as_slice()) {
                        tally.wrong_reads.push(format!("{k}: {got:?}"));
                    }
                }
                tally.acknowledged.extend(writes);
            }
        }
    }
    tally
}

/// The tenant's rows as the server holds them, read by the superuser (which bypasses RLS).
async fn stored_rows(admin: &Client, tenant: &str) -> BTreeMap<String, Vec<u8>> {
    admin
        .query(
            "SELECT key, value FROM kv_store WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn postmaster_start(admin: &Client) -> String {
    admin
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_restart_under_load_loses_no_acknowledged_write() {
    tokio::time::timeout(TEST_LIMIT, restart_under_load())
        .await
        .expect("the restart test hung past its limit");
}

async fn restart_under_load() {
    let server = Arc::new(
        tokio::task::spawn_blocking(ThrowawayServer::start)
            .await
            .unwrap(),
    );
    let config = fault_config(&server);
    let bound = operation_bound(&config);
    let backend = PostgresBackend::connect(config).await.unwrap();
    let tenant = common::random_tenant();
    let scoped = backend.tenant(&tenant);
    let before = postmaster_start(&common::client(&server.url()).await).await;

    let restarted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(hammer(
                Arc::clone(&scoped),
                task,
                bound,
                server.password().to_owned(),
                Arc::clone(&restarted),
                Arc::clone(&stop),
            ))
        })
        .collect();

    tokio::time::sleep(BEFORE_RESTART).await;
    let started = Instant::now();
    tokio::task::spawn_blocking({
        let server = Arc::clone(&server);
        move || server.restart_immediate()
    })
    .await
    .unwrap();
    let restart_took = started.elapsed();
    restarted.store(true, Ordering::Release);
    tokio::time::sleep(AFTER_RESTART).await;
    stop.store(true, Ordering::Release);

    let mut total = Tally::default();
    let mut tasks_recovered = 0;
    for task in tasks {
        // A panic inside a task fails the test here.
        let tally = task.await.expect("a task panicked");
        total.attempted += tally.attempted;
        total.succeeded += tally.succeeded;
        total.unavailable += tally.unavailable;
        total.timeouts += tally.timeouts;
        total.hung += tally.hung;
        total.unexpected.extend(tally.unexpected);
        total.wrong_reads.extend(tally.wrong_reads);
        total.succeeded_after_restart += tally.succeeded_after_restart;
        if tally.succeeded_after_restart > 0 {
            tasks_recovered += 1;
        }
        total.acknowledged.extend(tally.acknowledged);
    }

    // Check from outside the backend what the server holds now.
    let admin = common::client(&server.url()).await;
    assert_ne!(
        postmaster_start(&admin).await,
        before,
        "the server did not restart"
    );
    let stored = stored_rows(&admin, tenant.as_str()).await;
    let lost: Vec<&String> = total
        .acknowledged
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();

    println!(
        "postgres immediate restart ({TASKS} tasks, restart took {restart_took:?}): \
         operations attempted {}, succeeded {}, failed with retryable errors {} \
         (unavailable {}, timeout {}), hung {}, unexpected errors {}, \
         succeeded after the restart {} (in {tasks_recovered}/{TASKS} tasks), \
         acknowledged writes {}, lost {}, wrong reads {}",
        total.attempted,
        total.succeeded,
        total.unavailable + total.timeouts,
        total.unavailable,
        total.timeouts,
        total.hung,
        total.unexpected.len(),
        total.succeeded_after_restart,
        total.acknowledged.len(),
        lost.len(),
        total.wrong_reads.len(),
    );
    assert!(
        total.unexpected.is_empty(),
        "errors other than retryable Unavailable/Timeout: {:?}",
        &total.unexpected[..total.unexpected.len().min(5)]
    );
    assert_eq!(total.hung, 0, "operations outlived {bound:?}");
    assert!(
        total.unavailable + total.timeouts > 0,
        "the restart should have failed some operations"
    );
    assert_eq!(
        tasks_recovered, TASKS,
        "every task must succeed again after the restart"
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(total.wrong_reads.is_empty(), "{:?}", total.wrong_reads);
    assert!(
        total.acknowledged.len() > TASKS,
        "too few writes to mean anything"
    );
    // Unacknowledged writes may or may not have landed, but never with another value.
    for (k, v) in &stored {
        let step_value = k.split('/').nth(1).and_then(|s| s.parse::<u64>().ok());
        let task = k[1..3].parse::<u64>().ok();
        let expected = format!("task {} step {}", task.unwrap(), step_value.unwrap());
        assert_eq!(v, expected.as_bytes(), "{k}");
    }
}

/// Opens a superuser transaction on `admin` that holds the row locks of `keys` until it ends.
async fn lock_rows(admin: &Client, tenant: &str, keys: &[&str]) {
    admin.batch_execute("BEGIN").await.unwrap();
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    let locked = admin
        .query(
            "SELECT 1 FROM kv_store WHERE tenant_id = $1 AND key = ANY($2) FOR UPDATE",
            &[&tenant, &keys],
        )
        .await
        .unwrap();
    assert_eq!(locked.len(), keys.len());
}

/// Process ids of the backend's connections that wait for a lock.
async fn waiting_on_locks(admin: &Client) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name = 'cairn' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_times_out_instead_of_hanging() {
    let server = tokio::task::spawn_blocking(ThrowawayServer::start)
        .await
        .unwrap();
    let mut config = PostgresConfig::new(server.url());
    config.pool_size = 2;
    config.acquire_timeout_ms = 500;
    let acquire = Duration::from_millis(config.acquire_timeout_ms);
    let backend = PostgresBackend::connect(config).await.unwrap();
    let scoped = backend.tenant(&common::random_tenant());
    for k in ["slow/1", "slow/2"] {
        scoped.set(&key(k), Bytes::from_static(b"v")).await.unwrap();
    }

    // Two slow callers: each holds one of the two connections, waiting on a row lock.
    let admin = common::client(&server.url()).await;
    lock_rows(&admin, scoped.tenant_id().as_str(), &["slow/1", "slow/2"]).await;
    let slow: Vec<_> = ["slow/1", "slow/2"]
        .into_iter()
        .map(|k| {
            let scoped = Arc::clone(&scoped);
            tokio::spawn(async move { scoped.set(&key(k), Bytes::from_static(b"w")).await })
        })
        .collect();
    let watcher = &common::client(&server.url()).await;
    wait_until(
        "both slow callers to wait on the lock",
        Duration::from_secs(10),
        move || async move { waiting_on_locks(watcher).await.len() == 2 },
    )
    .await;

    let started = Instant::now();
    let third = tokio::time::timeout(acquire * 4, scoped.get(&key("other"))).await;
    let waited = started.elapsed();
    println!(
        "postgres exhausted pool: a third caller failed after {waited:?} (acquire_timeout {acquire:?})"
    );
    let err = third
        .expect("the third caller hung instead of timing out")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    assert!(waited >= acquire.mul_f64(0.9), "gave up early: {waited:?}");
    assert!(
        waited < acquire + Duration::from_secs(1),
        "too slow: {waited:?}"
    );

    // Releasing the lock lets the slow callers finish, and the pool serves again.
    admin.batch_execute("ROLLBACK").await.unwrap();
    for task in slow {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        scoped.get(&key("slow/1")).await.unwrap().as_deref(),
        Some(&b"w"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_inside_a_transaction_rolls_back_and_the_pool_recovers() {
    let server = tokio::task::spawn_blocking(ThrowawayServer::start)
        .await
        .unwrap();
    let mut config = PostgresConfig::new(server.url());
    // One connection: the next operation must get a new one by itself.
    config.pool_size = 1;
    let backend = PostgresBackend::connect(config).await.unwrap();
    let scoped = backend.tenant(&common::random_tenant());
    let tenant = scoped.tenant_id().as_str().to_owned();
    scoped
        .set(&key("k"), Bytes::from_static(b"v1"))
        .await
        .unwrap();

    // The batch's check blocks on a row lock, inside its open transaction.
    let admin = common::client(&server.url()).await;
    lock_rows(&admin, &tenant, &["k"]).await;
    let batch = WriteBatch::new()
        .check(key("k"), Some(Bytes::from_static(b"v1")))
        .put(key("k"), Bytes::from_static(b"v2"))
        .put(key("new"), Bytes::from_static(b"x"))
        .delete(key("k2"));
    let pending = tokio::spawn({
        let scoped = Arc::clone(&scoped);
        async move { scoped.write_batch(batch).await }
    });
    let killer = &common::client(&server.url()).await;
    wait_until(
        "the batch to wait on the lock",
        Duration::from_secs(10),
        move || async move { waiting_on_locks(killer).await.len() == 1 },
    )
    .await;
    // It keeps waiting until the lock goes, so this is still its connection.
    let pids = waiting_on_locks(killer).await;
    let terminated: bool = killer
        .query_one("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);

    let err = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the batch hung after its connection was killed")
        .unwrap()
        .unwrap_err();
    println!("postgres killed connection: write_batch failed with {err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains(server.password()));

    // Nothing of the batch is visible, even after the lock is gone.
    admin.batch_execute("ROLLBACK").await.unwrap();
    let stored = stored_rows(&admin, &tenant).await;
    assert_eq!(
        stored,
        BTreeMap::from([("k".to_owned(), b"v1".to_vec())]),
        "the killed batch left writes behind"
    );
    // The next operations succeed on a fresh connection.
    assert_eq!(
        scoped.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    scoped
        .set(&key("k"), Bytes::from_static(b"v3"))
        .await
        .unwrap();
    assert_eq!(
        stored_rows(&admin, &tenant).await,
        BTreeMap::from([("k".to_owned(), b"v3".to_vec())])
    );
}
