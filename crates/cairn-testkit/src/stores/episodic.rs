//! Conformance cases for [`EpisodicStore`].
//!
//! [`episodic_suite!`](crate::episodic_suite) takes a factory returning two stores on two
//! fresh, distinct tenants; every case but the isolation one uses only the first.

use std::sync::Arc;

use cairn_core::{ErrorKind, StorageBackend};
use cairn_stores::episodic::keys::EpisodicKey;
use cairn_stores::episodic::{EpisodicSession, EpisodicStore, Role, Turn, TurnPage, TurnRecord};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::probe::{expect_kind, flip_byte};

const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn minute(n: i64) -> OffsetDateTime {
    T0 + Duration::minutes(n)
}

fn seqs(records: &[TurnRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// Appends `n` turns, cycling user/assistant, one minute apart from `T0`.
async fn append_n(store: &Arc<dyn EpisodicStore>, session: &str, n: u64) -> Vec<TurnRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        let turn = Turn::new(role, format!("turn {}", i + 1)).at(minute(i as i64));
        out.push(store.append(session, turn).await.unwrap());
    }
    out
}

/// Appends number turns from 1 and reads them back in order, with their content, metadata and
/// time unchanged.
pub async fn appends_number_turns_and_read_in_order(store: Arc<dyn EpisodicStore>) {
    let first = store
        .append(
            "s",
            Turn::new(Role::System, "be brief")
                .at(datetime!(2026-03-01 12:00:00.123456789 +02:00))
                .with_metadata("model", json!("m-1")),
        )
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.session_id, "s");
    assert_eq!(first.at, datetime!(2026-03-01 10:00:00.123456789 UTC));
    let second = store.append("s", Turn::new(Role::User, "")).await.unwrap();
    let third = store
        .append("s", Turn::new(Role::Tool, "{\"ok\":true}"))
        .await
        .unwrap();
    assert_eq!((second.seq, third.seq), (2, 3));
    let read = store.read("s", TurnPage::first(10)).await.unwrap();
    assert_eq!(read, vec![first.clone(), second, third]);
    assert_eq!(read[0].metadata["model"], json!("m-1"));
    assert_eq!(read[0].role, Role::System);
    assert_eq!(store.count("s").await.unwrap(), 3);
    assert_eq!(store.count("unknown").await.unwrap(), 0);
    assert!(
        store
            .read("unknown", TurnPage::first(10))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Pages of 3 over 7 turns: 1-3, 4-6, 7, then nothing; no gaps or repeats.
pub async fn read_pages_across_boundaries(store: Arc<dyn EpisodicStore>) {
    let all = append_n(&store, "s", 7).await;
    let page1 = store.read("s", TurnPage::first(3)).await.unwrap();
    let page2 = store.read("s", TurnPage::after(3, 3)).await.unwrap();
    let page3 = store.read("s", TurnPage::after(6, 3)).await.unwrap();
    let page4 = store.read("s", TurnPage::after(7, 3)).await.unwrap();
    assert_eq!(seqs(&page1), [1, 2, 3]);
    assert_eq!(seqs(&page2), [4, 5, 6]);
    assert_eq!(seqs(&page3), [7]);
    assert!(page4.is_empty());
    let joined: Vec<_> = [page1, page2, page3].concat();
    assert_eq!(joined, all);
    assert_eq!(
        seqs(&store.read("s", TurnPage::after(0, 2)).await.unwrap()),
        [1, 2]
    );
}

/// `read_range` is `from <= at < to`, ordered by time (a back-dated turn comes first), and
/// honours its limit.
pub async fn read_range_is_half_open_by_time(store: Arc<dyn EpisodicStore>) {
    append_n(&store, "s", 5).await; // minutes 0..=4, seqs 1..=5
    let back = store
        .append("s", Turn::new(Role::User, "late entry").at(minute(-10)))
        .await
        .unwrap();
    assert_eq!(back.seq, 6);
    let range = |from, to, limit| store.read_range("s", from, to, limit);
    assert_eq!(
        seqs(&range(minute(1), minute(3), 100).await.unwrap()),
        [2, 3]
    );
    assert_eq!(
        seqs(&range(minute(-60), minute(60), 100).await.unwrap()),
        [6, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(&range(minute(-60), minute(60), 2).await.unwrap()),
        [6, 1]
    );
    assert!(range(minute(2), minute(2), 100).await.unwrap().is_empty());
    assert_eq!(seqs(&range(minute(4), minute(5), 100).await.unwrap()), [5]);
    assert!(range(minute(5), minute(60), 100).await.unwrap().is_empty());
}

/// `by_role` returns only that role's turns, in `seq` order, paged by `after_seq`.
pub async fn by_role_filters_and_pages(store: Arc<dyn EpisodicStore>) {
    append_n(&store, "s", 6).await; // user: 1,3,5; assistant: 2,4,6
    store
        .append("s", Turn::new(Role::Tool, "result"))
        .await
        .unwrap();
    let user = store.by_role("s", Role::User, TurnPage::first(10)).await;
    assert_eq!(seqs(&user.unwrap()), [1, 3, 5]);
    let assistant = store
        .by_role("s", Role::Assistant, TurnPage::first(2))
        .await
        .unwrap();
    assert_eq!(seqs(&assistant), [2, 4]);
    let rest = store
        .by_role("s", Role::Assistant, TurnPage::after(4, 2))
        .await
        .unwrap();
    assert_eq!(seqs(&rest), [6]);
    assert!(rest.iter().all(|t| t.role == Role::Assistant));
    let tool = store.by_role("s", Role::Tool, TurnPage::first(10)).await;
    assert_eq!(tool.unwrap()[0].content, "result");
    let system = store.by_role("s", Role::System, TurnPage::first(10)).await;
    assert!(system.unwrap().is_empty());
}

/// 50 concurrent appends to one session get the `seq`s 1..=50, each exactly once.
pub async fn concurrent_appends_get_distinct_seqs(store: Arc<dyn EpisodicStore>) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append("busy", Turn::new(Role::User, format!("msg {i}")))
                    .await
                    .unwrap()
                    .seq
            })
        })
        .collect();
    let mut got: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=50).collect::<Vec<_>>());
    assert_eq!(store.count("busy").await.unwrap(), 50);
    let read = store.read("busy", TurnPage::first(100)).await.unwrap();
    assert_eq!(seqs(&read), (1..=50).collect::<Vec<_>>());
    let mut contents: Vec<_> = read.into_iter().map(|t| t.content).collect();
    contents.sort();
    contents.dedup();
    assert_eq!(contents.len(), 50);
}

