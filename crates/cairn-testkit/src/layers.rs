//! Cases for [`RetryLayer`] and [`TimeoutLayer`], run over a real backend with
//! [`FaultyBackend`] between the layer and the engine.
//!
//! Each case takes a fresh, empty backend handle. [`layer_suite!`](crate::layer_suite) wires
//! them all; a backend's tests also run [`kv_suite!`](crate::kv_suite) through the layers to
//! show that they forward every method faithfully.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::layer::{RetryLayer, RetryPolicy, TimeoutLayer};
use cairn_core::{Bytes, ErrorKind, StorageBackend, StorageBackendExt, TenantId, WriteBatch};

use crate::faulty::{FaultyBackend, Op};
use crate::kv::key;

/// A fast policy for tests: `max_attempts` attempts, waits of 1, 2, 4... ms up to 8 ms.
pub fn quick_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(8),
        jitter: false,
    }
}

fn faulty(b: &Arc<dyn StorageBackend>) -> (Arc<FaultyBackend>, Arc<dyn StorageBackend>) {
    let faulty = Arc::new(FaultyBackend::new(b.clone()));
    (faulty.clone(), faulty)
}

fn attempts_context(err: &cairn_core::Error) -> Option<&str> {
    err.context()
        .iter()
        .find(|(k, _)| *k == "attempts")
        .map(|(_, v)| v.as_str())
}

