//! Conformance cases for the [`StorageBackend`] key-value contract.
//!
//! Each case names the `# Behavior` sentence it checks.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_core::{
    Bytes, ErrorKind, Key, MAX_KEY_BYTES, MAX_SCAN_LIMIT, MAX_VALUE_BYTES, StorageBackend,
    StorageBackendExt, WriteBatch,
};

use crate::tenant_named;

/// Builds a key, panicking on invalid input (test helper).
pub fn key(text: &str) -> Key {
    Key::new(text).expect("test key is valid")
}

fn keys(texts: &[&str]) -> Vec<Key> {
    texts.iter().map(|t| key(t)).collect()
}

async fn put_all(b: &Arc<dyn StorageBackend>, texts: &[&str]) {
    for t in texts {
        b.set(&key(t), Bytes::from(t.to_string())).await.unwrap();
    }
}

/// `get`: absent keys are `Ok(None)`.
pub async fn get_missing_key_is_none(b: Arc<dyn StorageBackend>) {
    assert_eq!(b.get(&key("missing")).await.unwrap(), None);
}

/// `get`/`set`: exact bytes come back, including empty and non-UTF-8 values.
pub async fn set_get_round_trips_exact_bytes(b: Arc<dyn StorageBackend>) {
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let cases: [(&str, Bytes); 4] = [
        ("empty", Bytes::new()),
        ("binary", Bytes::from(all_bytes)),
        ("nul", Bytes::from_static(b"\0\0\xff\0")),
        ("mib", Bytes::from(vec![0xA5u8; 1 << 20])),
    ];
    for (name, value) in &cases {
        b.set(&key(name), value.clone()).await.unwrap();
    }
    for (name, value) in &cases {
        assert_eq!(
            b.get(&key(name)).await.unwrap().as_ref(),
            Some(value),
            "{name}"
        );
    }
}

/// `get`/`set`: a 16 MiB value round-trips.
pub async fn set_get_round_trips_16_mib_value(b: Arc<dyn StorageBackend>) {
    let value: Bytes = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    b.set(&key("big"), value.clone()).await.unwrap();
    let got = b.get(&key("big")).await.unwrap().expect("present");
    assert_eq!(got.len(), value.len());
    assert!(got == value, "16 MiB value changed on the way");
}

