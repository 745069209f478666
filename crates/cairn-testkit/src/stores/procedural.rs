//! Conformance cases for [`ProceduralStore`]: procedures by category, atomic outcome
//! counters and rankings.
//!
//! Cases take the store under test on a fresh, empty tenant; [`tenants_are_isolated`] also
//! takes a store on a second tenant of the same engine, and
//! [`corrupted_record_is_corruption`] (generic implementation only) the backend the store
//! writes to. [`procedural_suite!`](crate::procedural_suite) wires every case for a factory
//! returning two stores on two tenants;
//! [`procedural_generic_suite!`](crate::procedural_generic_suite) wires
//! `GenericProceduralStore` over a key-value backend factory.

use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind, StorageBackend, StorageBackendExt};
use cairn_stores::paging::PageRequest;
use cairn_stores::procedural::{OutcomeStats, ProceduralStore, Procedure, StoredProcedure};
use serde_json::{Map, json};
use time::OffsetDateTime;

/// Expands to one `#[tokio::test]` per case of the procedural suite. `$factory` is a path to an
/// `async fn() -> (Arc<dyn ProceduralStore>, Arc<dyn ProceduralStore>)`: two stores on two fresh tenants of
/// one engine; only the isolation case uses the second.
#[macro_export]
macro_rules! procedural_suite {
    ($factory:path) => {
        $crate::__store_cases!(store procedural, $factory;
            upsert_and_get_round_trip,
            replacing_a_definition_keeps_counters,
            record_outcome_counts_and_stamps,
            concurrent_outcomes_are_exact,
            concurrent_outcomes_and_category_moves_lose_nothing,
            category_listing_pages_and_follows_changes,
            delete_removes_record_and_listing,
            ranks_by_success_rate,
            ranks_by_frequency,
            bad_input_is_rejected_and_changes_nothing,
        );
        $crate::__store_cases!(pair procedural, $factory; tenants_are_isolated);
    };
}

/// Runs [`procedural_suite!`](crate::procedural_suite) on `GenericProceduralStore` over the key-value backend
/// factory `$backend`, plus the cases that inspect or damage the stored bytes.
#[macro_export]
macro_rules! procedural_generic_suite {
    ($backend:ident) => {
        $crate::__generic_store_suite!(procedural, procedural_suite, ProceduralStore, GenericProceduralStore, $backend;
            store_and_backend: [corrupted_record_is_corruption];
            backend: []);
    };
}

fn procedure(id: &str, category: &str) -> Procedure {
    let mut metadata = Map::new();
    metadata.insert("author".to_owned(), json!("tests"));
    Procedure {
        id: id.to_owned(),
        name: format!("Procedure {id}"),
        category: category.to_owned(),
        description: format!("Does {id}."),
        content: json!({"steps": [format!("{id}: first"), format!("{id}: second")]}),
        metadata,
    }
}

async fn create(store: &Arc<dyn ProceduralStore>, ids: &[&str], category: &str) {
    for id in ids {
        store
            .upsert_procedure(procedure(id, category))
            .await
            .unwrap();
    }
}

/// Records `successes` successes and `failures` failures for `id`, one call each.
async fn outcomes(store: &Arc<dyn ProceduralStore>, id: &str, successes: u32, failures: u32) {
    for _ in 0..successes {
        store.record_outcome(id, true).await.unwrap();
    }
    for _ in 0..failures {
        store.record_outcome(id, false).await.unwrap();
    }
}

fn ids(records: &[StoredProcedure]) -> Vec<&str> {
    records.iter().map(|r| r.procedure.id.as_str()).collect()
}

async fn category_ids(store: &Arc<dyn ProceduralStore>, category: &str) -> Vec<String> {
    let page = store
        .list_by_category(category, PageRequest::first(1000))
        .await
        .unwrap();
    assert_eq!(page.next_after, None);
    page.items.into_iter().map(|r| r.procedure.id).collect()
}

fn counts(stats: &OutcomeStats) -> (u64, u64) {
    (stats.successes, stats.failures)
}

/// A new procedure comes back exactly, with zero counters and equal creation and update
/// times; an unknown id is `None`.
pub async fn upsert_and_get_round_trip(store: Arc<dyn ProceduralStore>) {
    let before = OffsetDateTime::now_utc();
    let stored = store
        .upsert_procedure(procedure("deploy", "ops"))
        .await
        .unwrap();
    assert_eq!(stored.procedure, procedure("deploy", "ops"));
    assert_eq!(stored.stats, OutcomeStats::default());
    assert_eq!(stored.stats.success_rate(), None);
    assert!(stored.created_at >= before);
    assert_eq!(stored.created_at, stored.updated_at);
    assert_eq!(store.get("deploy").await.unwrap(), Some(stored));
    assert_eq!(store.get("missing").await.unwrap(), None);
}

