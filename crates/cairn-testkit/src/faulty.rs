//! [`FaultyBackend`]: a wrapper that injects failures and delays into a real backend, per
//! operation, and counts calls.
//!
//! Faults are planned per [`Op`] and shared by every handle derived with
//! [`StorageBackend::tenant`], so a layer that re-scopes its inner handle still meets them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{
    Bytes, Error, ErrorKind, Key, Result, ScanPage, StorageBackend, StorageBackendType,
    StorageCharacteristics, TenantId, WriteBatch,
};

/// The trait method a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`StorageBackend::get`]
    Get,
    /// [`StorageBackend::set`]
    Set,
    /// [`StorageBackend::delete`]
    Delete,
    /// [`StorageBackend::exists`]
    Exists,
    /// [`StorageBackend::list_keys`]
    ListKeys,
    /// [`StorageBackend::get_batch`]
    GetBatch,
    /// [`StorageBackend::set_batch`]
    SetBatch,
    /// [`StorageBackend::delete_batch`]
    DeleteBatch,
    /// [`StorageBackend::clear`]
    Clear,
    /// [`StorageBackend::write_batch`]
    WriteBatch,
    /// [`StorageBackend::compare_and_swap`]
    CompareAndSwap,
    /// [`StorageBackend::scan`]
    Scan,
}

#[derive(Debug, Default)]
struct Plan {
    /// Calls still to fail with a retryable error before reaching the engine.
    retryable: u32,
    /// Calls still to reach the engine and then report a retryable error (an ambiguous
    /// failure: the operation applied).
    retryable_after_apply: u32,
    /// Every call fails with a non-retryable error.
    fatal: bool,
    /// Every call waits this long before reaching the engine.
    delay: Option<Duration>,
    /// Calls seen.
    calls: usize,
}

enum Step {
    Fail(Error),
    Run {
        delay: Option<Duration>,
        fail_after: bool,
    },
}

/// A backend wrapper that injects faults; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct FaultyBackend {
    inner: Arc<dyn StorageBackend>,
    plans: Arc<Mutex<HashMap<Op, Plan>>>,
}

impl FaultyBackend {
    /// Wraps `inner` with no faults planned.
    pub fn new(inner: Arc<dyn StorageBackend>) -> FaultyBackend {
        FaultyBackend {
            inner,
            plans: Arc::default(),
        }
    }

    fn plans(&self) -> MutexGuard<'_, HashMap<Op, Plan>> {
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` calls of `op` fail with a retryable `Unavailable` error without reaching
    /// the engine.
    pub fn fail_retryable(&self, op: Op, n: u32) {
        self.plans().entry(op).or_default().retryable = n;
    }

    /// The next `n` calls of `op` reach the engine and then fail with a retryable
    /// `Unavailable` error, like a connection lost after the server applied the write.
    pub fn fail_after_apply(&self, op: Op, n: u32) {
        self.plans().entry(op).or_default().retryable_after_apply = n;
    }

    /// Every call of `op` fails with a non-retryable `Backend` error.
    pub fn fail_fatally(&self, op: Op) {
        self.plans().entry(op).or_default().fatal = true;
    }

    /// Every call of `op` waits `delay` before reaching the engine.
    pub fn delay(&self, op: Op, delay: Duration) {
        self.plans().entry(op).or_default().delay = Some(delay);
    }

    /// How many times `op` was called, failed calls included.
    pub fn calls(&self, op: Op) -> usize {
        self.plans().get(&op).map_or(0, |p| p.calls)
    }

    fn step(&self, op: Op) -> Step {
        let mut plans = self.plans();
        let plan = plans.entry(op).or_default();
        plan.calls += 1;
        if plan.fatal {
            return Step::Fail(
                Error::new(ErrorKind::Backend, "injected fatal fault")
                    .with_context("op", op_name(op)),
            );
        }
        if plan.retryable > 0 {
            plan.retryable -= 1;
            return Step::Fail(injected_unavailable(op));
        }
        let fail_after = plan.retryable_after_apply > 0;
        if fail_after {
            plan.retryable_after_apply -= 1;
        }
        Step::Run {
            delay: plan.delay,
            fail_after,
        }
    }

    async fn run<T>(
        &self,
        op: Op,
        call: impl std::future::Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        match self.step(op) {
            Step::Fail(err) => Err(err),
            Step::Run { delay, fail_after } => {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let result = call.await;
                if fail_after {
                    result?;
                    return Err(injected_unavailable(op));
                }
                result
            }
        }
    }
}

fn injected_unavailable(op: Op) -> Error {
    Error::new(ErrorKind::Unavailable, "injected retryable fault").with_context("op", op_name(op))
}

fn op_name(op: Op) -> String {
    format!("{op:?}")
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl StorageBackend for FaultyBackend {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.run(Op::Get, self.inner.get(key)).await
    }

    async fn set(&self, key: &Key, value: Bytes) -> Result<()> {
        self.run(Op::Set, self.inner.set(key, value)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.run(Op::Delete, self.inner.delete(key)).await
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        self.run(Op::Exists, self.inner.exists(key)).await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        self.run(Op::ListKeys, self.inner.list_keys(prefix)).await
    }

    async fn get_batch(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.run(Op::GetBatch, self.inner.get_batch(keys)).await
    }

    async fn set_batch(&self, entries: Vec<(Key, Bytes)>) -> Result<()> {
        self.run(Op::SetBatch, self.inner.set_batch(entries)).await
    }

    async fn delete_batch(&self, keys: &[Key]) -> Result<u64> {
        self.run(Op::DeleteBatch, self.inner.delete_batch(keys))
            .await
    }

    async fn clear(&self) -> Result<()> {
        self.run(Op::Clear, self.inner.clear()).await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        self.run(Op::WriteBatch, self.inner.write_batch(batch))
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<()> {
        self.run(
            Op::CompareAndSwap,
            self.inner.compare_and_swap(key, expected, new),
        )
        .await
    }

    async fn scan(&self, prefix: &str, after: Option<&Key>, limit: usize) -> Result<ScanPage> {
        self.run(Op::Scan, self.inner.scan(prefix, after, limit))
            .await
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<dyn StorageBackend> {
        Arc::new(FaultyBackend {
            inner: self.inner.tenant(tenant),
            plans: self.plans.clone(),
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