/// `set`: a too-large value is `InvalidInput` and the stored value is unchanged.
pub async fn oversized_value_is_rejected_and_loses_nothing(b: Arc<dyn StorageBackend>) {
    let k = key("k");
    b.set(&k, Bytes::from_static(b"kept")).await.unwrap();
    assert_eq!(b.characteristics().max_value_bytes, MAX_VALUE_BYTES);
    let huge = Bytes::from(vec![1u8; MAX_VALUE_BYTES + 1]);
    let err = b.set(&k, huge.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = b
        .write_batch(WriteBatch::new().put(k.clone(), huge))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(b.get(&k).await.unwrap(), Some(Bytes::from_static(b"kept")));
}

/// `set`: a following `get` returns the newest value.
pub async fn set_overwrites_previous_value(b: Arc<dyn StorageBackend>) {
    let k = key("k");
    b.set(&k, Bytes::from_static(b"one")).await.unwrap();
    b.set(&k, Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap(), Some(Bytes::from_static(b"two")));
    assert_eq!(b.list_keys("").await.unwrap(), keys(&["k"]));
}

/// `delete`: `true` when the key existed, `false` otherwise, never an error.
pub async fn delete_reports_whether_key_existed(b: Arc<dyn StorageBackend>) {
    let k = key("k");
    assert!(!b.delete(&k).await.unwrap());
    b.set(&k, Bytes::from_static(b"v")).await.unwrap();
    assert!(b.delete(&k).await.unwrap());
    assert!(!b.delete(&k).await.unwrap());
    assert_eq!(b.get(&k).await.unwrap(), None);
}

/// `exists`: `true` exactly when `get` returns `Some` (also for empty values).
pub async fn exists_matches_get(b: Arc<dyn StorageBackend>) {
    let k = key("k");
    assert!(!b.exists(&k).await.unwrap());
    b.set(&k, Bytes::new()).await.unwrap();
    assert!(b.exists(&k).await.unwrap());
    b.delete(&k).await.unwrap();
    assert!(!b.exists(&k).await.unwrap());
}

/// `list_keys`: keys with the prefix, ascending byte order; empty prefix lists all.
pub async fn list_keys_filters_by_prefix_in_byte_order(b: Arc<dyn StorageBackend>) {
    put_all(
        &b,
        &["b/2", "a", "b/10", "b/1", "b", "c", "B", "b/ü", "b/z"],
    )
    .await;
    assert_eq!(
        b.list_keys("b/").await.unwrap(),
        keys(&["b/1", "b/10", "b/2", "b/z", "b/ü"])
    );
    assert_eq!(
        b.list_keys("").await.unwrap(),
        keys(&["B", "a", "b", "b/1", "b/10", "b/2", "b/z", "b/ü", "c"])
    );
    assert!(b.list_keys("zzz").await.unwrap().is_empty());
}

/// `list_keys`: `%`, `_` and `\` in the prefix are plain characters.
pub async fn list_keys_treats_like_metacharacters_literally(b: Arc<dyn StorageBackend>) {
    put_all(&b, &["a%b", "axb", "a_b", "a\\b", "a%", "ab"]).await;
    assert_eq!(b.list_keys("a%").await.unwrap(), keys(&["a%", "a%b"]));
    assert_eq!(b.list_keys("a_").await.unwrap(), keys(&["a_b"]));
    assert_eq!(b.list_keys("a\\").await.unwrap(), keys(&["a\\b"]));
    let page = b.scan("a%", None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 2);
}

/// `list_keys`/`scan`: a prefix with NUL or above the key limit is `InvalidInput`.
pub async fn list_and_scan_reject_bad_prefixes(b: Arc<dyn StorageBackend>) {
    let long = "p".repeat(MAX_KEY_BYTES + 1);
    for bad in ["a\0", long.as_str()] {
        assert_eq!(
            b.list_keys(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            b.scan(bad, None, 10).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    for bad in ["", "a\0b"] {
        assert_eq!(Key::new(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(
        Key::new("k".repeat(MAX_KEY_BYTES + 1)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// `scan`: ascending order; `next_after` continues without gaps or repeats and is `None`
/// exactly at the end.
pub async fn scan_pages_in_order_without_gaps_or_repeats(b: Arc<dyn StorageBackend>) {
    let mut expected = Vec::new();
    for i in 0..50u32 {
        let k = key(&format!("p/{i:03}"));
        b.set(&k, Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
        expected.push(k);
    }
    put_all(&b, &["o", "p", "q/000"]).await;
    for limit in [1usize, 7, 10, 49, 50, 51] {
        let mut seen = Vec::new();
        let mut after: Option<Key> = None;
        let mut pages = 0;
        loop {
            let page = b.scan("p/", after.as_ref(), limit).await.unwrap();
            pages += 1;
            assert!(page.entries.len() <= limit);
            for (k, v) in &page.entries {
                let i: u32 = k.as_str()[2..].parse().unwrap();
                assert_eq!(v.as_ref(), i.to_be_bytes());
            }
            seen.extend(page.entries.into_iter().map(|(k, _)| k));
            match page.next_after {
                Some(next) => {
                    assert_eq!(Some(&next), seen.last());
                    after = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
        assert_eq!(
            pages,
            50usize.div_ceil(limit),
            "limit {limit}: no empty last page"
        );
    }
    let all = b.scan_all("", 3).await.unwrap();
    assert_eq!(all.len(), 53);
}

/// `scan`: `after` is exclusive and need not exist; `limit` is 1..=max_scan_limit.
pub async fn scan_after_is_exclusive_and_limit_is_checked(b: Arc<dyn StorageBackend>) {
    put_all(&b, &["k1", "k2", "k3", "k4"]).await;
    let page = b.scan("k", Some(&key("k2")), 10).await.unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        keys(&["k3", "k4"])
    );
    assert_eq!(page.next_after, None);
    let page = b.scan("k", Some(&key("k25")), 1).await.unwrap();
    assert_eq!(page.entries[0].0, key("k3"));
    assert_eq!(page.next_after, Some(key("k3")));
    let page = b.scan("k", Some(&key("a")), 10).await.unwrap();
    assert_eq!(page.entries.len(), 4);
    let page = b.scan("k", Some(&key("z")), 10).await.unwrap();
    assert!(page.entries.is_empty() && page.next_after.is_none());
    assert_eq!(b.characteristics().max_scan_limit, MAX_SCAN_LIMIT);
    for bad in [0, MAX_SCAN_LIMIT + 1] {
        assert_eq!(
            b.scan("k", None, bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}

/// `get_batch`: one answer per key, request order, `None` for absent, repeats answered.
pub async fn get_batch_answers_in_request_order(b: Arc<dyn StorageBackend>) {
    put_all(&b, &["a", "b", "c"]).await;
    let got = b
        .get_batch(&keys(&["c", "missing", "a", "c"]))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(Bytes::from_static(b"c")),
            None,
            Some(Bytes::from_static(b"a")),
            Some(Bytes::from_static(b"c")),
        ]
    );
    assert!(b.get_batch(&[]).await.unwrap().is_empty());
}

/// `set_batch`: for a key given twice the last entry wins.
pub async fn set_batch_last_entry_wins(b: Arc<dyn StorageBackend>) {
    let entries: Vec<(Key, Bytes)> = (0..100u32)
        .map(|i| (key(&format!("k{i:03}")), Bytes::from(format!("v{i}"))))
        .chain([(key("k000"), Bytes::from_static(b"last"))])
        .collect();
    b.set_batch(entries).await.unwrap();
    assert_eq!(b.list_keys("k").await.unwrap().len(), 100);
    assert_eq!(
        b.get(&key("k000")).await.unwrap(),
        Some(Bytes::from_static(b"last"))
    );
    assert_eq!(
        b.get(&key("k099")).await.unwrap(),
        Some(Bytes::from_static(b"v99"))
    );
    b.set_batch(Vec::new()).await.unwrap();
}

/// `set_batch`: one invalid entry means no entry is written.
pub async fn set_batch_is_all_or_nothing(b: Arc<dyn StorageBackend>) {
    b.set(&key("a"), Bytes::from_static(b"old")).await.unwrap();
    let entries = vec![
        (key("a"), Bytes::from_static(b"new")),
        (key("b"), Bytes::from(vec![0u8; MAX_VALUE_BYTES + 1])),
        (key("c"), Bytes::from_static(b"new")),
    ];
    let err = b.set_batch(entries).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        b.get(&key("a")).await.unwrap(),
        Some(Bytes::from_static(b"old"))
    );
    assert_eq!(b.list_keys("").await.unwrap(), keys(&["a"]));
}

/// `delete_batch`: returns how many distinct keys existed and were removed.
pub async fn delete_batch_counts_distinct_existing_keys(b: Arc<dyn StorageBackend>) {
    put_all(&b, &["a", "b", "c"]).await;
    let removed = b
        .delete_batch(&keys(&["a", "missing", "c", "a"]))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(b.list_keys("").await.unwrap(), keys(&["b"]));
    assert_eq!(b.delete_batch(&[]).await.unwrap(), 0);
}

/// `write_batch`: every operation applies, in order.
pub async fn write_batch_applies_in_order(b: Arc<dyn StorageBackend>) {
    put_all(&b, &["gone", "kept"]).await;
    let batch = WriteBatch::new()
        .put(key("x"), &b"1"[..])
        .delete(key("gone"))
        .put(key("y"), &b"2"[..])
        .delete(key("x"))
        .put(key("x"), &b"3"[..])
        .put(key("z"), &b"4"[..])
        .delete(key("z"))
        .check(key("kept"), Some(Bytes::from_static(b"kept")))
        .check(key("never"), None);
    b.write_batch(batch).await.unwrap();
    assert_eq!(b.list_keys("").await.unwrap(), keys(&["kept", "x", "y"]));
    assert_eq!(
        b.get(&key("x")).await.unwrap(),
        Some(Bytes::from_static(b"3"))
    );
}

/// `write_batch`: a failed check is `Conflict` and nothing is written.
pub async fn write_batch_failed_check_writes_nothing(b: Arc<dyn StorageBackend>) {
    put_all(&b, &["a"]).await;
    let failing = [
        WriteBatch::new().check(key("a"), Some(Bytes::from_static(b"other"))),
        WriteBatch::new().check(key("a"), None),
        WriteBatch::new().check(key("missing"), Some(Bytes::from_static(b"a"))),
    ];
    for checks in failing {
        let mut batch = checks.put(key("new"), &b"n"[..]).delete(key("a"));
        batch = batch.check(key("a"), Some(Bytes::from_static(b"a")));
        let err = b.write_batch(batch).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert_eq!(b.list_keys("").await.unwrap(), keys(&["a"]));
        assert_eq!(
            b.get(&key("a")).await.unwrap(),
            Some(Bytes::from_static(b"a"))
        );
    }
}

/// `write_batch`: an empty batch succeeds and does nothing.
pub async fn write_batch_empty_succeeds(b: Arc<dyn StorageBackend>) {
    b.write_batch(WriteBatch::new()).await.unwrap();
    assert!(b.list_keys("").await.unwrap().is_empty());
}

/// `compare_and_swap`: create-only, update, delete, and `Conflict` that changes nothing.
pub async fn compare_and_swap_semantics(b: Arc<dyn StorageBackend>) {
    let k = key("k");
    let v1 = Bytes::from_static(b"v1");
    let v2 = Bytes::from_static(b"v2");
    b.compare_and_swap(&k, None, Some(v1.clone()))
        .await
        .unwrap();
    let err = b.create(&k, v2.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = b
        .compare_and_swap(&k, Some(v2.clone()), Some(v1.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(b.get(&k).await.unwrap(), Some(v1.clone()));
    b.compare_and_swap(&k, Some(v1.clone()), Some(v2.clone()))
        .await
        .unwrap();
    assert_eq!(b.get(&k).await.unwrap(), Some(v2.clone()));
    let err = b
        .compare_and_swap(&k, Some(v1.clone()), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    b.compare_and_swap(&k, Some(v2.clone()), None)
        .await
        .unwrap();
    assert_eq!(b.get(&k).await.unwrap(), None);
    let err = b
        .compare_and_swap(&k, Some(v2), Some(v1.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(b.get(&k).await.unwrap(), None);
    b.compare_and_swap(&k, None, None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap(), None);
    let err = b
        .compare_and_swap(&k, None, Some(Bytes::from(vec![0u8; MAX_VALUE_BYTES + 1])))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// `compare_and_swap`: of concurrent swaps from one value exactly one wins, so 32 tasks doing
/// CAS increments end at exactly 32.
pub async fn concurrent_cas_increments_are_never_lost(b: Arc<dyn StorageBackend>) {
    let k = key("counter");
    b.set(&k, Bytes::from(0u64.to_be_bytes().to_vec()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let b = b.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let mut conflicts = 0u32;
                loop {
                    let current = b.get(&k).await.unwrap().expect("counter exists");
                    let n = u64::from_be_bytes(current.as_ref().try_into().unwrap());
                    let next = Bytes::from((n + 1).to_be_bytes().to_vec());
                    match b.compare_and_swap(&k, Some(current), Some(next)).await {
                        Ok(()) => return conflicts,
                        Err(e) if e.kind() == ErrorKind::Conflict => conflicts += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let end = b.get(&k).await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(end.as_ref().try_into().unwrap()), 32);
}

/// `compare_and_swap` with `expected = None` and `write_batch` checks: exactly one of many
/// concurrent creators wins; the others get `Conflict`.
pub async fn concurrent_creates_have_exactly_one_winner(b: Arc<dyn StorageBackend>) {
    for round in 0..2 {
        let k = key(&format!("lock{round}"));
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let b = b.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    let value = Bytes::from(vec![i]);
                    if round == 0 {
                        b.create(&k, value).await
                    } else {
                        let batch = WriteBatch::new()
                            .check(k.clone(), None)
                            .put(k.clone(), value)
                            .put(key(&format!("owner/{i}")), Bytes::new());
                        b.write_batch(batch).await
                    }
                    .map(|()| i)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for result in futures::future::join_all(tasks).await {
            match result.unwrap() {
                Ok(i) => winners.push(i),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(
            b.get(&k).await.unwrap(),
            Some(Bytes::from(vec![winners[0]]))
        );
        if round == 1 {
            let owners = b.list_keys("owner/").await.unwrap();
            assert_eq!(owners, vec![key(&format!("owner/{}", winners[0]))]);
        }
    }
}

/// Tenancy: a tenant never reads, lists, scans, overwrites or deletes another's keys.
pub async fn tenants_never_see_each_other(b: Arc<dyn StorageBackend>) {
    let t1 = tenant_named(&b, "one");
    let t2 = tenant_named(&b, "two");
    assert_ne!(t1.tenant_id(), t2.tenant_id());
    let k = key("shared/name");
    t1.set(&k, Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(t2.get(&k).await.unwrap(), None);
    assert!(!t2.exists(&k).await.unwrap());
    assert!(t2.list_keys("").await.unwrap().is_empty());
    assert!(t2.scan("", None, 10).await.unwrap().entries.is_empty());
    assert_eq!(
        t2.get_batch(std::slice::from_ref(&k)).await.unwrap(),
        vec![None]
    );
    assert!(!t2.delete(&k).await.unwrap());
    assert_eq!(t2.delete_batch(std::slice::from_ref(&k)).await.unwrap(), 0);
    let err = t2
        .compare_and_swap(&k, Some(Bytes::from_static(b"one")), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    t2.set(&k, Bytes::from_static(b"two")).await.unwrap();
    t2.set_batch(vec![(key("only/two"), Bytes::new())])
        .await
        .unwrap();
    assert_eq!(t1.get(&k).await.unwrap(), Some(Bytes::from_static(b"one")));
    assert_eq!(t2.get(&k).await.unwrap(), Some(Bytes::from_static(b"two")));
    assert_eq!(t1.list_keys("").await.unwrap(), vec![k.clone()]);
    assert!(
        b.list_keys("").await.unwrap().is_empty(),
        "the base tenant saw other tenants"
    );
    let same = b.tenant(t1.tenant_id());
    assert_eq!(
        same.get(&k).await.unwrap(),
        Some(Bytes::from_static(b"one"))
    );
}

/// `clear`: removes every key of this tenant and nothing of any other.
pub async fn clear_only_clears_own_tenant(b: Arc<dyn StorageBackend>) {
    let t1 = tenant_named(&b, "one");
    let t2 = tenant_named(&b, "two");
    for t in [&b, &t1, &t2] {
        put_all(t, &["a", "b/c", "z"]).await;
    }
    t1.clear().await.unwrap();
    assert!(t1.list_keys("").await.unwrap().is_empty());
    assert_eq!(t2.list_keys("").await.unwrap(), keys(&["a", "b/c", "z"]));
    assert_eq!(b.list_keys("").await.unwrap(), keys(&["a", "b/c", "z"]));
    t1.set(&key("again"), Bytes::new()).await.unwrap();
    assert_eq!(t1.list_keys("").await.unwrap(), keys(&["again"]));
}

/// Tenancy: tenant `x` with key `yz` never meets tenant `xy` with key `z`.
pub async fn tenant_prefix_is_unambiguous(b: Arc<dyn StorageBackend>) {
    let short = tenant_named(&b, "x");
    let long = tenant_named(&b, "xy");
    short
        .set(&key("yz"), Bytes::from_static(b"short"))
        .await
        .unwrap();
    long.set(&key("z"), Bytes::from_static(b"long"))
        .await
        .unwrap();
    assert_eq!(long.get(&key("yz")).await.unwrap(), None);
    assert_eq!(short.get(&key("z")).await.unwrap(), None);
    assert_eq!(short.list_keys("").await.unwrap(), keys(&["yz"]));
    assert_eq!(long.list_keys("").await.unwrap(), keys(&["z"]));
    short.clear().await.unwrap();
    assert_eq!(
        long.get(&key("z")).await.unwrap(),
        Some(Bytes::from_static(b"long"))
    );
}

/// Keys: the longest allowed key and keys full of SQL and path metacharacters round-trip.
pub async fn max_length_key_and_hostile_text_round_trip(b: Arc<dyn StorageBackend>) {
    assert_eq!(b.characteristics().max_key_bytes, MAX_KEY_BYTES);
    let hostile = [
        "x".repeat(MAX_KEY_BYTES),
        "ü".repeat(MAX_KEY_BYTES / 2),
        "'; DROP TABLE kv_store;--".to_owned(),
        "%_\\'\"$1::".to_owned(),
        "../../etc/passwd".to_owned(),
        " \t\n\u{7f}\u{10FFFF}".to_owned(),
    ];
    for text in &hostile {
        b.set(&key(text), Bytes::from(text.clone())).await.unwrap();
    }
    for text in &hostile {
        assert_eq!(
            b.get(&key(text)).await.unwrap(),
            Some(Bytes::from(text.clone()))
        );
    }
    let listed: BTreeSet<Key> = b.list_keys("").await.unwrap().into_iter().collect();
    let expected: BTreeSet<Key> = hostile.iter().map(|t| key(t)).collect();
    assert_eq!(listed, expected);
}

/// Every method against a `BTreeMap` model on random operation sequences.
pub async fn random_operations_match_btreemap_model(b: Arc<dyn StorageBackend>) {
    crate::model::check_against_model(b).await;
}

/// Hot keys of [`concurrent_mixed_writes_match_sequential_model`]: two counters, and the
/// group of keys each counter's batches rewrite.
const HOT_COUNTERS: u64 = 2;
const GROUP_MEMBERS: u64 = 3;

/// Attempts one increment may take before the case gives up (it never should: every round
/// of a race has a winner).
const MAX_ATTEMPTS: u32 = 10_000;

fn counter_key(c: u64) -> Key {
    key(&format!("hot/counter/{c}"))
}

fn member_key(group: &str, m: u64) -> Key {
    key(&format!("hot/{group}/{m}"))
}

fn be_u64(value: &[u8]) -> u64 {
    u64::from_be_bytes(value.try_into().expect("an 8-byte counter"))
}

/// What the writer tasks saw: `(counter, new value)` of every increment made by
/// `compare_and_swap`, `(counter, new value, group stamp)` of every one made by a checked
/// `write_batch`, the tags `set_batch` wrote, and how many attempts lost a race.
#[derive(Default)]
struct MixedOutcome {
    increments: Vec<(u64, u64)>,
    batch_increments: Vec<(u64, u64, Bytes)>,
    shared_tags: Vec<Bytes>,
    conflicts: u64,
}

/// One try at incrementing counter `c`: by `compare_and_swap`, or (`batch`) by a
/// `write_batch` that checks the counter and rewrites the counter's group with a stamp.
/// `Ok(false)` when a concurrent writer won the race; then nothing changed.
async fn try_increment(
    b: &Arc<dyn StorageBackend>,
    c: u64,
    batch: Option<&str>,
    out: &mut MixedOutcome,
) -> bool {
    let counter = counter_key(c);
    let current = b.get(&counter).await.unwrap().expect("counter exists");
    let next = be_u64(&current) + 1;
    let new = Bytes::from(next.to_be_bytes().to_vec());
    // Let other tasks run between the read and the write, so races really happen.
    tokio::task::yield_now().await;
    let result = match batch {
        None => b
            .compare_and_swap(&counter, Some(current), Some(new))
            .await
            .map(|()| out.increments.push((c, next))),
        Some(tag) => {
            let stamp = Bytes::from(format!("{next} {tag}"));
            let mut write = WriteBatch::new()
                .check(counter.clone(), Some(current))
                .put(counter, new);
            for m in 0..GROUP_MEMBERS {
                write = write.put(member_key(&format!("group{c}"), m), stamp.clone());
            }
            let written = b.write_batch(write).await;
            written.map(|()| out.batch_increments.push((c, next, stamp)))
        }
    };
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::Conflict => {
            out.conflicts += 1;
            false
        }
        Err(e) => panic!("increment of counter {c}: unexpected error: {e}"),
    }
}

/// One operation of the mixed workload, chosen by `task` and `round`: an increment by
/// `compare_and_swap` or by a checked `write_batch` (each retried until it wins), or an
/// unconditional `set_batch` of the shared group.
async fn mixed_operation(
    b: &Arc<dyn StorageBackend>,
    task: u64,
    round: u64,
    out: &mut MixedOutcome,
) {
    let c = (task + round) % HOT_COUNTERS;
    let tag = format!("task {task} round {round}");
    let batch = match (task + round) % 3 {
        0 => None,
        1 => Some(tag.as_str()),
        _ => {
            let entries = (0..GROUP_MEMBERS)
                .map(|m| (member_key("shared", m), Bytes::from(tag.clone())))
                .collect();
            b.set_batch(entries).await.unwrap();
            out.shared_tags.push(Bytes::from(tag));
            return;
        }
    };
    for _ in 0..MAX_ATTEMPTS {
        if try_increment(b, c, batch, out).await {
            return;
        }
    }
    panic!("task {task} round {round}: no increment won in {MAX_ATTEMPTS} attempts");
}

/// Concurrency: 64 tasks hammer two counters and their key groups with `compare_and_swap`
/// increments and checked `write_batch` increments that rewrite the counter's group (both
/// retried on `Conflict`), and with `set_batch` rewrites of one shared group. The end state
/// equals a sequential run of the same operations: each counter equals the number of
/// increments aimed at it and every value was won by exactly one increment; each group holds
/// the stamp of its counter's last batch increment, all members alike; the shared group holds
/// one `set_batch`'s tag in every member.
pub async fn concurrent_mixed_writes_match_sequential_model(b: Arc<dyn StorageBackend>) {
    const TASKS: u64 = 64;
    const ROUNDS: u64 = 9;
    for c in 0..HOT_COUNTERS {
        b.set(&counter_key(c), Bytes::from(0u64.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let b = b.clone();
            tokio::spawn(async move {
                let mut out = MixedOutcome::default();
                for round in 0..ROUNDS {
                    mixed_operation(&b, task, round, &mut out).await;
                }
                out
            })
        })
        .collect();
    let mut all = MixedOutcome::default();
    for task in futures::future::join_all(tasks).await {
        let out = task.unwrap();
        all.increments.extend(out.increments);
        all.batch_increments.extend(out.batch_increments);
        all.shared_tags.extend(out.shared_tags);
        all.conflicts += out.conflicts;
    }
    println!(
        "mixed writes on {:?}: {} cas increments, {} batch increments, {} set_batch, {} lost races",
        b.backend_type(),
        all.increments.len(),
        all.batch_increments.len(),
        all.shared_tags.len(),
        all.conflicts
    );
    assert!(all.conflicts > 0, "the tasks must really race");

    // The sequential model: replay the same operations one after another.
    let mut model_counters = [0u64; HOT_COUNTERS as usize];
    let mut model_batched = [false; HOT_COUNTERS as usize];
    for round in 0..ROUNDS {
        for task in 0..TASKS {
            let c = (task + round) % HOT_COUNTERS;
            match (task + round) % 3 {
                0 => model_counters[c as usize] += 1,
                1 => {
                    model_counters[c as usize] += 1;
                    model_batched[c as usize] = true;
                }
                _ => {}
            }
        }
    }
    for c in 0..HOT_COUNTERS {
        let n = model_counters[c as usize];
        let end = b.get(&counter_key(c)).await.unwrap().expect("counter");
        assert_eq!(
            be_u64(&end),
            n,
            "counter {c} equals the increments aimed at it"
        );
        let mut won: Vec<u64> = all
            .increments
            .iter()
            .copied()
            .chain(
                all.batch_increments
                    .iter()
                    .map(|(counter, v, _)| (*counter, *v)),
            )
            .filter(|&(counter, _)| counter == c)
            .map(|(_, v)| v)
            .collect();
        won.sort_unstable();
        assert_eq!(
            won,
            (1..=n).collect::<Vec<_>>(),
            "counter {c}: each value won once"
        );
        // Batch increments of one counter are ordered by the value they wrote, so the group
        // holds the stamp of the highest one.
        let last_stamp = all
            .batch_increments
            .iter()
            .filter(|(counter, _, _)| *counter == c)
            .max_by_key(|(_, v, _)| *v)
            .map(|(_, _, stamp)| stamp.clone());
        assert_eq!(last_stamp.is_some(), model_batched[c as usize]);
        let members: Vec<Key> = (0..GROUP_MEMBERS)
            .map(|m| member_key(&format!("group{c}"), m))
            .collect();
        let group = b.get_batch(&members).await.unwrap();
        assert!(
            group.iter().all(|v| *v == last_stamp),
            "group {c}: {group:?}, last batch stamp {last_stamp:?}"
        );
    }
    let shared: Vec<Key> = (0..GROUP_MEMBERS)
        .map(|m| member_key("shared", m))
        .collect();
    let shared = b.get_batch(&shared).await.unwrap();
    let first = shared[0].clone().expect("shared group written");
    assert!(
        shared.iter().all(|v| v.as_ref() == Some(&first)),
        "set_batch is atomic: {shared:?}"
    );
    assert!(all.shared_tags.contains(&first), "{first:?} was written");
    let expected_keys = HOT_COUNTERS * (1 + GROUP_MEMBERS) + GROUP_MEMBERS;
    assert_eq!(
        b.list_keys("hot/").await.unwrap().len() as u64,
        expected_keys
    );
}