/// `RetryLayer`: k < max retryable failures are outlasted, on reads, writes, batches, CAS and
/// scans; the engine sees exactly k + 1 calls and the write applies once.
pub async fn retry_recovers_from_fewer_than_max_failures(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let retry = RetryLayer::wrap(inner, quick_policy(4));
    for (op, k) in [
        (Op::Set, 3),
        (Op::Get, 1),
        (Op::WriteBatch, 2),
        (Op::CompareAndSwap, 3),
        (Op::Scan, 2),
    ] {
        faults.fail_retryable(op, k);
    }
    retry
        .set(&key("a"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert_eq!(faults.calls(Op::Set), 4);
    assert_eq!(
        retry.get(&key("a")).await.unwrap(),
        Some(Bytes::from_static(b"1"))
    );
    assert_eq!(faults.calls(Op::Get), 2);
    retry
        .write_batch(WriteBatch::new().put(key("b"), &b"2"[..]))
        .await
        .unwrap();
    assert_eq!(faults.calls(Op::WriteBatch), 3);
    retry
        .compare_and_swap(&key("a"), Some(Bytes::from_static(b"1")), None)
        .await
        .unwrap();
    assert_eq!(faults.calls(Op::CompareAndSwap), 4);
    let page = retry.scan("", None, 10).await.unwrap();
    assert_eq!(faults.calls(Op::Scan), 3);
    let keys: Vec<&str> = page.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b"], "every write applied exactly once");
}

/// `RetryLayer`: after `max_attempts` retryable failures it gives up with the last error,
/// marked with the number of attempts, having waited the backoff in between.
pub async fn retry_gives_up_after_max_attempts_with_last_error(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let retry = RetryLayer::wrap(inner, quick_policy(3));
    faults.fail_retryable(Op::Get, 9);
    let started = Instant::now();
    let err = retry.get(&key("a")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_eq!(attempts_context(&err), Some("3"), "{err}");
    assert_eq!(faults.calls(Op::Get), 3);
    assert!(
        elapsed >= Duration::from_millis(3),
        "waited 1 + 2 ms between attempts, took {elapsed:?}"
    );
    // The 6 planned failures left are consumed by the next two calls, 3 each.
    assert!(retry.get(&key("a")).await.is_err());
    assert!(retry.get(&key("a")).await.is_err());
    assert_eq!(retry.get(&key("a")).await.unwrap(), None);
    assert_eq!(faults.calls(Op::Get), 10);
}

/// `RetryLayer`: a non-retryable error (injected `Backend`, a real `Conflict`, a real
/// `InvalidInput`) is returned after exactly one call.
pub async fn retry_never_retries_non_retryable_errors(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let retry = RetryLayer::wrap(inner, quick_policy(5));
    faults.fail_fatally(Op::Set);
    let err = retry.set(&key("a"), Bytes::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert_eq!(faults.calls(Op::Set), 1);
    assert_eq!(attempts_context(&err), None);

    retry
        .create(&key("c"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let err = retry.create(&key("c"), Bytes::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(faults.calls(Op::CompareAndSwap), 2);

    let huge = Bytes::from(vec![0u8; cairn_core::MAX_VALUE_BYTES + 1]);
    let err = retry
        .write_batch(WriteBatch::new().put(key("h"), huge))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(faults.calls(Op::WriteBatch), 1);
}

/// `RetryLayer` docs: a conditional write retried after an ambiguous failure (applied, then
/// reported `Unavailable`) returns `Conflict` although the first attempt applied.
pub async fn retry_after_ambiguous_failure_can_report_conflict(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let retry = RetryLayer::wrap(inner, quick_policy(3));
    faults.fail_after_apply(Op::CompareAndSwap, 1);
    let err = retry
        .create(&key("once"), Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(faults.calls(Op::CompareAndSwap), 2);
    assert_eq!(
        b.get(&key("once")).await.unwrap(),
        Some(Bytes::from_static(b"v")),
        "the first attempt applied"
    );
    // A plain put is idempotent: the retry after the same failure succeeds.
    faults.fail_after_apply(Op::Set, 1);
    retry
        .set(&key("p"), Bytes::from_static(b"w"))
        .await
        .unwrap();
    assert_eq!(faults.calls(Op::Set), 2);
    assert_eq!(
        b.get(&key("p")).await.unwrap(),
        Some(Bytes::from_static(b"w"))
    );
}

/// `TimeoutLayer`: an operation slower than the deadline is a retryable `Timeout` returned
/// near the deadline; a fast operation through the same layer succeeds.
pub async fn timeout_fires_on_slow_operation_only(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let timed = TimeoutLayer::wrap(inner, Duration::from_millis(100));
    faults.delay(Op::Get, Duration::from_secs(30));
    let started = Instant::now();
    let err = timed.get(&key("a")).await.unwrap_err();
    let elapsed = started.elapsed();
    println!("timeout layer: 100 ms deadline fired after {elapsed:?}");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    timed
        .set(&key("a"), Bytes::from_static(b"fast"))
        .await
        .unwrap();
    assert_eq!(
        b.get(&key("a")).await.unwrap(),
        Some(Bytes::from_static(b"fast"))
    );
}

/// `RetryLayer` over `TimeoutLayer`: each attempt gets its own deadline and a timed-out
/// attempt is retried, up to `max_attempts`.
pub async fn retry_over_timeout_retries_each_timed_out_attempt(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let stack = RetryLayer::wrap(
        TimeoutLayer::wrap(inner, Duration::from_millis(30)),
        quick_policy(3),
    );
    faults.delay(Op::Exists, Duration::from_secs(30));
    let err = stack.exists(&key("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(attempts_context(&err), Some("3"), "{err}");
    assert_eq!(faults.calls(Op::Exists), 3);
}

/// Both layers: `tenant()` returns a handle that is still wrapped (faults are retried, delays
/// time out) and scoped to the new tenant.
pub async fn layers_wrap_tenant_handles(b: Arc<dyn StorageBackend>) {
    let (faults, inner) = faulty(&b);
    let stack = RetryLayer::wrap(
        TimeoutLayer::wrap(inner, Duration::from_millis(100)),
        quick_policy(4),
    );
    let id = TenantId::new(format!("{}.layered", b.tenant_id())).unwrap();
    let scoped = stack.tenant(&id);
    assert_eq!(scoped.tenant_id(), &id);
    assert_eq!(scoped.backend_type(), b.backend_type());
    assert_eq!(scoped.characteristics(), b.characteristics());

    faults.fail_retryable(Op::Set, 2);
    scoped
        .set(&key("t"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(faults.calls(Op::Set), 3, "the tenant handle retries");
    assert_eq!(b.get(&key("t")).await.unwrap(), None);
    assert_eq!(
        b.tenant(&id).get(&key("t")).await.unwrap(),
        Some(Bytes::from_static(b"x"))
    );

    faults.delay(Op::ListKeys, Duration::from_secs(30));
    let started = Instant::now();
    let err = scoped.list_keys("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(faults.calls(Op::ListKeys), 4);
    assert!(started.elapsed() < Duration::from_secs(5));
}
