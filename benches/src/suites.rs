//! One suite per backend: open the Cairn backend and its raw engines, preload them with the
//! same workload, then measure each operation on Cairn and right after on each baseline, and
//! pair the results.

use std::path::Path;

use cairn_core::{StorageBackend, TenantId};
use cairn_memory::MemoryBackend;
use cairn_postgres::{PostgresBackend, PostgresConfig};
use cairn_sled::{SledBackend, SledConfig, SledMode};

use crate::BenchResult;
use crate::baselines::memory::{RawBTreeMap, RawHashMap};
use crate::baselines::postgres::RawPostgres;
use crate::baselines::sled::RawSled;
use crate::harness::{Cairn, Op, Plan, measure, preload};
use crate::report::Row;
use crate::workload::Workload;

/// The tenant the PostgreSQL suite writes as; cleared before and after the run.
const BENCH_TENANT: &str = "cairn-bench";

/// `cairn-memory` against a foldhash `HashMap` and a `BTreeMap`.
pub(crate) async fn memory(workload: &Workload, plan: &Plan) -> BenchResult<Vec<Row>> {
    let backend = MemoryBackend::new();
    let mut cairn = Cairn(&backend);
    let mut hash = RawHashMap::default();
    let mut btree = RawBTreeMap::default();
    preload(&mut cairn, workload).await?;
    preload(&mut hash, workload).await?;
    preload(&mut btree, workload).await?;

    let shape = workload.shape();
    let (mut by_hash, mut by_btree) = (Vec::new(), Vec::new());
    for op in Op::ALL {
        let ours = measure(&mut cairn, workload, plan, op).await?;
        let hash = measure(&mut hash, workload, plan, op).await?;
        let btree = measure(&mut btree, workload, plan, op).await?;
        by_hash.push(Row::new("memory", "HashMap", shape, op, ours, hash));
        by_btree.push(Row::new("memory", "BTreeMap", shape, op, ours, btree));
    }
    by_hash.extend(by_btree);
    Ok(by_hash)
}

/// `cairn-sled` against a raw `sled::Db` with the same cache and flush cadence: every
/// operation in `balanced` mode, the writes again in `safe` mode (an fsync per write call).
pub(crate) async fn sled(
    workload: &Workload,
    plan: &Plan,
    dir: &Path,
    cache_capacity_mb: u64,
) -> BenchResult<Vec<Row>> {
    let modes: [(SledMode, &'static str, &'static str, &[Op]); 2] = [
        (SledMode::Balanced, "sled", "sled::Db", &Op::ALL),
        (SledMode::Safe, "sled-safe", "sled::Db+flush", &Op::WRITES),
    ];
    let mut rows = Vec::new();
    for (mode, label, baseline, ops) in modes {
        let mut config = SledConfig::new(dir.join(format!("{label}-cairn")));
        config.cache_capacity_mb = cache_capacity_mb;
        config.mode = mode;
        let backend = SledBackend::open(config.clone()).await?;
        let mut cairn = Cairn(&backend);
        let mut raw = RawSled::open(&dir.join(format!("{label}-raw")), &config)?;
        preload(&mut cairn, workload).await?;
        backend.flush().await?;
        preload(&mut raw, workload).await?;
        raw.flush()?;

        for &op in ops {
            let ours = measure(&mut cairn, workload, plan, op).await?;
            let theirs = measure(&mut raw, workload, plan, op).await?;
            rows.push(Row::new(
                label,
                baseline,
                workload.shape(),
                op,
                ours,
                theirs,
            ));
        }
    }
    Ok(rows)
}

/// `cairn-postgres` (one transaction per call with the tenant set locally, row-level
/// security) against plain prepared statements on one tokio-postgres connection.
pub(crate) async fn postgres(url: &str, workload: &Workload, plan: &Plan) -> BenchResult<Vec<Row>> {
    let backend = PostgresBackend::connect(PostgresConfig::new(url)).await?;
    let tenant = backend.tenant(&TenantId::new(BENCH_TENANT)?);
    tenant.clear().await?;
    let mut cairn = Cairn(tenant.as_ref());
    let mut raw = RawPostgres::connect(url).await?;
    preload(&mut cairn, workload).await?;
    preload(&mut raw, workload).await?;

    let mut rows = Vec::new();
    for op in Op::ALL {
        let ours = measure(&mut cairn, workload, plan, op).await?;
        let theirs = measure(&mut raw, workload, plan, op).await?;
        rows.push(Row::new(
            "postgres",
            "tokio-postgres",
            workload.shape(),
            op,
            ours,
            theirs,
        ));
    }
    tenant.clear().await?;
    raw.drop_table().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::workload::Shape;

    fn small() -> (Workload, Plan) {
        let workload = Workload::generate(Shape {
            keys: 400,
            key_bytes: 16,
            value_bytes: 8,
            batch: 10,
            scan: 100,
        })
        .unwrap();
        let plan = Plan {
            single_calls: 50,
            batch_calls: 5,
            scan_calls: 5,
            budget: Duration::from_secs(5),
            timer_overhead: Duration::ZERO,
        };
        (workload, plan)
    }

    #[tokio::test]
    async fn memory_suite_pairs_every_operation_with_both_maps() {
        let (workload, plan) = small();
        let rows = memory(&workload, &plan).await.unwrap();
        assert_eq!(rows.len(), 2 * Op::ALL.len());
        assert!(
            rows.iter()
                .all(|r| r.cairn.samples > 0 && r.raw.samples > 0)
        );
    }

    #[tokio::test]
    async fn sled_suite_covers_balanced_and_safe_writes() {
        let (workload, plan) = small();
        let dir = tempfile::tempdir().unwrap();
        let rows = sled(&workload, &plan, dir.path(), 16).await.unwrap();
        assert_eq!(rows.len(), Op::ALL.len() + Op::WRITES.len());
        assert!(
            rows.iter()
                .any(|r| r.backend == "sled-safe" && r.op == Op::Set)
        );
    }

    /// Needs a server, like every PostgreSQL test of the workspace: `cargo xtask test` sets
    /// `DATABASE_URL`; without it the test fails rather than skips.
    #[tokio::test]
    async fn postgres_suite_pairs_every_operation_with_raw_statements() {
        let url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run `cargo xtask test` (it starts PostgreSQL and sets it)",
        );
        let (workload, plan) = small();
        let rows = postgres(&url, &workload, &plan).await.unwrap();
        assert_eq!(rows.len(), Op::ALL.len());
        assert!(
            rows.iter()
                .all(|r| r.cairn.samples > 0 && r.raw.samples > 0)
        );
    }
}
