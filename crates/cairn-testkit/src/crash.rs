//! Crash harness: a child process writes as fast as it can and acknowledges each write on
//! stdout only after the write call returned; the parent kills it with `SIGKILL` at a random
//! moment, reopens the store and checks that every acknowledged write is present with its
//! exact value and that nothing is corrupt.
//!
//! A backend's test file wires it in three parts:
//!
//! - a child test (for example `crash_child`) that does nothing unless [`Workload::from_env`]
//!   names a workload; then it opens the store the parent named (in its own environment
//!   variables) and calls [`write_until_killed`];
//! - a [`CrashTarget`] that prepares a fresh store for each kill point, builds the command
//!   that re-executes the test binary as that child ([`reexec`]) and reopens the store after
//!   the kill;
//! - one test per backend, mode and workload calling [`run_kill_points`].
//!
//! The child is a real process; the parent kills it with `SIGKILL`, so no destructor, flush or
//! exit handler of the child runs.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write as _;
use std::ops::RangeInclusive;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::{Bytes, Key, StorageBackend, StorageBackendExt, WriteBatch};
use cairn_stores::event_log::keys::EventStream;
use cairn_stores::event_log::{Event, EventQuery, TypePattern};
use cairn_stores::stream::TimeStream;
use cairn_stores::{EventLogStore, EventRecord, GenericEventLogStore};
use rand::Rng as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::time::{Instant, timeout};

use crate::kv::key;

/// Environment variable that tells a re-executed test binary which workload to write.
pub const WORKLOAD_VAR: &str = "CAIRN_CRASH_WORKLOAD";

/// Keys per batch of [`Workload::Batch`].
pub const BATCH_KEYS: u64 = 16;

/// The child gives up after this long or this many writes (the parent kills it far earlier).
const CHILD_DEADLINE: Duration = Duration::from_secs(60);
const CHILD_MAX_WRITES: u64 = 10_000_000;

/// How long the parent waits for the child's first acknowledgement (it may have to connect
/// to a server and check migrations first).
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the parent waits for the killed child to be reaped and its pipes to close.
const REAP_TIMEOUT: Duration = Duration::from_secs(20);

/// Page size of the verification scans.
const SCAN_PAGE: usize = 1_000;

/// What the child writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One `set` per record: `crash/<seq>` holding a value derived from `seq`.
    Set,
    /// One `write_batch` per batch id: [`BATCH_KEYS`] keys `batch/<id>/<i>` plus `head`
    /// holding the id. Odd batches also check `head` (the previous id), so they take the
    /// backend's conditional path.
    Batch,
    /// One [`GenericEventLogStore::append`] per record: the event, its type index, two
    /// type-prefix indexes and a correlation index, in one atomic batch.
    Events,
}

impl Workload {
    /// The name used in [`WORKLOAD_VAR`] and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Set => "set",
            Workload::Batch => "write_batch",
            Workload::Events => "event_log",
        }
    }

    /// The workload a parent asked this process to write, `None` when this process is not a
    /// crash child.
    ///
    /// # Panics
    /// When [`WORKLOAD_VAR`] holds an unknown name.
    pub fn from_env() -> Option<Workload> {
        let name = std::env::var(WORKLOAD_VAR).ok()?;
        let workload = [Workload::Set, Workload::Batch, Workload::Events]
            .into_iter()
            .find(|w| w.name() == name);
        Some(workload.unwrap_or_else(|| panic!("unknown crash workload {name:?}")))
    }
}

/// What a backend promises about acknowledged writes when the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// Every acknowledged write survives.
    NoLoss,
    /// Only writes acknowledged within this window before the kill may be lost, and the
    /// survivors are a prefix of the acknowledged sequence (no holes).
    LossWithin(Duration),
}

/// A backend under the crash test: a fresh store per kill point.
pub trait CrashTarget {
    /// Prepares a fresh, empty store and returns the command that re-executes the test binary
    /// as a child writing `workload` into it (see [`reexec`]; [`run_kill_points`] sets
    /// [`WORKLOAD_VAR`] and the pipes).
    fn child(&mut self, workload: Workload) -> Command;

    /// Opens the store the last child wrote, after it was killed.
    fn reopen(&mut self) -> impl Future<Output = Arc<dyn StorageBackend>> + Send;
}

