//! Cross-cutting behaviour written once as wrappers over [`StorageBackend`]: [`RetryLayer`]
//! and [`TimeoutLayer`].
//!
//! Both are opt-in and wrap any `Arc<dyn StorageBackend>`; both forward every trait method
//! (checked by `clippy::missing_trait_methods`), and [`StorageBackend::tenant`] returns a handle
//! wrapped in the same layer. The usual stack is retry outside, timeout inside, so that every
//! attempt gets its own deadline and a timed-out attempt is retried:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cairn_core::layer::{RetryLayer, RetryPolicy, TimeoutLayer};
//! use cairn_core::StorageBackend;
//!
//! fn harden(backend: Arc<dyn StorageBackend>) -> Arc<dyn StorageBackend> {
//!     let timed = TimeoutLayer::wrap(backend, Duration::from_secs(5));
//!     RetryLayer::wrap(timed, RetryPolicy::default())
//! }
//! ```
//!
//! # Retrying writes that are not idempotent
//!
//! A retryable error (`Unavailable`, `Timeout`) can be *ambiguous*: the connection broke or the
//! deadline passed after the engine had already applied the write. Plain puts and deletes are
//! idempotent, so retrying them is harmless. A conditional write is not: retrying
//! [`StorageBackend::compare_and_swap`] or a [`WriteBatch`] with checks after an ambiguous
//! failure evaluates its precondition against the state the first attempt produced and can
//! return `Conflict` although the first attempt applied. The layer keeps this simple and does
//! not try to guess: callers that must tell the two apart read the key again after a
//! `Conflict`. `delete` and `delete_batch` may likewise report `false`/fewer keys on a retry.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::StorageBackend;
use crate::batch::WriteBatch;
use crate::characteristics::{StorageBackendType, StorageCharacteristics};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Key, TenantId};
use crate::scan::ScanPage;

/// How [`RetryLayer`] retries: bounded attempts with capped exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included; `1` disables retries. At least 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; each further wait doubles it.
    pub base_delay: Duration,
    /// Upper bound of a single wait.
    pub max_delay: Duration,
    /// When set, each wait is drawn uniformly from `[delay / 2, delay]`, so clients that failed
    /// together do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 4 attempts, waits of 50, 100 and 200 ms (capped at 2 s), with jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), before jitter:
    /// `min(base_delay * 2^(attempt - 1), max_delay)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    fn wait(&self, attempt: u32) -> Duration {
        let delay = self.backoff(attempt);
        if !self.jitter || delay.is_zero() {
            return delay;
        }
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(attempt);
        let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(0.5 + fraction / 2.0)
    }
}

/// Retries operations that fail with a retryable error ([`Error::is_retryable`]), with bounded
/// exponential backoff; any other error is returned at once.
///
/// When every attempt fails, the last error is returned with an `attempts` context entry.
/// See the [module docs](self) for what a retry means for conditional writes.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    inner: Arc<dyn StorageBackend>,
    policy: RetryPolicy,
}

impl RetryLayer {
    /// Wraps `inner`. A `max_attempts` of 0 is treated as 1.
    pub fn new(inner: Arc<dyn StorageBackend>, mut policy: RetryPolicy) -> RetryLayer {
        policy.max_attempts = policy.max_attempts.max(1);
        RetryLayer { inner, policy }
    }

    /// Wraps `inner` and returns the layer as a trait object.
    pub fn wrap(inner: Arc<dyn StorageBackend>, policy: RetryPolicy) -> Arc<dyn StorageBackend> {
        Arc::new(RetryLayer::new(inner, policy))
    }

    /// The policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
    {
        let mut tried = 1;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && tried < self.policy.max_attempts => {
                    tokio::time::sleep(self.policy.wait(tried)).await;
                    tried += 1;
                }
                Err(err) if tried > 1 => return Err(err.with_context("attempts", tried)),
                Err(err) => return Err(err),
            }
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl StorageBackend for RetryLayer {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.run(|| self.inner.get(key)).await
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        self.run(|| self.inner.set(key, value.clone())).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.run(|| self.inner.delete(key)).await
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        self.run(|| self.inner.exists(key)).await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        self.run(|| self.inner.list_keys(prefix)).await
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.run(|| self.inner.get_batch(keys)).await
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        self.run(|| self.inner.set_batch(entries.clone())).await
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        self.run(|| self.inner.delete_batch(keys)).await
    }

