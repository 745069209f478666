//! The hostile-input catalogue: one table of bad or extreme inputs, run on every backend.
//!
//! Every row names its input, the [`ErrorKind`] it must produce (or that it must be accepted
//! and read back exactly), and checks that nothing else changed: the tenant is snapshotted
//! with `scan_all` before each rejected call and compared after it. Component stores are
//! driven through their generic implementations over the backend under test.
//!
//! Invalid UTF-8 cannot reach a backend at all: [`Key`] is `str`-based (`Key::new` takes a
//! `String`), and so are prefixes, ids and tenant ids, so the rows test odd but valid text
//! (replacement characters, the code points around the surrogate gap, `U+10FFFF`) instead.
//!
//! Each case returns the number of rows it checked and prints it;
//! [`hostile_suite!`](crate::hostile_suite) also prints the number of cases per backend.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use cairn_core::{
    Bytes, ErrorKind, Key, MAX_KEY_BYTES, MAX_TENANT_BYTES, MAX_VALUE_BYTES, Result,
    StorageBackend, StorageBackendExt, TenantId, WriteBatch,
};
use cairn_stores::agent_state::keys::AgentStateKey;
use cairn_stores::episodic::keys::EpisodicKey;
use cairn_stores::episodic::{Role, Turn, TurnPage};
use cairn_stores::event_log::{Event, EventQuery};
use cairn_stores::vectors::Metadata;
use cairn_stores::vectors::keys::VectorKey;
use cairn_stores::workflow::Transition;
use cairn_stores::workflow::keys::WorkflowKey;
use cairn_stores::{
    AgentStateStore, EpisodicStore, EventLogStore, GenericAgentStateStore, GenericEpisodicStore,
    GenericEventLogStore, GenericVectorStore, GenericWorkflowStore, Metric, SearchRequest,
    VectorStore, WorkflowStatus, WorkflowStore,
};
use serde_json::json;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::kv::key;
use crate::tenant_named;

/// The SQL and `LIKE` metacharacters every text input is tried with.
pub const SQL_METACHARACTERS: [&str; 8] = [
    "'",
    "%",
    "_",
    "\\",
    ";--",
    "'; DROP TABLE cairn_kv; --",
    "%_\\%",
    "\" OR 1=1 --",
];

/// Every entry of the tenant, in key order.
pub async fn snapshot(b: &Arc<dyn StorageBackend>) -> Vec<(Key, Bytes)> {
    b.scan_all("", 1000).await.expect("snapshot the tenant")
}

/// Counts the rows of one case and checks each rejected call.
struct Table {
    case: &'static str,
    backend: Arc<dyn StorageBackend>,
    rows: usize,
}

impl Table {
    fn new(case: &'static str, backend: &Arc<dyn StorageBackend>) -> Table {
        Table {
            case,
            backend: backend.clone(),
            rows: 0,
        }
    }

    /// A row whose call must fail with `kind` and leave the tenant unchanged.
    async fn rejects<T: Debug>(
        &mut self,
        what: &str,
        kind: ErrorKind,
        call: impl Future<Output = Result<T>>,
    ) {
        let before = snapshot(&self.backend).await;
        let result = call.await;
        let err = match result {
            Err(err) => err,
            Ok(value) => panic!(
                "{}: {what}: expected {kind:?}, got Ok({value:?})",
                self.case
            ),
        };
        assert_eq!(err.kind(), kind, "{}: {what}: {err}", self.case);
        assert!(
            snapshot(&self.backend).await == before,
            "{}: {what}: the rejected call changed stored data",
            self.case
        );
        self.rows += 1;
    }

    /// A row checked by the caller (a plain validation or a round trip).
    fn row(&mut self) {
        self.rows += 1;
    }

    /// A row for a rule that needs no backend: `result` must fail with `kind`.
    fn invalid<T: Debug>(&mut self, what: &str, kind: ErrorKind, result: Result<T>) {
        let err = result.expect_err(what);
        assert_eq!(err.kind(), kind, "{}: {what}: {err}", self.case);
        self.rows += 1;
    }