/// Replacing a definition keeps the counters and creation time and moves the category.
pub async fn replacing_a_definition_keeps_counters(store: Arc<dyn ProceduralStore>) {
    let first = store
        .upsert_procedure(procedure("deploy", "ops"))
        .await
        .unwrap();
    outcomes(&store, "deploy", 2, 1).await;
    let changed = Procedure {
        description: "Ships it.".to_owned(),
        content: json!(["build", "push"]),
        ..procedure("deploy", "release")
    };
    let second = store.upsert_procedure(changed.clone()).await.unwrap();
    assert_eq!(second.procedure, changed);
    assert_eq!(counts(&second.stats), (2, 1));
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(store.get("deploy").await.unwrap(), Some(second));
    assert!(category_ids(&store, "ops").await.is_empty());
    assert_eq!(category_ids(&store, "release").await, ["deploy"]);
}

/// Each outcome adds exactly one to its counter and stamps `last_used_at`; an unknown id is
/// `NotFound`.
pub async fn record_outcome_counts_and_stamps(store: Arc<dyn ProceduralStore>) {
    create(&store, &["p"], "c").await;
    let before = OffsetDateTime::now_utc();
    let first = store.record_outcome("p", true).await.unwrap();
    assert_eq!(counts(&first), (1, 0));
    let stamped = first.last_used_at.expect("stamped");
    assert!(stamped >= before);
    outcomes(&store, "p", 2, 1).await;
    let last = store.record_outcome("p", false).await.unwrap();
    assert_eq!(counts(&last), (3, 2));
    assert_eq!(last.uses(), 5);
    assert_eq!(last.success_rate(), Some(0.6));
    assert!(last.last_used_at.expect("stamped") >= stamped);
    assert_eq!(store.get("p").await.unwrap().unwrap().stats, last);
    let err = store.record_outcome("nope", true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(store.get("nope").await.unwrap(), None);
}

async fn concurrently(store: &Arc<dyn ProceduralStore>, id: &str, outcomes: Vec<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for success in outcomes {
        let store = store.clone();
        let id = id.to_owned();
        tasks.spawn(async move { store.record_outcome(&id, success).await.unwrap() });
    }
    tasks.join_all().await;
}

/// 100 concurrent successes count 100; 100 concurrent mixed outcomes (60 successes, 40
/// failures) count exactly that.
pub async fn concurrent_outcomes_are_exact(store: Arc<dyn ProceduralStore>) {
    create(&store, &["hot", "mixed"], "c").await;
    concurrently(&store, "hot", vec![true; 100]).await;
    let hot = store.get("hot").await.unwrap().unwrap();
    assert_eq!(counts(&hot.stats), (100, 0));
    let mixed: Vec<bool> = (0..100).map(|i| i % 5 < 3).collect();
    concurrently(&store, "mixed", mixed).await;
    let mixed = store.get("mixed").await.unwrap().unwrap();
    assert_eq!(counts(&mixed.stats), (60, 40));
}

/// Outcomes racing definition updates that move the procedure between categories: every
/// count survives and the category listing follows the last definition.
pub async fn concurrent_outcomes_and_category_moves_lose_nothing(store: Arc<dyn ProceduralStore>) {
    create(&store, &["p"], "even").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u32 {
        let store = store.clone();
        tasks.spawn(async move {
            store.record_outcome("p", i % 2 == 0).await.unwrap();
        });
    }
    for i in 0..10u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let category = if i % 2 == 0 { "even" } else { "odd" };
            store
                .upsert_procedure(procedure("p", category))
                .await
                .unwrap();
        });
    }
    tasks.join_all().await;
    let stored = store.get("p").await.unwrap().unwrap();
    assert_eq!(counts(&stored.stats), (20, 20));
    let category = stored.procedure.category.clone();
    let (here, there) = if category == "even" {
        ("even", "odd")
    } else {
        ("odd", "even")
    };
    assert_eq!(category_ids(&store, here).await, ["p"]);
    assert!(category_ids(&store, there).await.is_empty());
}