/// `delete_session` removes the turns and their indexes, reports how many, leaves other
/// sessions alone, and a new append starts again at 1.
pub async fn delete_session_removes_everything(store: Arc<dyn EpisodicStore>) {
    append_n(&store, "gone", 3).await;
    append_n(&store, "kept", 2).await;
    assert_eq!(store.delete_session("gone").await.unwrap(), 3);
    assert_eq!(store.count("gone").await.unwrap(), 0);
    let all = TurnPage::first(10);
    assert!(store.read("gone", all).await.unwrap().is_empty());
    assert!(
        store
            .by_role("gone", Role::User, all)
            .await
            .unwrap()
            .is_empty()
    );
    let range = store.read_range("gone", minute(-60), minute(60), 10).await;
    assert!(range.unwrap().is_empty());
    assert_eq!(seqs(&store.read("kept", all).await.unwrap()), [1, 2]);
    let sessions = store.list_sessions(None, 10).await.unwrap();
    assert_eq!(
        sessions,
        [EpisodicSession {
            session_id: "kept".into(),
            turns: 2
        }]
    );
    assert_eq!(store.delete_session("gone").await.unwrap(), 0);
    assert_eq!(store.delete_session("never").await.unwrap(), 0);
    let again = store.append("gone", Turn::new(Role::User, "hi")).await;
    assert_eq!(again.unwrap().seq, 1);
}

/// `list_sessions` pages in escaped-id order; ids with `/` and `%` stay apart.
pub async fn list_sessions_pages_and_keeps_ids_apart(store: Arc<dyn EpisodicStore>) {
    for (session, turns) in [("s2", 2), ("a/b", 1), ("s1", 3), ("a%2Fb", 4), ("a", 5)] {
        append_n(&store, session, turns).await;
    }
    let first = store.list_sessions(None, 3).await.unwrap();
    let names: Vec<_> = first.iter().map(|s| s.session_id.as_str()).collect();
    // Escaped: "a", "a%252Fb", "a%2Fb", "s1", "s2".
    assert_eq!(names, ["a", "a%2Fb", "a/b"]);
    assert_eq!(first.iter().map(|s| s.turns).collect::<Vec<_>>(), [5, 4, 1]);
    let rest = store.list_sessions(Some("a/b"), 3).await.unwrap();
    let names: Vec<_> = rest.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(names, ["s1", "s2"]);
    assert!(store.list_sessions(Some("s2"), 3).await.unwrap().is_empty());
    assert_eq!(store.count("a/b").await.unwrap(), 1);
    assert_eq!(store.count("a%2Fb").await.unwrap(), 4);
}