    fn done(self) -> usize {
        println!(
            "hostile input on {}: {} rows in {}",
            self.backend.backend_type(),
            self.rows,
            self.case
        );
        self.rows
    }
}

/// Some data every case starts from, so "nothing else changed" compares real entries.
async fn seed(b: &Arc<dyn StorageBackend>) {
    for (k, v) in [("seed/a", "1"), ("seed/b", "2"), ("seed/c%", "3")] {
        b.set(&key(k), Bytes::from(v)).await.unwrap();
    }
}

/// Empty, maximal and over-long keys, prefixes and store ids.
pub async fn keys_empty_maximal_and_over_long(b: Arc<dyn StorageBackend>) -> usize {
    seed(&b).await;
    let mut t = Table::new("keys_empty_maximal_and_over_long", &b);
    t.invalid("empty key", ErrorKind::InvalidInput, Key::new(""));
    t.invalid(
        "key of MAX + 1 bytes",
        ErrorKind::InvalidInput,
        Key::new("k".repeat(MAX_KEY_BYTES + 1)),
    );
    t.invalid(
        "key whose last character crosses the limit",
        ErrorKind::InvalidInput,
        Key::new(format!("{}ü", "k".repeat(MAX_KEY_BYTES - 1))),
    );
    let maximal = Key::new("m".repeat(MAX_KEY_BYTES)).unwrap();
    b.set(&maximal, Bytes::from_static(b"max")).await.unwrap();
    assert_eq!(
        b.get(&maximal).await.unwrap(),
        Some(Bytes::from_static(b"max"))
    );
    assert_eq!(
        b.list_keys(maximal.as_str()).await.unwrap(),
        vec![maximal.clone()]
    );
    t.row();
    let long_prefix = "p".repeat(MAX_KEY_BYTES + 1);
    t.rejects(
        "list_keys with over-long prefix",
        ErrorKind::InvalidInput,
        b.list_keys(&long_prefix),
    )
    .await;
    t.rejects(
        "scan with over-long prefix",
        ErrorKind::InvalidInput,
        b.scan(&long_prefix, None, 10),
    )
    .await;
    let episodic = GenericEpisodicStore::new(b.clone());
    t.rejects(
        "episodic append with empty session id",
        ErrorKind::InvalidInput,
        episodic.append("", Turn::new(Role::User, "x")),
    )
    .await;
    t.rejects(
        "episodic append with a 300-byte session id",
        ErrorKind::InvalidInput,
        episodic.append(&"s".repeat(300), Turn::new(Role::User, "x")),
    )
    .await;
    let workflows = GenericWorkflowStore::new(b.clone());
    t.rejects(
        "workflow with a 1000-byte id",
        ErrorKind::InvalidInput,
        workflows.create(Some(&"w".repeat(1000)), "n", json!(null)),
    )
    .await;
    t.done()
}

/// NUL in keys, prefixes, tenant ids and store ids; odd but valid text round-trips.
pub async fn nul_and_odd_text(b: Arc<dyn StorageBackend>) -> usize {
    seed(&b).await;
    let mut t = Table::new("nul_and_odd_text", &b);
    for text in ["\0", "a\0b", "a\0"] {
        t.invalid("key with NUL", ErrorKind::InvalidInput, Key::new(text));
        t.invalid(
            "tenant with NUL",
            ErrorKind::InvalidInput,
            TenantId::new(text),
        );
        t.rejects(
            "list_keys with NUL",
            ErrorKind::InvalidInput,
            b.list_keys(text),
        )
        .await;
        t.rejects(
            "scan with NUL",
            ErrorKind::InvalidInput,
            b.scan(text, None, 5),
        )
        .await;
    }
    let workflows = GenericWorkflowStore::new(b.clone());
    t.rejects(
        "workflow id with NUL",
        ErrorKind::InvalidInput,
        workflows.create(Some("w\0"), "n", json!(null)),
    )
    .await;
    let vectors = GenericVectorStore::new(b.clone());
    t.rejects(
        "collection name with NUL",
        ErrorKind::InvalidInput,
        vectors.create_collection("c\0", 3, Metric::Cosine),
    )
    .await;
    // Text that a lossy UTF-8 conversion produces, and the code points next to the surrogate
    // gap and at the top of Unicode, are ordinary keys and prefixes.
    let odd = [
        "\u{FFFD}\u{FFFD}",
        "odd/\u{D7FF}",
        "odd/\u{E000}",
        "odd/\u{10FFFF}",
    ];
    for text in odd {
        b.set(&key(text), Bytes::from(text.to_owned()))
            .await
            .unwrap();
    }
    for text in odd {
        assert_eq!(
            b.get(&key(text)).await.unwrap(),
            Some(Bytes::from(text.to_owned()))
        );
        t.row();
    }
    let listed: Vec<String> = b
        .list_keys("odd/")
        .await
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(listed, ["odd/\u{D7FF}", "odd/\u{E000}", "odd/\u{10FFFF}"]);
    t.row();
    t.done()
}

