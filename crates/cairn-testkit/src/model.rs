//! Model-based check: random operation sequences run against the backend and a `BTreeMap`.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind, Key, StorageBackend, WriteBatch};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// Number of random sequences; override with `CAIRN_MODEL_CASES`.
const DEFAULT_CASES: u32 = 48;
const OPS_PER_CASE: usize = 40;

#[derive(Debug, Clone)]
enum Op {
    Set(String, Vec<u8>),
    Delete(String),
    Get(String),
    Exists(String),
    Cas(String, Option<Vec<u8>>, Option<Vec<u8>>),
    SetBatch(Vec<(String, Vec<u8>)>),
    DeleteBatch(Vec<String>),
    GetBatch(Vec<String>),
    Batch(
        Vec<(String, Option<Vec<u8>>)>,
        Option<(String, Option<Vec<u8>>)>,
    ),
    List(String),
    Scan(String, Option<String>, usize),
}

fn key_text() -> impl Strategy<Value = String> {
    "[ab/%][ab/_]{0,2}"
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..4, 0..3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key_text(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => key_text().prop_map(Op::Delete),
        2 => key_text().prop_map(Op::Get),
        1 => key_text().prop_map(Op::Exists),
        3 => (key_text(), prop::option::of(value()), prop::option::of(value()))
            .prop_map(|(k, e, n)| Op::Cas(k, e, n)),
        1 => prop::collection::vec((key_text(), value()), 0..4).prop_map(Op::SetBatch),
        1 => prop::collection::vec(key_text(), 0..4).prop_map(Op::DeleteBatch),
        1 => prop::collection::vec(key_text(), 0..4).prop_map(Op::GetBatch),
        2 => (
            prop::collection::vec((key_text(), prop::option::of(value())), 0..4),
            prop::option::of((key_text(), prop::option::of(value()))),
        )
            .prop_map(|(ops, check)| Op::Batch(ops, check)),
        1 => "[ab/%_]{0,2}".prop_map(Op::List),
        2 => ("[ab/]{0,1}", prop::option::of(key_text()), 1usize..4)
            .prop_map(|(p, a, l)| Op::Scan(p, a, l)),
    ]
}

fn k(text: &str) -> Key {
    Key::new(text).expect("model keys are valid")
}

fn bytes(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}

fn model_get(model: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<Bytes> {
    model.get(key).map(|v| bytes(v))
}

/// Runs random sequences and panics with the failing sequence on the first difference.
pub(crate) async fn check_against_model(b: Arc<dyn StorageBackend>) {
    let cases = std::env::var("CAIRN_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = prop::collection::vec(op(), 1..OPS_PER_CASE);
    for case in 0..cases {
        let ops = strategy
            .new_tree(&mut runner)
            .expect("strategy generates a value")
            .current();
        b.clear().await.unwrap();
        let mut model = BTreeMap::new();
        for (step, op) in ops.iter().enumerate() {
            let context = format!("case {case}, step {step}, op {op:?}, sequence {ops:?}");
            apply(&b, &mut model, op, &context).await;
        }
        let all = b.list_keys("").await.unwrap();
        let expected: Vec<Key> = model.keys().map(|t| k(t)).collect();
        assert_eq!(all, expected, "final keys differ, case {case}: {ops:?}");
    }
}

async fn apply(
    b: &Arc<dyn StorageBackend>,
    model: &mut BTreeMap<String, Vec<u8>>,
    op: &Op,
    context: &str,
) {
    match op {
        Op::Set(key, v) => {
            b.set(&k(key), bytes(v)).await.unwrap();
            model.insert(key.clone(), v.clone());
        }
        Op::Delete(key) => {
            let existed = b.delete(&k(key)).await.unwrap();
            assert_eq!(existed, model.remove(key).is_some(), "{context}");
        }
        Op::Get(key) => {
            assert_eq!(
                b.get(&k(key)).await.unwrap(),
                model_get(model, key),
                "{context}"
            );
        }
        Op::Exists(key) => {
            assert_eq!(
                b.exists(&k(key)).await.unwrap(),
                model.contains_key(key),
                "{context}"
            );
        }
        Op::Cas(key, expected, new) => {
            let result = b
                .compare_and_swap(
                    &k(key),
                    expected.as_deref().map(bytes),
                    new.as_deref().map(bytes),
                )
                .await;
            if model.get(key) == expected.as_ref() {
                result.unwrap();
                match new {
                    Some(v) => model.insert(key.clone(), v.clone()),
                    None => model.remove(key),
                };
            } else {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::Conflict, "{context}");
            }
        }
        Op::SetBatch(entries) => {
            let batch = entries.iter().map(|(key, v)| (k(key), bytes(v))).collect();
            b.set_batch(batch).await.unwrap();
            for (key, v) in entries {
                model.insert(key.clone(), v.clone());
            }
        }
        Op::DeleteBatch(keys) => {
            let list: Vec<Key> = keys.iter().map(|t| k(t)).collect();
            let removed = b.delete_batch(&list).await.unwrap();
            let mut expected = 0;
            for key in keys {
                expected += u64::from(model.remove(key).is_some());
            }
            assert_eq!(removed, expected, "{context}");
        }
        Op::GetBatch(keys) => {
            let list: Vec<Key> = keys.iter().map(|t| k(t)).collect();
            let expected: Vec<Option<Bytes>> = keys.iter().map(|t| model_get(model, t)).collect();
            assert_eq!(b.get_batch(&list).await.unwrap(), expected, "{context}");
        }
        Op::Batch(ops, check) => {
            let mut batch = WriteBatch::new();
            for (key, v) in ops {
                batch = match v {
                    Some(v) => batch.put(k(key), bytes(v)),
                    None => batch.delete(k(key)),
                };
            }
            if let Some((key, expected)) = check {
                batch = batch.check(k(key), expected.as_deref().map(bytes));
            }
            let holds = check
                .as_ref()
                .is_none_or(|(key, expected)| model.get(key) == expected.as_ref());
            let result = b.write_batch(batch).await;
            if holds {
                result.unwrap();
                for (key, v) in ops {
                    match v {
                        Some(v) => model.insert(key.clone(), v.clone()),
                        None => model.remove(key),
                    };
                }
            } else {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::Conflict, "{context}");
            }
        }
        Op::List(prefix) => {
            let expected: Vec<Key> = model
                .keys()
                .filter(|t| t.starts_with(prefix.as_str()))
                .map(|t| k(t))
                .collect();
            assert_eq!(b.list_keys(prefix).await.unwrap(), expected, "{context}");
        }
        Op::Scan(prefix, after, limit) => {
            let after_key = after.as_deref().map(k);
            let matching: Vec<(Key, Bytes)> = model
                .iter()
                .filter(|(t, _)| t.starts_with(prefix.as_str()))
                .filter(|(t, _)| after.as_ref().is_none_or(|a| t.as_str() > a.as_str()))
                .map(|(t, v)| (k(t), bytes(v)))
                .collect();
            let page = b.scan(prefix, after_key.as_ref(), *limit).await.unwrap();
            let expected: Vec<(Key, Bytes)> = matching.iter().take(*limit).cloned().collect();
            assert_eq!(page.entries, expected, "{context}");
            let more = matching.len() > *limit;
            assert_eq!(page.next_after.is_some(), more, "{context}");
        }
    }
}
