//! Crash durability on PostgreSQL (needs `DATABASE_URL`): a child process writes through the
//! backend and is killed with `SIGKILL` at random moments (see `cairn_testkit::crash`); no
//! acknowledged write, batch or event record with its index entries is lost or torn. Each
//! kill point writes into a fresh tenant.

mod common;

use std::process::Command;
use std::sync::Arc;

use cairn_core::{StorageBackend, TenantId};
use cairn_testkit::crash::{self, CrashTarget, Promise, Workload};

const TENANT_VAR: &str = "CAIRN_CRASH_PG_TENANT";
const KILL_POINTS: usize = 5;

/// A fresh tenant on the test database per kill point.
struct Postgres {
    tenant: Option<TenantId>,
}

/// The `application_name` of the child writing into `tenant`'s connections.
fn child_application(tenant: &TenantId) -> String {
    format!("crash_{}", tenant.as_str().replace('-', "_"))
}

impl CrashTarget for Postgres {
    fn child(&mut self, _workload: Workload) -> Command {
        let tenant = common::random_tenant();
        let url = common::database_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{url}{separator}application_name={}",
            child_application(&tenant)
        );
        let mut command = crash::reexec("crash_child");
        command
            .env(TENANT_VAR, tenant.as_str())
            .env("DATABASE_URL", url);
        self.tenant = Some(tenant);
        command
    }

    /// Waits until the server has ended the killed child's sessions first: a COMMIT the
    /// child sent just before the kill still completes, and the recovery checks must see the
    /// data after it, not between two of their reads.
    async fn reopen(&mut self) -> Arc<dyn StorageBackend> {
        let tenant = self.tenant.as_ref().expect("a child ran first");
        let admin = common::client(&common::database_url()).await;
        let application = child_application(tenant);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let sessions: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&application],
                )
                .await
                .unwrap()
                .get(0);
            if sessions == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the killed child's sessions did not end"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        common::backend().await.tenant(tenant)
    }
}

/// The crash child: runs only when re-executed by a test below (it returns at once
/// otherwise); writes until the parent kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(workload) = Workload::from_env() else {
        return;
    };
    let tenant = std::env::var(TENANT_VAR).expect("the parent names the tenant");
    let tenant = TenantId::new(tenant).expect("a valid tenant id");
    let backend = common::backend().await.tenant(&tenant);
    crash::write_until_killed(backend, workload).await;
}

async fn run(workload: Workload) {
    crash::run_kill_points(
        "postgres",
        &mut Postgres { tenant: None },
        workload,
        Promise::NoLoss,
        KILL_POINTS,
        50..=400,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_set_is_lost() {
    run(Workload::Set).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_survive_whole() {
    run(Workload::Batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_their_index_entries_survive_together() {
    run(Workload::Events).await;
}