/// Bad ids, limits, ranges and unencodable times are `InvalidInput` and write nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn EpisodicStore>) {
    let turn = || Turn::new(Role::User, "x");
    let long = "x".repeat(257);
    for bad in ["", long.as_str(), "nul\0byte"] {
        expect_kind(store.append(bad, turn()).await, ErrorKind::InvalidInput);
        expect_kind(
            store.read(bad, TurnPage::first(1)).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(store.count(bad).await, ErrorKind::InvalidInput);
        expect_kind(store.delete_session(bad).await, ErrorKind::InvalidInput);
    }
    let max_id = "y".repeat(256);
    assert_eq!(store.append(&max_id, turn()).await.unwrap().seq, 1);
    let negative_year = turn().at(datetime!(-0001-01-01 0:00 UTC));
    expect_kind(
        store.append("s", negative_year).await,
        ErrorKind::InvalidInput,
    );
    for limit in [0, cairn_core::MAX_SCAN_LIMIT + 1] {
        expect_kind(
            store.read("s", TurnPage::first(limit)).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(
            store.by_role("s", Role::User, TurnPage::first(limit)).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(
            store.list_sessions(None, limit).await,
            ErrorKind::InvalidInput,
        );
    }
    expect_kind(
        store.read_range("s", minute(2), minute(1), 10).await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(store.count("s").await.unwrap(), 0);
    let sessions = store.list_sessions(None, 10).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, max_id);
}

/// Two tenants never see each other's sessions, and number their turns independently.
pub async fn tenants_are_isolated(store: Arc<dyn EpisodicStore>, other: Arc<dyn EpisodicStore>) {
    append_n(&store, "s", 3).await;
    assert_eq!(other.count("s").await.unwrap(), 0);
    assert!(
        other
            .read("s", TurnPage::first(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(other.list_sessions(None, 10).await.unwrap().is_empty());
    let theirs = other.append("s", Turn::new(Role::User, "mine")).await;
    assert_eq!(theirs.unwrap().seq, 1);
    assert_eq!(other.delete_session("s").await.unwrap(), 1);
    assert_eq!(store.count("s").await.unwrap(), 3);
}

/// A damaged stored turn or counter reads as `Corruption`, never as a panic or wrong data,
/// and an append onto a damaged counter writes nothing.
pub async fn damaged_turns_are_corruption(
    store: Arc<dyn EpisodicStore>,
    backend: Arc<dyn StorageBackend>,
) {
    append_n(&store, "s", 2).await;
    let turn = EpisodicKey::Turn {
        session: "s",
        seq: 2,
    }
    .key()
    .unwrap();
    let original = flip_byte(&*backend, &turn, 0).await;
    expect_kind(
        store.read("s", TurnPage::first(10)).await,
        ErrorKind::Corruption,
    );
    expect_kind(
        store
            .by_role("s", Role::Assistant, TurnPage::first(10))
            .await,
        ErrorKind::Corruption,
    );
    backend.set(&turn, original).await.unwrap();
    let head = EpisodicKey::Head { session: "s" }.key().unwrap();
    let len = backend.get(&head).await.unwrap().unwrap().len();
    flip_byte(&*backend, &head, len - 1).await;
    expect_kind(store.count("s").await, ErrorKind::Corruption);
    expect_kind(
        store.append("s", Turn::new(Role::User, "x")).await,
        ErrorKind::Corruption,
    );
    assert_eq!(
        seqs(&store.read("s", TurnPage::first(10)).await.unwrap()),
        [1, 2]
    );
}

/// Expands to one `#[tokio::test]` per case of the episodic suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn EpisodicStore>, Arc<dyn EpisodicStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! episodic_suite {
    ($factory:path) => {
        $crate::__store_cases!(store episodic, $factory;
            appends_number_turns_and_read_in_order,
            read_pages_across_boundaries,
            read_range_is_half_open_by_time,
            by_role_filters_and_pages,
            concurrent_appends_get_distinct_seqs,
            delete_session_removes_everything,
            list_sessions_pages_and_keeps_ids_apart,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair episodic, $factory; tenants_are_isolated);
    };
}

/// Runs [`episodic_suite!`](crate::episodic_suite) on `GenericEpisodicStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! episodic_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(episodic, episodic_suite, EpisodicStore, GenericEpisodicStore, $backend;
            store_and_backend: [damaged_turns_are_corruption];
            backend: []);
    };
}