/// SQL and `LIKE` metacharacters in keys, values, store ids and metadata are plain text.
pub async fn sql_metacharacters_are_plain_text(b: Arc<dyn StorageBackend>) -> usize {
    seed(&b).await;
    let mut t = Table::new("sql_metacharacters_are_plain_text", &b);
    for meta in SQL_METACHARACTERS {
        let k = key(&format!("sql/{meta}"));
        b.set(&k, Bytes::from(meta.to_owned())).await.unwrap();
        assert_eq!(b.get(&k).await.unwrap(), Some(Bytes::from(meta.to_owned())));
        t.row();
    }
    assert_eq!(
        b.list_keys("sql/").await.unwrap().len(),
        SQL_METACHARACTERS.len()
    );
    t.row();

    let workflows = GenericWorkflowStore::new(b.clone());
    let episodic = GenericEpisodicStore::new(b.clone());
    let vectors = GenericVectorStore::new(b.clone());
    vectors
        .create_collection("c';--%_\\", 2, Metric::Cosine)
        .await
        .unwrap();
    for (i, meta) in SQL_METACHARACTERS.iter().enumerate() {
        let id = format!("{meta}{i}");
        let wf = workflows
            .create(Some(&id), meta, json!({ *meta: meta }))
            .await
            .unwrap();
        assert_eq!(workflows.get(&id).await.unwrap(), Some(wf));
        t.row();
        let turn = Turn::new(Role::User, *meta).with_metadata(*meta, json!(meta));
        episodic.append(&id, turn).await.unwrap();
        let read = episodic.read(&id, TurnPage::first(10)).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].content, *meta);
        assert_eq!(read[0].metadata[*meta], json!(meta));
        t.row();
        let mut metadata = Metadata::new();
        metadata.insert((*meta).to_owned(), json!(meta));
        vectors
            .upsert("c';--%_\\", &id, vec![1.0, i as f32], metadata.clone())
            .await
            .unwrap();
        let mut request = SearchRequest::new(vec![1.0, 0.0], 20);
        request.filter = metadata;
        let hits = vectors.search("c';--%_\\", request).await.unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            [id.as_str()],
            "a metadata filter of {meta:?} matches only itself"
        );
        t.row();
    }
    let pending = workflows
        .list_by_status(WorkflowStatus::Pending, None, 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), SQL_METACHARACTERS.len());
    t.row();
    t.done()
}

/// Prefix scans whose prefix holds `%`, `_` or `\` match those characters literally.
pub async fn prefix_scans_with_like_wildcards(b: Arc<dyn StorageBackend>) -> usize {
    let mut t = Table::new("prefix_scans_with_like_wildcards", &b);
    for k in [
        "w/a%", "w/a%b", "w/ab", "w/a_", "w/a_b", "w/aXb", "w/a\\", "w/a\\b", "w/a",
    ] {
        b.set(&key(k), Bytes::from_static(b"v")).await.unwrap();
    }
    for (prefix, expected) in [
        ("w/a%", &["w/a%", "w/a%b"][..]),
        ("w/a_", &["w/a_", "w/a_b"][..]),
        ("w/a\\", &["w/a\\", "w/a\\b"][..]),
        ("w/%", &[][..]),
        ("w/_", &[][..]),
        ("w/a%b", &["w/a%b"][..]),
    ] {
        let listed: Vec<String> = b
            .list_keys(prefix)
            .await
            .unwrap()
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(listed, expected, "list_keys({prefix:?})");
        let scanned: Vec<String> = b
            .scan_all(prefix, 2)
            .await
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(scanned, expected, "scan({prefix:?})");
        t.row();
    }
    t.done()
}