    async fn clear(&self) -> Result<()> {
        self.run(|| self.inner.clear()).await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        self.run(|| self.inner.write_batch(batch.clone())).await
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()> {
        self.run(|| {
            self.inner
                .compare_and_swap(key, expected.clone(), new.clone())
        })
        .await
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        self.run(|| self.inner.scan(prefix, after, limit)).await
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(RetryLayer {
            inner: self.inner.tenant(tenant),
            policy: self.policy.clone(),
        })
    }

    fn tenant_id(&self) -> &TenantId {
        self.inner.tenant_id()
    }

    fn backend_type(&self) -> StorageBackendType {
        self.inner.backend_type()
    }

    fn characteristics(&self) -> StorageCharacteristics {
        self.inner.characteristics()
    }
}

/// Fails an operation that does not finish within a deadline with a retryable
/// [`ErrorKind::Timeout`].
///
/// The late operation's future is dropped. Whether its write reached the engine is unknown
/// (a blocking engine call already handed to a worker thread may still complete), so a timeout
/// is an ambiguous failure; see the [module docs](self).
#[derive(Clone)]
pub struct TimeoutLayer {
    inner: Arc<dyn StorageBackend>,
    deadline: Duration,
}

impl fmt::Debug for TimeoutLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("deadline", &self.deadline)
            .field("inner", &self.inner)
            .finish()
    }
}

impl TimeoutLayer {
    /// Wraps `inner`, giving every operation `deadline` to finish.
    pub fn new(inner: Arc<dyn StorageBackend>, deadline: Duration) -> TimeoutLayer {
        TimeoutLayer { inner, deadline }
    }

    /// Wraps `inner` and returns the layer as a trait object.
    pub fn wrap(inner: Arc<dyn StorageBackend>, deadline: Duration) -> Arc<dyn StorageBackend> {
        Arc::new(TimeoutLayer::new(inner, deadline))
    }

    /// The deadline of each operation.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        tokio::time::timeout(self.deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(
                    Error::new(ErrorKind::Timeout, "operation exceeded its deadline")
                        .with_context("operation", operation)
                        .with_context("deadline_ms", self.deadline.as_millis()),
                )
            })
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl StorageBackend for TimeoutLayer {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.run("get", self.inner.get(key)).await
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        self.run("set", self.inner.set(key, value)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.run("delete", self.inner.delete(key)).await
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        self.run("exists", self.inner.exists(key)).await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        self.run("list_keys", self.inner.list_keys(prefix)).await
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.run("get_batch", self.inner.get_batch(keys)).await
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        self.run("set_batch", self.inner.set_batch(entries)).await
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        self.run("delete_batch", self.inner.delete_batch(keys))
            .await
    }

    async fn clear(&self) -> Result<()> {
        self.run("clear", self.inner.clear()).await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        self.run("write_batch", self.inner.write_batch(batch)).await
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()> {
        self.run(
            "compare_and_swap",
            self.inner.compare_and_swap(key, expected, new),
        )
        .await
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        self.run("scan", self.inner.scan(prefix, after, limit))
            .await
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(TimeoutLayer {
            inner: self.inner.tenant(tenant),
            deadline: self.deadline,
        })
    }

    fn tenant_id(&self) -> &TenantId {
        self.inner.tenant_id()
    }

    fn backend_type(&self) -> StorageBackendType {
        self.inner.backend_type()
    }

    fn characteristics(&self) -> StorageCharacteristics {
        self.inner.characteristics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(75),
            jitter: false,
        };
        let waits: Vec<u128> = (1..=6).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 75, 75, 75]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(75));
        assert_eq!(policy.wait(2), Duration::from_millis(20));
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let policy = RetryPolicy {
            jitter: true,
            ..RetryPolicy::default()
        };
        for attempt in 1..=8 {
            for _ in 0..50 {
                let full = policy.backoff(attempt);
                let wait = policy.wait(attempt);
                assert!(wait <= full && wait >= full / 2, "{wait:?} vs {full:?}");
            }
        }
    }
}