/// A command that runs only the test `test_name` of the current test binary, with its output
/// on stdout.
///
/// # Panics
/// When the path of the running binary is unknown.
pub fn reexec(test_name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("path of the test binary"));
    command.args(["--exact", test_name, "--nocapture", "--test-threads=1"]);
    command
}

// ---------------------------------------------------------------------------------------------
// The child

/// The key of record `seq` of [`Workload::Set`].
fn set_key(seq: u64) -> Key {
    key(&format!("crash/{seq:012}"))
}

/// The value of record `seq` of [`Workload::Set`]: 20 to 160 bytes derived from `seq`.
fn set_value(seq: u64) -> Bytes {
    Bytes::from(format!("value of {seq:012}/").repeat(1 + (seq % 8) as usize))
}

fn batch_key(id: u64, i: u64) -> Key {
    key(&format!("batch/{id:012}/{i:02}"))
}

fn batch_value(id: u64, i: u64) -> Bytes {
    Bytes::from(format!("batch {id} key {i}"))
}

fn head_key() -> Key {
    key("head")
}

fn event_type(seq: u64) -> String {
    format!("crash.kind{}.step", seq % 3)
}

fn correlation(seq: u64) -> String {
    format!("run-{}", seq % 4)
}

/// Writes `workload` into `backend` as fast as one writer can, printing `ack <seq>` (and
/// flushing stdout) after each write call returned. Returns only when the parent failed to
/// kill it within a minute.
///
/// # Panics
/// On any write error.
pub async fn write_until_killed(backend: Arc<dyn StorageBackend>, workload: Workload) {
    let events = GenericEventLogStore::new(backend.clone());
    let started = Instant::now();
    let mut stdout = std::io::stdout();
    // End the line the test harness started (`test crash_child ... `), so each
    // acknowledgement is a line of its own.
    writeln!(stdout).expect("write to stdout");
    for seq in 0..CHILD_MAX_WRITES {
        if started.elapsed() > CHILD_DEADLINE {
            break;
        }
        match workload {
            Workload::Set => backend.set(&set_key(seq), set_value(seq)).await.unwrap(),
            Workload::Batch => {
                let mut batch = WriteBatch::new();
                if seq % 2 == 1 {
                    let previous = Bytes::from((seq - 1).to_be_bytes().to_vec());
                    batch = batch.check(head_key(), Some(previous));
                }
                for i in 0..BATCH_KEYS {
                    batch = batch.put(batch_key(seq, i), batch_value(seq, i));
                }
                batch = batch.put(head_key(), seq.to_be_bytes().to_vec());
                backend.write_batch(batch).await.unwrap();
            }
            Workload::Events => {
                let payload = serde_json::json!({ "seq": seq });
                let event = Event::new(event_type(seq), payload).correlated(correlation(seq));
                events.append(event).await.unwrap();
            }
        }
        let mut out = stdout.lock();
        writeln!(out, "ack {seq}").expect("write to stdout");
        out.flush().expect("flush stdout");
    }
    stdout.flush().expect("flush stdout");
}

// ---------------------------------------------------------------------------------------------
// The parent

/// One kill: what the child acknowledged and when.
#[derive(Debug, Clone)]
pub struct KillPoint {
    /// How long after the first acknowledgement the child was killed.
    pub delay: Duration,
    /// Acknowledged sequence numbers in order, with how long before the kill the parent read
    /// each (zero for those read from the pipe after the kill).
    pub acked: Vec<(u64, Duration)>,
}