/// Category listings are ordered by id and page with an exact `next_after`; a moved
/// procedure leaves its old category's listing.
pub async fn category_listing_pages_and_follows_changes(store: Arc<dyn ProceduralStore>) {
    create(&store, &["c5", "c3", "c1", "c4", "c2"], "coding").await;
    create(&store, &["w1", "w2"], "writing").await;
    let mut pages = Vec::new();
    let mut request = Some(PageRequest::first(2));
    while let Some(page_request) = request {
        let page = store
            .list_by_category("coding", page_request.clone())
            .await
            .unwrap();
        pages.push(ids(&page.items).join(","));
        request = page_request.next(page.next_after.as_deref());
    }
    assert_eq!(pages, ["c1,c2", "c3,c4", "c5"]);
    store
        .upsert_procedure(procedure("c3", "writing"))
        .await
        .unwrap();
    assert_eq!(
        category_ids(&store, "coding").await,
        ["c1", "c2", "c4", "c5"]
    );
    assert_eq!(category_ids(&store, "writing").await, ["c3", "w1", "w2"]);
    let exact = store
        .list_by_category("writing", PageRequest::first(3))
        .await
        .unwrap();
    assert_eq!(
        (ids(&exact.items), exact.next_after),
        (vec!["c3", "w1", "w2"], None)
    );
    assert!(category_ids(&store, "cooking").await.is_empty());
}

