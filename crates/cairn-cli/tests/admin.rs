//! The administration commands, run as the `cairn` binary on real sled directories: export
//! and import round-trip byte-identically and refuse damaged dumps; a copy killed halfway
//! resumes from its checkpoint and verifies; `verify` finds damaged records; `purge` applies
//! retention.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn::admin::{self, Quiet, Selection};
use cairn::stores::dump::{DumpItem, DumpReader};
use cairn::stores::event_log::Event;
use cairn::{Component, Storage, TenantId, TenantStorage};
use cairn_testkit::dataset::{self, Seeded, Size, Stores};
use serde_json::json;

/// A sled storage in its own directory, with its configuration file.
struct Place {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Place {
    fn new() -> Place {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cairn.toml");
        let toml = format!(
            "[storage]\nbackend = \"sled\"\npath = \"{}\"\n",
            dir.path().join("data").display()
        );
        std::fs::write(&config, toml).unwrap();
        Place { _dir: dir, config }
    }

    async fn open(&self) -> Storage {
        let config = cairn::load_config(Some(&self.config)).unwrap();
        Storage::open(&config).await.unwrap()
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn stores(view: &TenantStorage) -> Stores {
    cairn_testkit::stores_of!(view)
}

/// Seeds `place` with the small dataset (and `extra_events` more events) and closes it.
async fn seed(place: &Place, extra_events: usize) -> Seeded {
    let storage = place.open().await;
    let view = storage.tenant(&tenant());
    let seeded = dataset::seed(&stores(&view), Size::small()).await.unwrap();
    let events: Vec<Event> = (0..extra_events)
        .map(|n| Event::new("bulk.event", json!({ "n": n })))
        .collect();
    for chunk in events.chunks(1_000) {
        view.events().append_batch(chunk.to_vec()).await.unwrap();
    }
    seeded
}

async fn answers(place: &Place, seeded: &Seeded) -> Vec<(String, String)> {
    let storage = place.open().await;
    dataset::answers(&stores(&storage.tenant(&tenant())), seeded)
        .await
        .unwrap()
}

/// The `cairn` command with no `CAIRN_*` variables from the environment.
fn cairn(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CAIRN_")) {
        command.env_remove(name);
    }
    command.args(args);
    command
}

fn run(args: &[&str]) -> Output {
    cairn(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeds(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "cairn {args:?}: {}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every section and record of a dump, in order.
fn items(dump: &Path) -> Vec<DumpItem> {
    let mut reader = DumpReader::open(std::fs::File::open(dump).unwrap()).unwrap();
    let mut items = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        items.push(item);
    }
    items
}

/// Records each tenant's components hold in `place`.
async fn records(place: &Place) -> u64 {
    let storage = place.open().await;
    let stats = admin::stats(&storage, &Selection::all(), &Quiet)
        .await
        .unwrap();
    stats.iter().map(|s| s.records).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trips_and_damaged_dumps_import_nothing() {
    let (source, target, damaged_target) = (Place::new(), Place::new(), Place::new());
    let seeded = seed(&source, 0).await;
    let work = tempfile::tempdir().unwrap();
    let (first, second) = (
        work.path().join("first.dump"),
        work.path().join("second.dump"),
    );

    let exported = succeeds(&[
        "--config",
        path(&source.config),
        "export",
        "--out",
        path(&first),
    ]);
    assert!(exported.contains("semantic_graph"), "{exported}");
    let imported = succeeds(&["--config", path(&target.config), "import", path(&first)]);
    assert!(imported.contains("imported"), "{imported}");
    let imported_records = records(&target).await;
    // Importing again changes nothing.
    succeeds(&["--config", path(&target.config), "import", path(&first)]);
    assert_eq!(records(&target).await, imported_records);
    succeeds(&[
        "--config",
        path(&target.config),
        "export",
        "--zstd",
        "--out",
        path(&second),
    ]);
    let (original, round_tripped) = (items(&first), items(&second));
    assert!(original.len() > 500, "{} items", original.len());
    assert!(original == round_tripped, "the re-exported records differ");
    dataset::assert_same_answers(
        &answers(&source, &seeded).await,
        &answers(&target, &seeded).await,
    );

    let bytes = std::fs::read(&first).unwrap();
    let damaged = work.path().join("damaged.dump");
    let flips = [12, 40, bytes.len() / 2, bytes.len() - 3];
    let cuts = [bytes.len() / 2, bytes.len() - 1];
    let mut cases: Vec<(String, Vec<u8>)> = flips
        .iter()
        .map(|&at| {
            let mut copy = bytes.clone();
            copy[at] ^= 0x01;
            (format!("byte {at} flipped"), copy)
        })
        .collect();
    cases.extend(
        cuts.iter()
            .map(|&at| (format!("cut at {at}"), bytes[..at].to_vec())),
    );
    for (case, content) in cases {
        std::fs::write(&damaged, content).unwrap();
        let output = run(&[
            "--config",
            path(&damaged_target.config),
            "import",
            path(&damaged),
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
        assert!(
            [
                "damaged",
                "truncated",
                "does not match",
                "does not decode",
                "corrupt"
            ]
            .iter()
            .any(|word| stderr.to_lowercase().contains(word)),
            "{case}: {stderr}"
        );
        assert_eq!(
            records(&damaged_target).await,
            0,
            "{case}: something was imported"
        );
    }
}

/// The copied count of `component` in a checkpoint file, if the file is there.
fn checkpointed(checkpoint: &Path, component: Component) -> Option<u64> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(checkpoint).ok()?).ok()?;
    json["sections"]
        .as_array()?
        .iter()
        .find(|s| s["component"] == component.name())
        .and_then(|s| s["copied"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_halfway_resumes_and_verifies() {
    let (source, target) = (Place::new(), Place::new());
    let seeded = seed(&source, 20_000).await;
    let work = tempfile::tempdir().unwrap();
    let checkpoint = work.path().join("copy.checkpoint");
    let args = [
        "copy",
        "--from",
        path(&source.config),
        "--to",
        path(&target.config),
        "--checkpoint",
        path(&checkpoint),
        "--page",
        "100",
    ];
    let mut child = cairn(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let killed_at = loop {
        if let Some(copied) = checkpointed(&checkpoint, Component::EventLog)
            && copied >= 2_000
        {
            child.kill().unwrap();
            break copied;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it could be killed"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.wait().unwrap();
    let total_events = 20_000 + Size::small().events as u64;
    assert!(
        killed_at < total_events,
        "killed after the event log was copied"
    );

    let report = succeeds(&args);
    assert!(report.contains("every section matches"), "{report}");
    let event_row = report
        .lines()
        .find(|line| line.contains("event_log"))
        .unwrap();
    let copied: u64 = event_row
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        copied < total_events,
        "the second run copied all {copied} events again: {report}"
    );
    assert!(
        !checkpoint.exists(),
        "a verified copy leaves its checkpoint"
    );
    dataset::assert_same_answers(
        &answers(&source, &seeded).await,
        &answers(&target, &seeded).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_damaged_artifact_and_snapshot() {
    let place = Place::new();
    seed(&place, 0).await;
    let clean = succeeds(&["--config", path(&place.config), "verify"]);
    assert!(clean.contains(": 0 corrupt"), "{clean}");
    {
        // Damage one artifact chunk (the largest value) and one snapshot payload behind the
        // stores' back.
        let storage = place.open().await;
        let view = storage.tenant(&tenant());
        let artifacts = view.backend(Component::Artifacts);
        let keys = artifacts.list_keys("").await.unwrap();
        let mut largest = None::<(cairn::Key, cairn::Bytes)>;
        let mut snapshot = None;
        for key in keys {
            let value = artifacts.get(&key).await.unwrap().unwrap();
            if largest.as_ref().is_none_or(|(_, v)| v.len() < value.len()) {
                largest = Some((key.clone(), value.clone()));
            }
            if value.starts_with(b"{") && value.windows(5).any(|w| w == b"plan ") {
                snapshot = Some((key, value));
            }
        }
        let (key, value) = largest.unwrap();
        let mut chunk = value.to_vec();
        chunk[1_000] ^= 0xff;
        artifacts.set(&key, chunk.into()).await.unwrap();
        let (key, value) = snapshot.expect("a snapshot payload");
        let payload = String::from_utf8(value.to_vec())
            .unwrap()
            .replace("plan ", "PLAN ");
        artifacts.set(&key, payload.into()).await.unwrap();
    }
    let output = run(&["--config", path(&place.config), "verify"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("CORRUPT acme artifacts"), "{stdout}");
    assert!(stdout.contains("CORRUPT acme agent_state"), "{stdout}");
    assert!(stdout.contains(": 2 corrupt"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_expired_sessions_and_old_records() {
    let place = Place::new();
    seed(&place, 0).await;
    let output = succeeds(&[
        "--config",
        path(&place.config),
        "purge",
        "--expired-sessions",
        "--events-older-than",
        "200d",
        "--hooks-older-than",
        "5d",
    ]);
    let row: Vec<u64> = output
        .lines()
        .find(|line| line.starts_with("acme"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    // The small dataset: every fourth of 20 sessions expired; events spread over 400 days;
    // hook executions one a minute from 10 days ago (the first 60 minutes of them).
    assert_eq!(row[0], 5, "{output}");
    assert!(row[1] > 100 && row[1] < 200, "{output}");
    assert_eq!(row[2], 60, "{output}");
    let refused = run(&["--config", path(&place.config), "purge"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("nothing to purge"));
}