/// Starts `command` as a crash child writing `workload`, kills it with `SIGKILL` `delay` after
/// its first acknowledgement and returns every acknowledgement it printed.
///
/// # Panics
/// When the child fails to start, prints no acknowledgement within a minute, exits before the
/// kill, or is not killed by the signal.
pub async fn kill_while_writing(
    mut command: Command,
    workload: Workload,
    delay: Duration,
) -> KillPoint {
    command
        .env(WORKLOAD_VAR, workload.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let mut child = command.spawn().expect("start the crash child");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut acks: Vec<(u64, Instant)> = Vec::new();

    let first = timeout(FIRST_ACK_TIMEOUT, next_ack(&mut lines)).await;
    let Ok(Some(first)) = first else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        panic!(
            "the crash child printed no acknowledgement; its stderr:\n{}",
            stderr.await.unwrap_or_default()
        );
    };
    let first_at = Instant::now();
    acks.push((first, first_at));
    let kill_at = first_at + delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(kill_at) => break,
            ack = next_ack(&mut lines) => match ack {
                Some(seq) => acks.push((seq, Instant::now())),
                None => panic!(
                    "the crash child stopped before the kill; its stderr:\n{}",
                    stderr.await.unwrap_or_default()
                ),
            },
        }
    }
    child.start_kill().expect("send SIGKILL to the crash child");
    let killed = Instant::now();
    let status = timeout(REAP_TIMEOUT, child.wait())
        .await
        .expect("the killed child is reaped")
        .expect("wait for the crash child");
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL: {status}"
    );
    // Lines still in the pipe were printed, so acknowledged, before the kill.
    let mut late = Vec::new();
    timeout(REAP_TIMEOUT, async {
        while let Some(seq) = next_ack(&mut lines).await {
            late.push(seq);
        }
    })
    .await
    .expect("the pipe closes after the kill");
    let acked: Vec<(u64, Duration)> = acks
        .into_iter()
        .map(|(seq, at)| (seq, killed.duration_since(at)))
        .chain(late.into_iter().map(|seq| (seq, Duration::ZERO)))
        .collect();
    for (pair, expected) in acked.iter().zip(acked[0].0..) {
        assert_eq!(pair.0, expected, "acknowledgements come in order");
    }
    KillPoint {
        delay: killed.duration_since(first_at),
        acked,
    }
}

/// The next `ack <seq>` line of the child, skipping the test harness's own lines; `None` at
/// the end of the output.
async fn next_ack(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Option<u64> {
    loop {
        let line = lines.next_line().await.ok()??;
        if let Some(seq) = line.strip_prefix("ack ") {
            return Some(seq.parse().expect("an acknowledgement names a number"));
        }
    }
}

/// Reads everything `workload` left in `backend`, checks that all of it is intact, and returns
/// the sequence numbers of the writes present.
///
/// # Panics
/// When any key or value is not one the workload writes (corruption), a batch is torn, or a
/// record and its index entries disagree.
pub async fn recovered(backend: &Arc<dyn StorageBackend>, workload: Workload) -> BTreeSet<u64> {
    match workload {
        Workload::Set => recovered_sets(backend).await,
        Workload::Batch => recovered_batches(backend).await,
        Workload::Events => recovered_events(backend).await,
    }
}

async fn recovered_sets(backend: &Arc<dyn StorageBackend>) -> BTreeSet<u64> {
    let mut present = BTreeSet::new();
    for (k, value) in backend.scan_all("", SCAN_PAGE).await.unwrap() {
        let seq = k
            .as_str()
            .strip_prefix("crash/")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("unexpected key {k}"));
        assert_eq!(k, set_key(seq), "key {k} is not in canonical form");
        assert_eq!(value, set_value(seq), "record {seq} has a damaged value");
        present.insert(seq);
    }
    present
}

async fn recovered_batches(backend: &Arc<dyn StorageBackend>) -> BTreeSet<u64> {
    let mut batches: BTreeMap<u64, Vec<(Key, Bytes)>> = BTreeMap::new();
    for (k, value) in backend.scan_all("batch/", SCAN_PAGE).await.unwrap() {
        let id = k.as_str()["batch/".len()..]
            .split('/')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("unexpected key {k}"));
        batches.entry(id).or_default().push((k, value));
    }
    for (&id, entries) in &batches {
        let expected: Vec<(Key, Bytes)> = (0..BATCH_KEYS)
            .map(|i| (batch_key(id, i), batch_value(id, i)))
            .collect();
        assert_eq!(entries, &expected, "batch {id} is torn or damaged");
    }
    let head = backend.get(&head_key()).await.unwrap();
    let newest = batches.keys().next_back().copied();
    assert_eq!(
        head,
        newest.map(|id| Bytes::from(id.to_be_bytes().to_vec())),
        "head names the newest batch present"
    );
    let all = backend.scan_all("", SCAN_PAGE).await.unwrap().len();
    let expected = batches.len() * BATCH_KEYS as usize + usize::from(head.is_some());
    assert_eq!(all, expected, "no keys besides the batches and head");
    batches.into_keys().collect()
}