/// Delete removes the record, its counters and its listing entry; deleting again is `false`.
pub async fn delete_removes_record_and_listing(store: Arc<dyn ProceduralStore>) {
    create(&store, &["a", "b"], "c").await;
    outcomes(&store, "a", 1, 0).await;
    assert!(store.delete("a").await.unwrap());
    assert!(!store.delete("a").await.unwrap());
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(category_ids(&store, "c").await, ["b"]);
    let top = store.top_by_frequency(None, 10).await.unwrap();
    assert!(top.is_empty());
    let err = store.record_outcome("a", true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Re-creating starts from zero.
    let again = store.upsert_procedure(procedure("a", "c")).await.unwrap();
    assert_eq!(again.stats, OutcomeStats::default());
}

/// Builds the ranking fixture: in `skills`, a 3/4, b 9/12, c 1/1, d 0/2, e 2/2, g 3/4, f
/// unused; in `other`, z 5/5.
async fn ranking_fixture(store: &Arc<dyn ProceduralStore>) {
    create(store, &["a", "b", "c", "d", "e", "f", "g"], "skills").await;
    create(store, &["z"], "other").await;
    for (id, successes, failures) in [
        ("a", 3, 1),
        ("b", 9, 3),
        ("c", 1, 0),
        ("d", 0, 2),
        ("e", 2, 0),
        ("g", 3, 1),
        ("z", 5, 0),
    ] {
        outcomes(store, id, successes, failures).await;
    }
}

/// Success-rate ranking: best rate first, ties to more uses then smaller id; unused and
/// under-`min_uses` procedures left out; category filter and limit apply.
pub async fn ranks_by_success_rate(store: Arc<dyn ProceduralStore>) {
    ranking_fixture(&store).await;
    let top = |category, limit, min_uses| {
        let store = store.clone();
        async move {
            let ranked = store
                .top_by_success_rate(category, limit, min_uses)
                .await
                .unwrap();
            ids(&ranked).join(",")
        }
    };
    assert_eq!(top(Some("skills"), 10, 0).await, "e,c,b,a,g,d");
    assert_eq!(top(None, 10, 0).await, "z,e,c,b,a,g,d");
    assert_eq!(top(Some("skills"), 2, 0).await, "e,c");
    assert_eq!(top(Some("skills"), 10, 3).await, "b,a,g");
    assert_eq!(top(Some("skills"), 10, 13).await, "");
    assert_eq!(top(Some("other"), 10, 1).await, "z");
    assert_eq!(top(Some("none"), 10, 0).await, "");
}

/// Frequency ranking: most uses first, ties to smaller id; unused procedures left out.
pub async fn ranks_by_frequency(store: Arc<dyn ProceduralStore>) {
    ranking_fixture(&store).await;
    let top = |category, limit| {
        let store = store.clone();
        async move {
            let ranked = store.top_by_frequency(category, limit).await.unwrap();
            ids(&ranked).join(",")
        }
    };
    assert_eq!(top(Some("skills"), 10).await, "b,a,g,d,e,c");
    assert_eq!(top(None, 3).await, "b,z,a");
    assert_eq!(top(Some("other"), 10).await, "z");
}

/// Empty or over-long ids and categories, empty names and bad limits are `InvalidInput`
/// and change nothing.
pub async fn bad_input_is_rejected_and_changes_nothing(store: Arc<dyn ProceduralStore>) {
    let kept = store
        .upsert_procedure(procedure("kept", "c"))
        .await
        .unwrap();
    let long = "x".repeat(257);
    let bad = [
        procedure("", "c"),
        procedure(&long, "c"),
        procedure("kept", ""),
        procedure("kept", &long),
        Procedure {
            name: String::new(),
            ..procedure("kept", "moved")
        },
    ];
    for input in bad {
        let err = store.upsert_procedure(input.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{input:?}: {err}");
    }
    for id in ["", long.as_str()] {
        let kind = |r: Result<(), cairn_core::Error>| r.unwrap_err().kind();
        assert_eq!(
            kind(store.get(id).await.map(|_| ())),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.delete(id).await.map(|_| ())),
            ErrorKind::InvalidInput
        );
        let outcome = store.record_outcome(id, true).await.map(|_| ());
        assert_eq!(kind(outcome), ErrorKind::InvalidInput);
    }
    for limit in [0, 1001] {
        let errs = [
            store.top_by_success_rate(None, limit, 0).await.unwrap_err(),
            store.top_by_frequency(None, limit).await.unwrap_err(),
            store
                .list_by_category("c", PageRequest::first(limit))
                .await
                .unwrap_err(),
        ];
        for err in errs {
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "limit {limit}: {err}");
        }
    }
    let err = store
        .list_by_category("", PageRequest::first(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(store.get("kept").await.unwrap(), Some(kept));
    assert_eq!(category_ids(&store, "c").await, ["kept"]);
    assert!(category_ids(&store, "moved").await.is_empty());
}

/// Two tenants never see each other's procedures, counters, listings or rankings.
pub async fn tenants_are_isolated(
    store: Arc<dyn ProceduralStore>,
    other: Arc<dyn ProceduralStore>,
) {
    create(&store, &["p"], "c").await;
    outcomes(&store, "p", 3, 0).await;
    assert_eq!(other.get("p").await.unwrap(), None);
    assert!(category_ids(&other, "c").await.is_empty());
    assert!(other.top_by_frequency(None, 10).await.unwrap().is_empty());
    let err = other.record_outcome("p", true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    other
        .upsert_procedure(procedure("p", "elsewhere"))
        .await
        .unwrap();
    outcomes(&other, "p", 0, 1).await;
    assert!(!other.delete("missing").await.unwrap());
    let mine = store.get("p").await.unwrap().unwrap();
    assert_eq!(
        (mine.procedure.category.as_str(), counts(&mine.stats)),
        ("c", (3, 0))
    );
    assert_eq!(category_ids(&store, "c").await, ["p"]);
    assert!(category_ids(&store, "elsewhere").await.is_empty());
    assert!(other.delete("p").await.unwrap());
    assert!(store.get("p").await.unwrap().is_some());
}

/// Generic implementation: flipping any byte of the stored record makes reads, listings,
/// rankings and outcomes `Corruption`, never a panic or wrong data; delete still removes it.
pub async fn corrupted_record_is_corruption(
    store: Arc<dyn ProceduralStore>,
    backend: Arc<dyn StorageBackend>,
) {
    let stored = store
        .upsert_procedure(Procedure {
            description: "naïve ☃ 12345".to_owned(),
            ..procedure("p", "c")
        })
        .await
        .unwrap();
    store.record_outcome("p", true).await.unwrap();
    let entries = backend.scan_all("", 100).await.unwrap();
    let records: Vec<_> = entries.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert_eq!(
        records.len(),
        1,
        "one record and an empty index entry: {entries:?}"
    );
    let (key, value) = records[0];
    for i in 0..value.len() {
        let mut damaged = value.to_vec();
        damaged[i] ^= 0xFF;
        backend.set(key, Bytes::from(damaged)).await.unwrap();
        match store.get("p").await {
            Err(err) => assert_eq!(err.kind(), ErrorKind::Corruption, "byte {i}: {err}"),
            Ok(got) => panic!("byte {i} flipped, get returned {got:?}"),
        }
    }
    let kind = |r: Result<(), cairn_core::Error>| r.unwrap_err().kind();
    let listing = store.list_by_category("c", PageRequest::first(10)).await;
    assert_eq!(kind(listing.map(|_| ())), ErrorKind::Corruption);
    let ranking = store.top_by_frequency(None, 10).await;
    assert_eq!(kind(ranking.map(|_| ())), ErrorKind::Corruption);
    let outcome = store.record_outcome("p", true).await;
    assert_eq!(kind(outcome.map(|_| ())), ErrorKind::Corruption);
    let upsert = store.upsert_procedure(procedure("p", "c")).await;
    assert_eq!(kind(upsert.map(|_| ())), ErrorKind::Corruption);

    backend.set(key, value.clone()).await.unwrap();
    let healed = store.get("p").await.unwrap().unwrap();
    assert_eq!(
        (healed.procedure, counts(&healed.stats)),
        (stored.procedure, (1, 0))
    );

    backend
        .set(key, Bytes::from_static(b"\x01{"))
        .await
        .unwrap();
    assert!(store.delete("p").await.unwrap());
    assert_eq!(store.get("p").await.unwrap(), None);
    assert!(category_ids(&store, "c").await.is_empty());
}