/// 0-byte and 16 MiB values round-trip; a value of 64 MiB + 1 is rejected on every write path
/// and the stored value stays.
pub async fn values_empty_large_and_over_limit(b: Arc<dyn StorageBackend>) -> usize {
    seed(&b).await;
    let mut t = Table::new("values_empty_large_and_over_limit", &b);
    let empty = key("v/empty");
    b.set(&empty, Bytes::new()).await.unwrap();
    assert_eq!(b.get(&empty).await.unwrap(), Some(Bytes::new()));
    assert!(b.exists(&empty).await.unwrap());
    t.row();
    let large: Bytes = (0..16 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let big = key("v/16mib");
    b.set(&big, large.clone()).await.unwrap();
    assert!(
        b.get(&big).await.unwrap() == Some(large),
        "16 MiB value changed"
    );
    t.row();
    let over = Bytes::from(vec![7u8; MAX_VALUE_BYTES + 1]);
    let k = key("seed/a");
    t.rejects(
        "set over limit",
        ErrorKind::InvalidInput,
        b.set(&k, over.clone()),
    )
    .await;
    t.rejects(
        "set_batch over limit",
        ErrorKind::InvalidInput,
        b.set_batch(vec![
            (key("v/other"), Bytes::new()),
            (k.clone(), over.clone()),
        ]),
    )
    .await;
    t.rejects(
        "write_batch over limit",
        ErrorKind::InvalidInput,
        b.write_batch(
            WriteBatch::new()
                .delete(key("seed/b"))
                .put(k.clone(), over.clone()),
        ),
    )
    .await;
    t.rejects(
        "compare_and_swap over limit",
        ErrorKind::InvalidInput,
        b.compare_and_swap(&k, Some(Bytes::from_static(b"1")), Some(over)),
    )
    .await;
    t.done()
}

/// Vectors of the wrong dimension, with NaN or infinity, overflowing, or all zeros under
/// cosine are rejected by upsert, batch upsert and search; bad dimensions by create.
pub async fn hostile_vectors(b: Arc<dyn StorageBackend>) -> usize {
    let vectors = GenericVectorStore::new(b.clone());
    vectors
        .create_collection("v", 3, Metric::Cosine)
        .await
        .unwrap();
    vectors
        .upsert("v", "good", vec![1.0, 2.0, 3.0], Metadata::new())
        .await
        .unwrap();
    let mut t = Table::new("hostile_vectors", &b);
    let bad: [(&str, Vec<f32>); 8] = [
        ("too short", vec![1.0, 2.0]),
        ("too long", vec![1.0, 2.0, 3.0, 4.0]),
        ("empty", vec![]),
        ("NaN", vec![1.0, f32::NAN, 3.0]),
        ("+inf", vec![f32::INFINITY, 0.0, 0.0]),
        ("-inf", vec![0.0, 0.0, f32::NEG_INFINITY]),
        ("all zeros under cosine", vec![0.0, 0.0, 0.0]),
        ("squared length overflows", vec![1e30, 1e30, 1e30]),
    ];
    for (what, vector) in &bad {
        t.rejects(
            &format!("upsert {what}"),
            ErrorKind::InvalidInput,
            vectors.upsert("v", "bad", vector.clone(), Metadata::new()),
        )
        .await;
        t.rejects(
            &format!("search {what}"),
            ErrorKind::InvalidInput,
            vectors.search("v", SearchRequest::new(vector.clone(), 3)),
        )
        .await;
    }
    let batch = vec![
        cairn_stores::VectorRecord {
            id: "ok".into(),
            vector: vec![0.5, 0.5, 0.5],
            metadata: Metadata::new(),
        },
        cairn_stores::VectorRecord {
            id: "nan".into(),
            vector: vec![f32::NAN, 0.0, 1.0],
            metadata: Metadata::new(),
        },
    ];
    t.rejects(
        "upsert_batch with one NaN record",
        ErrorKind::InvalidInput,
        vectors.upsert_batch("v", batch),
    )
    .await;
    for dimension in [0, 16_001] {
        t.rejects(
            &format!("collection of dimension {dimension}"),
            ErrorKind::InvalidInput,
            vectors.create_collection("d", dimension, Metric::L2),
        )
        .await;
    }
    t.rejects(
        "same collection, other dimension",
        ErrorKind::Conflict,
        vectors.create_collection("v", 4, Metric::Cosine),
    )
    .await;
    t.rejects(
        "upsert into a missing collection",
        ErrorKind::NotFound,
        vectors.upsert("missing", "x", vec![1.0], Metadata::new()),
    )
    .await;
    assert_eq!(vectors.count("v").await.unwrap(), 1);
    t.row();
    t.done()
}

/// The earliest and latest times `time` can represent: stores reject years outside 0..=9999
/// and accept (and read back exactly) both ends of that range.
pub async fn timestamps_at_the_extremes(b: Arc<dyn StorageBackend>) -> usize {
    seed(&b).await;
    let mut t = Table::new("timestamps_at_the_extremes", &b);
    let min = PrimitiveDateTime::MIN.assume_utc();
    let max = PrimitiveDateTime::MAX.assume_utc();
    let year = |y: i32| {
        time::Date::from_calendar_date(y, time::Month::January, 1)
            .unwrap()
            .midnight()
            .assume_utc()
    };
    let events = GenericEventLogStore::new(b.clone());
    let episodic = GenericEpisodicStore::new(b.clone());
    for (what, at) in [("time::MIN", min), ("year -1", year(-1))] {
        t.rejects(
            &format!("event at {what}"),
            ErrorKind::InvalidInput,
            events.append(Event::new("t.x", json!(1)).at(at)),
        )
        .await;
        t.rejects(
            &format!("turn at {what}"),
            ErrorKind::InvalidInput,
            episodic.append("s", Turn::new(Role::User, "x").at(at)),
        )
        .await;
    }
    // The last representable instant is in year 9999: accepted, exact to the nanosecond.
    let accepted: [OffsetDateTime; 2] = [year(0), max];
    for at in accepted {
        let record = events
            .append(Event::new("t.ok", json!(at.year())).at(at))
            .await
            .unwrap();
        assert_eq!(record.at, at);
        let turn = episodic
            .append("s", Turn::new(Role::User, "ok").at(at))
            .await
            .unwrap();
        assert_eq!(turn.at, at);
        t.row();
    }
    let all = events.query(&EventQuery::default()).await.unwrap();
    let times: Vec<OffsetDateTime> = all.iter().map(|e| e.at).collect();
    assert_eq!(times, accepted, "stored in time order, exact");
    let turns = episodic.read("s", TurnPage::first(10)).await.unwrap();
    let times: Vec<OffsetDateTime> = turns.iter().map(|r| r.at).collect();
    assert_eq!(times, accepted);
    t.row();
    t.done()
}

/// A tenant that was never used reads as empty on every path, and writing it touches no
/// other tenant; malformed tenant ids are rejected.
pub async fn unknown_tenants_read_empty(b: Arc<dyn StorageBackend>) -> usize {
    seed(&b).await;
    let mut t = Table::new("unknown_tenants_read_empty", &b);
    let before = snapshot(&b).await;
    let ghost = tenant_named(&b, "never-used");
    assert_eq!(ghost.get(&key("seed/a")).await.unwrap(), None);
    assert!(!ghost.exists(&key("seed/a")).await.unwrap());
    assert!(ghost.list_keys("").await.unwrap().is_empty());
    let page = ghost.scan("", None, 10).await.unwrap();
    assert!(page.entries.is_empty() && page.next_after.is_none());
    assert_eq!(
        ghost
            .get_batch(&[key("seed/a"), key("seed/b")])
            .await
            .unwrap(),
        vec![None, None]
    );
    assert!(!ghost.delete(&key("seed/a")).await.unwrap());
    assert_eq!(ghost.delete_batch(&[key("seed/b")]).await.unwrap(), 0);
    ghost.clear().await.unwrap();
    t.row();
    assert_eq!(
        GenericWorkflowStore::new(ghost.clone())
            .get("w")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        GenericEpisodicStore::new(ghost.clone())
            .count("s")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        GenericVectorStore::new(ghost.clone())
            .collection("c")
            .await
            .unwrap(),
        None
    );
    assert!(
        GenericEventLogStore::new(ghost.clone())
            .query(&EventQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        GenericAgentStateStore::new(ghost.clone())
            .load_latest("a")
            .await
            .unwrap(),
        None
    );
    t.row();
    assert!(
        snapshot(&b).await == before,
        "reading a ghost tenant changed data"
    );
    t.row();
    for bad in [
        String::new(),
        "a/b".to_owned(),
        "../default".to_owned(),
        "a\0".to_owned(),
        "t".repeat(MAX_TENANT_BYTES + 1),
        "ü".to_owned(),
    ] {
        t.invalid(
            "malformed tenant id",
            ErrorKind::InvalidInput,
            TenantId::new(bad),
        );
    }
    t.done()
}

/// Moves the workflow state machine does not allow are `InvalidInput` and change nothing.
pub async fn illegal_workflow_transitions(b: Arc<dyn StorageBackend>) -> usize {
    let workflows = GenericWorkflowStore::new(b.clone());
    workflows.create(Some("w"), "job", json!({})).await.unwrap();
    let mut t = Table::new("illegal_workflow_transitions", &b);
    let complete = || Transition::Complete { output: json!(1) };
    let fail = || Transition::Fail { error: "e".into() };
    t.rejects(
        "pending -> completed",
        ErrorKind::InvalidInput,
        workflows.transition("w", complete()),
    )
    .await;
    t.rejects(
        "pending -> failed",
        ErrorKind::InvalidInput,
        workflows.transition("w", fail()),
    )
    .await;
    workflows.transition("w", Transition::Start).await.unwrap();
    t.rejects(
        "running -> running",
        ErrorKind::InvalidInput,
        workflows.transition("w", Transition::Start),
    )
    .await;
    workflows.transition("w", complete()).await.unwrap();
    for (what, transition) in [
        ("completed -> running", Transition::Start),
        ("completed -> completed", complete()),
        ("completed -> failed", fail()),
        ("completed -> cancelled", Transition::Cancel),
    ] {
        t.rejects(
            what,
            ErrorKind::InvalidInput,
            workflows.transition("w", transition),
        )
        .await;
    }
    t.rejects(
        "transition of an unknown workflow",
        ErrorKind::NotFound,
        workflows.transition("nope", Transition::Start),
    )
    .await;
    let stored = workflows.get("w").await.unwrap().unwrap();
    assert_eq!(stored.status, WorkflowStatus::Completed);
    assert_eq!(stored.output, Some(json!(1)));
    t.row();
    t.done()
}

/// Damaged variants of a valid stored value: empty, garbage, JSON without the record header,
/// truncated, and one byte flipped.
fn damaged(original: &Bytes) -> Vec<(&'static str, Bytes)> {
    let mut flipped = original.to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    vec![
        ("empty", Bytes::new()),
        ("garbage", Bytes::from_static(b"\xff\x00garbage{\"")),
        ("json without header", Bytes::from_static(b"{\"id\":\"x\"}")),
        ("truncated", original.slice(..original.len() - 1)),
        ("one byte flipped", Bytes::from(flipped)),
    ]
}

/// Overwrites `record_key` with each damaged variant, expects `read` to fail with
/// `Corruption` without changing anything, and restores the original.
async fn corrupt_and_read<T: Debug, F, Fut>(
    t: &mut Table,
    b: &Arc<dyn StorageBackend>,
    what: &str,
    record_key: &Key,
    read: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let original = b.get(record_key).await.unwrap().expect("record exists");
    for (how, bytes) in damaged(&original) {
        b.set(record_key, bytes).await.unwrap();
        t.rejects(&format!("{what}: {how}"), ErrorKind::Corruption, read())
            .await;
    }
    b.set(record_key, original).await.unwrap();
    read().await.expect("the restored record reads again");
}

/// Garbage written through the key-value handle under a store's record key reads as
/// `Corruption`: never a panic, never different data.
pub async fn malformed_stored_bytes_are_corruption(b: Arc<dyn StorageBackend>) -> usize {
    let mut t = Table::new("malformed_stored_bytes_are_corruption", &b);

    let workflows = GenericWorkflowStore::new(b.clone());
    workflows
        .create(Some("w"), "job", json!({"a": 1}))
        .await
        .unwrap();
    let k = WorkflowKey::Record { id: "w" }.key().unwrap();
    corrupt_and_read(&mut t, &b, "workflow record", &k, || workflows.get("w")).await;

    let episodic = GenericEpisodicStore::new(b.clone());
    let turn = episodic
        .append("s", Turn::new(Role::Assistant, "hello"))
        .await
        .unwrap();
    let k = EpisodicKey::Turn {
        session: "s",
        seq: turn.seq,
    }
    .key()
    .unwrap();
    corrupt_and_read(&mut t, &b, "episodic turn", &k, || {
        episodic.read("s", TurnPage::first(10))
    })
    .await;
    let k = EpisodicKey::Head { session: "s" }.key().unwrap();
    corrupt_and_read(&mut t, &b, "episodic head", &k, || {
        episodic.append("s", Turn::new(Role::User, "again"))
    })
    .await;

    let vectors = GenericVectorStore::new(b.clone());
    vectors
        .create_collection("c", 2, Metric::Cosine)
        .await
        .unwrap();
    vectors
        .upsert("c", "v", vec![1.0, 0.0], Metadata::new())
        .await
        .unwrap();
    let vector_keys = b.list_keys(&VectorKey::all_vectors_prefix()).await.unwrap();
    assert_eq!(vector_keys.len(), 1);
    corrupt_and_read(&mut t, &b, "vector get", &vector_keys[0], || {
        vectors.get("c", "v")
    })
    .await;
    corrupt_and_read(&mut t, &b, "vector search", &vector_keys[0], || {
        vectors.search("c", SearchRequest::new(vec![1.0, 1.0], 1))
    })
    .await;
    let k = VectorKey::Collection { name: "c" }.key().unwrap();
    corrupt_and_read(&mut t, &b, "vector collection", &k, || vectors.count("c")).await;

    let agents = GenericAgentStateStore::new(b.clone());
    let info = agents.save("a", &json!({"goal": "x"}), None).await.unwrap();
    let k = AgentStateKey::Info {
        agent: "a",
        version: info.version,
    }
    .key()
    .unwrap();
    corrupt_and_read(&mut t, &b, "agent snapshot info", &k, || {
        agents.load_latest("a")
    })
    .await;

    let events = GenericEventLogStore::new(b.clone());
    events.append(Event::new("e.x", json!(1))).await.unwrap();
    let event_keys = b.list_keys("ev/at/").await.unwrap();
    let everything = EventQuery::default();
    assert_eq!(event_keys.len(), 1);
    corrupt_and_read(&mut t, &b, "event record", &event_keys[0], || {
        events.query(&everything)
    })
    .await;
    t.done()
}

/// The payload of an agent snapshot is checked against its SHA-256: different but valid JSON
/// under the data key is `Corruption`, not the other state.
pub async fn swapped_agent_state_payload_is_corruption(b: Arc<dyn StorageBackend>) -> usize {
    let agents = GenericAgentStateStore::new(b.clone());
    let info = agents.save("a", &json!({"n": 1}), None).await.unwrap();
    let k = AgentStateKey::Data {
        agent: "a",
        version: info.version,
    }
    .key()
    .unwrap();
    let mut t = Table::new("swapped_agent_state_payload_is_corruption", &b);
    for payload in [&b"{\"n\":2}"[..], b"", b"not json", b"{\"n\":1} "] {
        b.set(&k, Bytes::copy_from_slice(payload)).await.unwrap();
        t.rejects(
            "swapped payload",
            ErrorKind::Corruption,
            agents.load_latest("a"),
        )
        .await;
    }
    t.done()
}