/// The index entries an event must have, as `(index key, record key)`.
fn index_entries(record: &EventRecord) -> Vec<(Key, Key)> {
    let record_key = EventStream::All.entry(record.at, record.id).unwrap();
    let t = record.event_type.as_str();
    let dots: Vec<usize> = t.match_indices('.').map(|(i, _)| i).collect();
    let mut streams = vec![EventStream::Type(t)];
    streams.extend(dots.iter().map(|&i| EventStream::Prefix(&t[..i])));
    if let Some(c) = &record.correlation_id {
        streams.push(EventStream::Correlation(c));
    }
    streams
        .into_iter()
        .map(|s| (s.entry(record.at, record.id).unwrap(), record_key.clone()))
        .collect()
}

async fn recovered_events(backend: &Arc<dyn StorageBackend>) -> BTreeSet<u64> {
    // Raw scan: every record decodes and is one the child wrote; the index entries are exactly
    // those the records call for (no dangling entry, no record missing one).
    let records_prefix = EventStream::All.prefix();
    let mut records: BTreeMap<u64, EventRecord> = BTreeMap::new();
    let mut found_index = BTreeMap::new();
    for (k, value) in backend.scan_all("", SCAN_PAGE).await.unwrap() {
        if k.as_str().starts_with(&records_prefix) {
            let record: EventRecord = cairn_stores::codec::decode_record(&value)
                .unwrap_or_else(|e| panic!("record {k} is damaged: {e}"));
            assert_eq!(k, EventStream::All.entry(record.at, record.id).unwrap());
            let seq = record.payload["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("record {k} has no seq"));
            assert_eq!(record.event_type, event_type(seq), "record {seq}");
            assert_eq!(
                record.correlation_id,
                Some(correlation(seq)),
                "record {seq}"
            );
            assert!(records.insert(seq, record).is_none(), "record {seq} twice");
        } else {
            let target = std::str::from_utf8(&value)
                .ok()
                .and_then(|t| Key::new(t).ok())
                .unwrap_or_else(|| panic!("index entry {k} is damaged"));
            found_index.insert(k, target);
        }
    }
    let expected_index: BTreeMap<Key, Key> = records.values().flat_map(index_entries).collect();
    let dangling: Vec<_> = found_index
        .keys()
        .filter(|k| !expected_index.contains_key(*k))
        .collect();
    assert!(
        dangling.is_empty(),
        "{} dangling index entries, the first: {:?}",
        dangling.len(),
        &dangling[..dangling.len().min(5)]
    );
    let missing: Vec<_> = expected_index
        .keys()
        .filter(|k| !found_index.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} index entries missing for present records, the first: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        found_index, expected_index,
        "index entries point at their records"
    );

    // Through the store: each index answers exactly the records it should.
    let store = GenericEventLogStore::new(backend.clone());
    let present: BTreeSet<u64> = records.keys().copied().collect();
    let by = |pattern: Option<TypePattern>, correlation_id: Option<String>| EventQuery {
        event_type: pattern,
        correlation_id,
        limit: SCAN_PAGE,
        ..EventQuery::default()
    };
    let everything = query_seqs(&store, by(None, None)).await;
    assert_eq!(everything, present, "the log lists every record");
    let prefixed = query_seqs(
        &store,
        by(Some(TypePattern::parse("crash.*").unwrap()), None),
    )
    .await;
    assert_eq!(prefixed, present, "the prefix index lists every record");
    for kind in 0..3 {
        let t = event_type(kind);
        let exact = query_seqs(&store, by(Some(TypePattern::parse(&t).unwrap()), None)).await;
        let expected: BTreeSet<u64> = present.iter().copied().filter(|s| s % 3 == kind).collect();
        assert_eq!(exact, expected, "the type index of {t}");
    }
    for run in 0..4 {
        let c = correlation(run);
        let correlated = query_seqs(&store, by(None, Some(c.clone()))).await;
        let expected: BTreeSet<u64> = present.iter().copied().filter(|s| s % 4 == run).collect();
        assert_eq!(correlated, expected, "the correlation index of {c}");
    }
    present
}

