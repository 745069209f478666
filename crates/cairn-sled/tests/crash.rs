//! Crash durability: a child process writes into sled and is killed with `SIGKILL` at random
//! moments (see `cairn_testkit::crash`). `safe` mode loses no acknowledged write; `balanced`
//! loses at most the writes of its flush interval, reported per kill point; batches and event
//! records with their index entries survive whole or not at all.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::StorageBackend;
use cairn_sled::{SledBackend, SledConfig, SledMode};
use cairn_testkit::crash::{self, CrashTarget, Promise, Workload};

const DIR_VAR: &str = "CAIRN_CRASH_SLED_DIR";
const MODE_VAR: &str = "CAIRN_CRASH_SLED_MODE";
const KILL_POINTS: usize = 5;

/// Kills land 50-400 ms after the first acknowledgement when nothing may be lost.
const NO_LOSS_DELAY_MS: std::ops::RangeInclusive<u64> = 50..=400;

/// `balanced` may lose what its background flush (every 100 ms) has not written yet; the
/// margin covers one flush's own write and fsync on a busy machine with a slow disk.
const BALANCED_WINDOW: Duration = Duration::from_millis(100 + 900);

/// Kills land after the window, so losing more than the window's writes is detectable.
const BALANCED_DELAY_MS: std::ops::RangeInclusive<u64> = 1_200..=1_600;

fn config(path: PathBuf, mode: SledMode) -> SledConfig {
    let mut config = SledConfig::new(path);
    config.mode = mode;
    config.cache_capacity_mb = 16;
    config
}

fn mode_name(mode: SledMode) -> &'static str {
    match mode {
        SledMode::Fast => "fast",
        SledMode::Balanced => "balanced",
        SledMode::Safe => "safe",
    }
}

/// A fresh sled directory per kill point, in `mode`.
struct Sled {
    mode: SledMode,
    dir: Option<tempfile::TempDir>,
}

impl Sled {
    fn new(mode: SledMode) -> Sled {
        Sled { mode, dir: None }
    }
}

impl CrashTarget for Sled {
    fn child(&mut self, _workload: Workload) -> Command {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut command = crash::reexec("crash_child");
        command
            .env(DIR_VAR, dir.path())
            .env(MODE_VAR, mode_name(self.mode));
        self.dir = Some(dir);
        command
    }

    async fn reopen(&mut self) -> Arc<dyn StorageBackend> {
        let dir = self.dir.as_ref().expect("a child ran first").path();
        Arc::new(
            SledBackend::open(config(dir.to_owned(), self.mode))
                .await
                .expect("reopen after the crash"),
        )
    }
}

/// The crash child: runs only when re-executed by a test below (it returns at once
/// otherwise); writes until the parent kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(workload) = Workload::from_env() else {
        return;
    };
    let dir = std::env::var_os(DIR_VAR).expect("the parent names the directory");
    let mode = match std::env::var(MODE_VAR).as_deref() {
        Ok("safe") => SledMode::Safe,
        Ok("balanced") => SledMode::Balanced,
        other => panic!("unexpected sled mode {other:?}"),
    };
    let storage = SledBackend::open(config(dir.into(), mode))
        .await
        .expect("open sled in the child");
    crash::write_until_killed(Arc::new(storage), workload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_loses_no_acknowledged_set() {
    let mut target = Sled::new(SledMode::Safe);
    crash::run_kill_points(
        "sled/safe",
        &mut target,
        Workload::Set,
        Promise::NoLoss,
        KILL_POINTS,
        NO_LOSS_DELAY_MS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_loses_no_acknowledged_batch() {
    let mut target = Sled::new(SledMode::Safe);
    crash::run_kill_points(
        "sled/safe",
        &mut target,
        Workload::Batch,
        Promise::NoLoss,
        KILL_POINTS,
        NO_LOSS_DELAY_MS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_mode_loses_at_most_its_flush_interval_of_sets() {
    let mut target = Sled::new(SledMode::Balanced);
    crash::run_kill_points(
        "sled/balanced",
        &mut target,
        Workload::Set,
        Promise::LossWithin(BALANCED_WINDOW),
        KILL_POINTS,
        BALANCED_DELAY_MS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_mode_keeps_batches_whole() {
    let mut target = Sled::new(SledMode::Balanced);
    crash::run_kill_points(
        "sled/balanced",
        &mut target,
        Workload::Batch,
        Promise::LossWithin(BALANCED_WINDOW),
        KILL_POINTS,
        BALANCED_DELAY_MS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_mode_keeps_events_and_their_index_entries_together() {
    let mut target = Sled::new(SledMode::Balanced);
    crash::run_kill_points(
        "sled/balanced",
        &mut target,
        Workload::Events,
        Promise::LossWithin(BALANCED_WINDOW),
        KILL_POINTS,
        BALANCED_DELAY_MS,
    )
    .await;
}