/// Every record a query matches, page by page, as sequence numbers.
async fn query_seqs(store: &GenericEventLogStore, mut query: EventQuery) -> BTreeSet<u64> {
    let mut seqs = BTreeSet::new();
    loop {
        let page = store.query(&query).await.unwrap();
        for record in &page {
            let seq = record.payload["seq"].as_u64().expect("seq");
            assert!(seqs.insert(seq), "record {seq} listed twice");
        }
        match page.last() {
            Some(last) if page.len() == query.limit => query.after = Some(last.into()),
            _ => return seqs,
        }
    }
}

/// Checks the writes present after a kill against what the child acknowledged and the
/// backend's promise, and returns how many acknowledged writes were lost.
///
/// # Panics
/// When more is present than was written, or the loss breaks the promise: any loss under
/// [`Promise::NoLoss`]; under [`Promise::LossWithin`] a hole, a lost write acknowledged
/// earlier than the window before the kill, or more losses than the observed write rate
/// could produce in the window.
pub fn judge(label: &str, point: &KillPoint, present: &BTreeSet<u64>, promise: Promise) -> usize {
    let acked: BTreeSet<u64> = point.acked.iter().map(|(seq, _)| *seq).collect();
    let in_flight = point.acked.last().map_or(0, |(seq, _)| seq + 1);
    let unexpected: Vec<_> = present
        .iter()
        .filter(|seq| !acked.contains(seq) && **seq != in_flight)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{label}: present but never written: {unexpected:?}"
    );
    let lost: Vec<(u64, Duration)> = point
        .acked
        .iter()
        .copied()
        .filter(|(seq, _)| !present.contains(seq))
        .collect();
    match promise {
        Promise::NoLoss => assert!(
            lost.is_empty(),
            "{label}: {} acknowledged writes lost: {lost:?}",
            lost.len()
        ),
        Promise::LossWithin(window) => {
            if let Some(&(first_lost, _)) = lost.first() {
                let after_hole: Vec<_> = present.range(first_lost..).collect();
                assert!(
                    after_hole.is_empty(),
                    "{label}: {first_lost} lost but later writes kept: {after_hole:?}"
                );
            }
            let oldest = lost.iter().map(|(_, age)| *age).max().unwrap_or_default();
            assert!(
                oldest <= window,
                "{label}: lost a write acknowledged {oldest:?} before the kill (window \
                 {window:?}); lost {} of {} acknowledged in {:?}",
                lost.len(),
                point.acked.len(),
                point.delay
            );
            let rate = point.acked.len() as f64 / point.delay.as_secs_f64();
            let bound = (rate * window.as_secs_f64()).ceil() as usize + 1;
            assert!(
                lost.len() <= bound,
                "{label}: lost {} writes, at {rate:.0} writes/s the window {window:?} holds {bound}",
                lost.len()
            );
        }
    }
    lost.len()
}

/// Runs `kill_points` crashes of `workload` on `target`, each killed a random time within
/// `delay_ms` after the child's first acknowledgement, checks each with [`recovered`] and
/// [`judge`], and prints one line per kill point and a total.
pub async fn run_kill_points(
    label: &str,
    target: &mut impl CrashTarget,
    workload: Workload,
    promise: Promise,
    kill_points: usize,
    delay_ms: RangeInclusive<u64>,
) {
    let label = format!("{label} {}", workload.name());
    let (mut acknowledged, mut lost) = (0, 0);
    for n in 1..=kill_points {
        let delay = Duration::from_millis(rand::rng().random_range(delay_ms.clone()));
        let point = kill_while_writing(target.child(workload), workload, delay).await;
        let backend = target.reopen().await;
        let present = recovered(&backend, workload).await;
        let lost_here = judge(&label, &point, &present, promise);
        backend.clear().await.unwrap();
        println!(
            "crash {label}: kill {n}/{kill_points} at {} ms: acknowledged {}, lost {lost_here}",
            point.delay.as_millis(),
            point.acked.len()
        );
        acknowledged += point.acked.len();
        lost += lost_here;
    }
    println!(
        "crash {label}: {kill_points} kill points, {acknowledged} acknowledged writes, {lost} lost"
    );
}
